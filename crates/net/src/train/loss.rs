//! The training loss: cross-entropy + soft Dice of the node channel.
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

/// Loss of one batch: `(total, ce, soft_dice_loss)`; logits `[b, 2, o, o, o]`, labels `[b, o, o, o]`
/// as 0/1 floats.
pub fn loss(logits: Tensor<5>, labels: Tensor<4>) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let y1: Tensor<5> = labels.unsqueeze_dim(1); // [b, 1, o, o, o]
    let y0 = y1.clone().neg().add_scalar(1.0);
    let onehot = Tensor::cat(vec![y0, y1.clone()], 1);
    let n = onehot.dims().iter().product::<usize>() / 2;
    let ce = (log_softmax(logits.clone(), 1) * onehot).sum().div_scalar(n as f64).neg();
    let p1 = softmax(logits, 1).narrow(1, 1, 1);
    let inter = (p1.clone() * y1.clone()).sum();
    let denom = p1.sum() + y1.sum();
    let dice = inter.mul_scalar(2.0).add_scalar(1.0).div(denom.add_scalar(1.0)).neg().add_scalar(1.0);
    (ce.clone() + dice.clone(), ce, dice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_by_hand() {
        let device = crate::device();
        // Logits (0, 0) everywhere: p = 0.5, CE = ln 2; two voxels, one node voxel:
        // Dice = (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3 -> loss 1/3.
        let logits = Tensor::<5>::zeros([1, 2, 1, 1, 2], &device);
        let y = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 1, 2]), &device);
        let (_, ce, dl) = loss(logits, y);
        assert!((ce.into_scalar::<f32>() as f64 - 2f64.ln()).abs() < 1e-6);
        assert!((dl.into_scalar::<f32>() as f64 - 1.0 / 3.0).abs() < 1e-6);
    }
}
