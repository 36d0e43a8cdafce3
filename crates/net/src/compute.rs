//! Where the network runs. The CPU (burn's pure-Rust `flex` backend) is the default and needs
//! nothing; builds with the `gpu` feature can run it on a GPU through wgpu (Vulkan, Metal or
//! DirectX 12, whichever the platform has) instead. The choice is made once per process, before
//! the first model is built: burn tensors live on one device, and a model loaded on one cannot run
//! on another.
//!
//! The GPU path is burn's portable one (kernels compiled to WGSL, which wgpu translates for the
//! platform's API). burn's Vulkan-only path (SPIR-V kernels) crashed Mesa 22.3's software Vulkan
//! while it built a compute pipeline, where the portable path gave the CPU's results.

use crate::NetError;
use burn::prelude::Device;
use std::sync::OnceLock;

/// A compute device for the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compute {
    /// burn's `flex` backend on all CPU cores (rayon).
    #[default]
    Cpu,
    /// burn's cubecl runtime over wgpu, on the adapter wgpu ranks first (a discrete GPU before an
    /// integrated one; a software rasteriser only when nothing else is there).
    Gpu,
}

impl Compute {
    /// The names `parse` accepts.
    pub const NAMES: [&'static str; 2] = ["cpu", "gpu"];

    pub fn parse(name: &str) -> Result<Self, NetError> {
        match name.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Compute::Cpu),
            "gpu" => Ok(Compute::Gpu),
            _ => Err(NetError::Device(format!(
                "unknown device {name:?}: expected one of {}",
                Compute::NAMES.join(", ")
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compute::Cpu => "cpu",
            Compute::Gpu => "gpu",
        }
    }

    /// Whether this build can run the network there at all (the GPU itself is checked by
    /// [`select_compute`]).
    pub fn compiled_in(self) -> bool {
        match self {
            Compute::Cpu => true,
            Compute::Gpu => cfg!(feature = "gpu"),
        }
    }

    fn burn_device(self) -> Device {
        match self {
            Compute::Cpu => Device::flex(),
            #[cfg(feature = "gpu")]
            Compute::Gpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(not(feature = "gpu"))]
            Compute::Gpu => unreachable!("select_compute refuses the GPU in builds without it"),
        }
    }
}

static SELECTED: OnceLock<Compute> = OnceLock::new();

/// Chooses where the network runs for the rest of the process. A device this build lacks, or a
/// GPU that does not come up (no driver, no adapter), is an error here rather than a panic
/// at the first convolution. Choosing again is allowed only with the same device.
pub fn select_compute(compute: Compute) -> Result<(), NetError> {
    if !compute.compiled_in() {
        return Err(NetError::Device(format!(
            "this build of nodal has no {} backend: rebuild with `--features {}`",
            compute.name(),
            compute.name()
        )));
    }
    if compute != Compute::Cpu {
        probe(compute)?;
    }
    let chosen = *SELECTED.get_or_init(|| compute);
    if chosen != compute {
        return Err(NetError::Device(format!(
            "the network already runs on {}; the device is chosen once per process",
            chosen.name()
        )));
    }
    Ok(())
}

/// The device chosen by [`select_compute`], the CPU when none was.
pub fn selected_compute() -> Compute {
    SELECTED.get().copied().unwrap_or_default()
}

/// The burn device of [`selected_compute`].
pub fn device() -> Device {
    selected_compute().burn_device()
}

/// Runs a tiny computation on the device and reads it back. wgpu reports a missing driver or
/// adapter by panicking on first use, so the probe catches that panic and turns it into an error
/// (the panic message itself still reaches stderr through the default hook).
fn probe(compute: Compute) -> Result<(), NetError> {
    use burn::tensor::{Tensor, TensorData};
    let outcome = std::panic::catch_unwind(|| {
        let device = compute.burn_device();
        let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &device);
        (x.clone() * x).sum().into_scalar::<f32>()
    });
    match outcome {
        Ok(v) if (v - 14.0).abs() < 1e-4 => Ok(()),
        Ok(v) => Err(NetError::Device(format!("{}: a test sum gave {v}, expected 14", compute.name()))),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the backend failed to start".into());
            Err(NetError::Device(format!("{} device did not start: {reason}", compute.name())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for name in Compute::NAMES {
            assert_eq!(Compute::parse(name).unwrap().name(), name);
        }
        assert_eq!(Compute::parse("CPU").unwrap(), Compute::Cpu);
        let err = Compute::parse("cuda").unwrap_err().to_string();
        assert!(err.contains("\"cuda\"") && err.contains("cpu, gpu"), "{err}");
    }

    #[test]
    fn the_cpu_is_the_default_and_can_be_chosen() {
        select_compute(Compute::Cpu).unwrap();
        assert_eq!(selected_compute(), Compute::Cpu);
        // Choosing the same device again is fine.
        select_compute(Compute::Cpu).unwrap();
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn a_build_without_the_gpu_says_how_to_get_it() {
        let err = select_compute(Compute::Gpu).unwrap_err();
        assert!(err.to_string().contains("--features gpu"), "{err}");
        assert!(err.is_input_error());
        assert_eq!(selected_compute(), Compute::Cpu);
    }

    /// The GPU against the CPU on a small foveal net with the same weights: logits, the
    /// training loss and its gradient with respect to every level's input (which runs the whole
    /// backward pass through the convolutions). Runs only in `gpu` builds, on a machine with an
    /// adapter (a software Vulkan such as Mesa's lavapipe will do).
    #[cfg(feature = "gpu")]
    #[test]
    fn the_gpu_computes_what_the_cpu_computes() {
        use crate::model::{ArchConfig, FovealConfig};
        use burn::module::Module;
        use burn::tensor::{Tensor, TensorData};
        let arch = ArchConfig::Foveal(FovealConfig {
            channels: vec![4, 5, 6],
            convs: vec![2, 1, 2],
            merge_convs: 1,
        });
        let out = 8;
        let sizes = arch.input_sizes(out);
        let mut rng = crate::rng::Rng::new(3);
        let inputs: Vec<Vec<f32>> =
            sizes.iter().map(|&s| (0..2 * s * s * s).map(|_| rng.normal() as f32).collect()).collect();
        let labels: Vec<f32> = (0..2 * out * out * out).map(|i| f32::from(u8::from(i % 3 == 0))).collect();
        let run = |compute: Compute| {
            let device = compute.burn_device().autodiff();
            // Each backend has its own RNG: the weights are drawn on the CPU and moved.
            let net = arch.init_seeded(&Compute::Cpu.burn_device().autodiff(), 7).unwrap().to_device(&device);
            let xs: Vec<Tensor<5>> = inputs
                .iter()
                .zip(&sizes)
                .map(|(v, &s)| {
                    Tensor::from_data(TensorData::new(v.clone(), [2, 1, s, s, s]), &device).require_grad()
                })
                .collect();
            let logits = net.forward(xs.clone());
            let y = Tensor::<4>::from_data(TensorData::new(labels.clone(), [2, out, out, out]), &device);
            let (total, _, _) = crate::train::loss(logits.clone(), y);
            let loss = total.clone().into_scalar::<f32>();
            let grads = total.backward();
            let flat = |t: Tensor<5>| t.into_data().try_to_vec::<f32>().unwrap();
            let input_grads: Vec<Vec<f32>> = xs.iter().map(|x| flat(x.grad(&grads).unwrap())).collect();
            (flat(logits), loss, input_grads)
        };
        let (cpu_logits, cpu_loss, cpu_grads) = run(Compute::Cpu);
        let (gpu_logits, gpu_loss, gpu_grads) = run(Compute::Gpu);
        let max_diff =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert_eq!(cpu_logits.len(), gpu_logits.len());
        eprintln!(
            "GPU vs CPU: logits max |diff| {:.2e}, loss {cpu_loss} vs {gpu_loss}, input gradients max |diff| {:?}",
            max_diff(&cpu_logits, &gpu_logits),
            cpu_grads.iter().zip(&gpu_grads).map(|(c, g)| max_diff(c, g)).collect::<Vec<_>>()
        );
        assert!(max_diff(&cpu_logits, &gpu_logits) < 1e-4, "logits {}", max_diff(&cpu_logits, &gpu_logits));
        assert!((cpu_loss - gpu_loss).abs() < 1e-5, "loss {cpu_loss} vs {gpu_loss}");
        for (level, (c, g)) in cpu_grads.iter().zip(&gpu_grads).enumerate() {
            let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "level {level}: no gradient reached the input");
            assert!(max_diff(c, g) <= 1e-3 * scale, "level {level}: {} of {scale}", max_diff(c, g));
        }
    }
}
