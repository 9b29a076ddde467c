//! 2×2 max pooling with a correct gradient (candle's own `max_pool2d` divides it by 4).
//!
//! candle 0.11.1's `max_pool2d` backward spreads the gradient as if it were average pooling
//! (PITFALLS.md, candle 1). Here the input is reshaped so that each 2×2 window is a last axis
//! of 4, the winner is found with `argmax` (the first maximum on ties, like PyTorch) and taken
//! with `gather`, whose backward (`scatter_add`) sends the whole gradient to that one pixel.

use candle_core::{D, Result, Tensor};

/// Max pooling over non-overlapping 2×2 windows with stride 2 on a `(batch, channels, h, w)`
/// tensor. An odd last row or column is dropped first, as PyTorch's `MaxPool2d(2)` does.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    let (half_h, half_w) = (height / 2, width / 2);
    let x = if height % 2 == 1 {
        x.narrow(2, 0, 2 * half_h)?
    } else {
        x.clone()
    };
    let x = if width % 2 == 1 {
        x.narrow(3, 0, 2 * half_w)?
    } else {
        x
    };
    let windows = x
        .reshape((batch, channels, half_h, 2, half_w, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .contiguous()?
        .reshape((batch, channels, half_h, half_w, 4))?;
    let winner = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&winner, D::Minus1)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Pools `values` (shape `dims`), backpropagates `sum_all`, returns output and gradient.
    fn pool_and_grad(values: &[f32], dims: (usize, usize, usize, usize)) -> (Vec<f32>, Vec<f32>) {
        let x = Var::from_slice(values, dims, &Device::Cpu).unwrap();
        let pooled = max_pool2x2(x.as_tensor()).unwrap();
        let grads = pooled.sum_all().unwrap().backward().unwrap();
        let grad = grads.get(x.as_tensor()).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (flat(&pooled), flat(grad))
    }

    #[test]
    fn gradient_goes_wholly_to_the_maximum() {
        let (out, grad) = pool_and_grad(&[1., 2., 3., 4.], (1, 1, 2, 2));
        assert_eq!(out, vec![4.]);
        assert_eq!(grad, vec![0., 0., 0., 1.]);
    }

    #[test]
    fn tied_maxima_give_the_gradient_to_the_first() {
        let (out, grad) = pool_and_grad(&[4., 4., 1., 0.], (1, 1, 2, 2));
        assert_eq!(out, vec![4.]);
        assert_eq!(grad, vec![1., 0., 0., 0.]);
    }

    #[test]
    fn pools_each_window_and_crops_odd_sizes() {
        #[rustfmt::skip]
        let values = [
            1., 5., 2., 0., 9.,
            3., 0., 7., 1., 9.,
            9., 9., 9., 9., 9.,
        ];
        let (out, grad) = pool_and_grad(&values, (1, 1, 3, 5));
        assert_eq!(out, vec![5., 7.]);
        #[rustfmt::skip]
        let expected = [
            0., 1., 0., 0., 0.,
            0., 0., 1., 0., 0.,
            0., 0., 0., 0., 0.,
        ];
        assert_eq!(grad, expected.to_vec());
    }

    #[test]
    fn matches_candle_forward_on_batches_and_channels() {
        let x = Tensor::arange(0f32, 2. * 3. * 6. * 4., &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 6, 4))
            .unwrap()
            .sin()
            .unwrap();
        let ours = max_pool2x2(&x).unwrap();
        let theirs = x.max_pool2d(2).unwrap();
        let diff = (ours - theirs).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.);
    }
}
