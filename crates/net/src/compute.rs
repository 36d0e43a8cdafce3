//! Where the network runs. The CPU (burn's pure-Rust `flex` backend) is the default and needs
//! nothing; builds with the `vulkan` feature can run it on a GPU through Vulkan instead. The choice
//! is made once per process, before the first model is built: burn tensors live on one device, and
//! a model loaded on one cannot run on another.

use crate::NetError;
use burn::prelude::Device;
use std::sync::OnceLock;

/// A compute device for the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compute {
    /// burn's `flex` backend on all CPU cores (rayon).
    #[default]
    Cpu,
    /// burn's cubecl runtime over wgpu, pinned to Vulkan (the GPU wgpu ranks first).
    Vulkan,
}

impl Compute {
    /// The names `parse` accepts.
    pub const NAMES: [&'static str; 2] = ["cpu", "vulkan"];

    pub fn parse(name: &str) -> Result<Self, NetError> {
        match name.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Compute::Cpu),
            "vulkan" => Ok(Compute::Vulkan),
            _ => Err(NetError::Device(format!(
                "unknown device {name:?}: expected one of {}",
                Compute::NAMES.join(", ")
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compute::Cpu => "cpu",
            Compute::Vulkan => "vulkan",
        }
    }

    /// Whether this build can run the network there at all (the GPU itself is checked by
    /// [`select_compute`]).
    pub fn compiled_in(self) -> bool {
        match self {
            Compute::Cpu => true,
            Compute::Vulkan => cfg!(feature = "vulkan"),
        }
    }

    fn burn_device(self) -> Device {
        match self {
            Compute::Cpu => Device::flex(),
            #[cfg(feature = "vulkan")]
            Compute::Vulkan => Device::vulkan(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(not(feature = "vulkan"))]
            Compute::Vulkan => unreachable!("select_compute refuses Vulkan in builds without it"),
        }
    }
}

static SELECTED: OnceLock<Compute> = OnceLock::new();

/// Chooses where the network runs for the rest of the process. A device this build lacks, or a
/// GPU that does not come up (no Vulkan driver, no adapter), is an error here rather than a panic
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
        assert!(err.contains("\"cuda\"") && err.contains("cpu, vulkan"), "{err}");
    }

    #[test]
    fn the_cpu_is_the_default_and_can_be_chosen() {
        select_compute(Compute::Cpu).unwrap();
        assert_eq!(selected_compute(), Compute::Cpu);
        // Choosing the same device again is fine.
        select_compute(Compute::Cpu).unwrap();
    }

    #[cfg(not(feature = "vulkan"))]
    #[test]
    fn a_build_without_vulkan_says_how_to_get_it() {
        let err = select_compute(Compute::Vulkan).unwrap_err();
        assert!(err.to_string().contains("--features vulkan"), "{err}");
        assert!(err.is_input_error());
        assert_eq!(selected_compute(), Compute::Cpu);
    }
}
