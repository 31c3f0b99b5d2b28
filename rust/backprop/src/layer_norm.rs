//! Layer normalisation's normalising step as one primitive (`Op::LayerNorm`): composed, it is
//! about ten kernels forward and twenty backward (mean, a correction pass, centring, the
//! variance, rsqrt, the product, and each one's gradient); the fused kernels (CPU
//! `cpu/layer_norm.rs`, GPU `shaders/layer_norm.wgsl`) read a row three times forward and twice
//! backward. The affine part stays a plain `mul` and `add` (their gradients are the column sums
//! the reduce kernels already do well). Empty inputs, integer inputs, GPU rows too long for one
//! workgroup and double backward use the same maths composed from primitives.

use crate::op::Op;
use crate::{Device, Result, Shape, Tensor};

/// The mean over `dims` (kept), refined by one correction pass: PyTorch accumulates
/// normalisation statistics in double on the CPU, so a constant channel has exactly its value
/// as mean and normalises to 0, where a float32 `sum / n` is off by an ulp (which the tiny
/// variance then magnifies to ~1e-4). The correction is a constant for autograd: the mean's
/// gradient stays `1/n`.
pub(crate) fn accurate_mean(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let m0 = x.mean(dims, true)?;
    let fix = {
        let _g = crate::no_grad();
        x.sub(&m0)?.mean(dims, true)?
    };
    m0.add(&fix)
}

/// `(x - mean) / sqrt(var + eps)` over the trailing `k` dims, composed (differentiable twice).
fn normalize_composed(x: &Tensor, k: usize, eps: f64) -> Result<Tensor> {
    let dims: Vec<usize> = (x.rank() - k..x.rank()).collect();
    let mean = accurate_mean(x, &dims)?;
    let centered = x.sub(&mean)?;
    let var = centered.mul(&centered)?.mean(&dims, true)?;
    centered.mul(&var.add_scalar(eps)?.rsqrt()?)
}

/// Whether the fused kernels take rows of `len` elements on `device`.
#[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
fn fused_fits(device: Device, len: usize) -> bool {
    match device {
        Device::Cpu => true,
        #[cfg(feature = "gpu")]
        Device::Gpu => crate::gpu::layer_norm::fits(len),
        #[cfg(not(feature = "gpu"))]
        Device::Gpu => false,
    }
}

impl Tensor {
    /// Normalises over the trailing `k` dims: `(x - mean) / sqrt(var + eps)` with the biased
    /// variance, as `F.layer_norm` without weight and bias (`nn::functional::layer_norm` adds
    /// those). `k` must be between 1 and the rank.
    ///
    /// ```
    /// # use backprop::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 5.0, 5.0, 5.0], [2, 3], Device::Cpu)?;
    /// let y = x.normalize_trailing(1, 1e-5)?.to_vec::<f64>()?;
    /// let rstd = 1.0 / (2.0f64 / 3.0 + 1e-5).sqrt(); // the first row's variance is 2/3
    /// assert!((y[0] + rstd).abs() < 1e-12 && y[1].abs() < 1e-12 && (y[2] - rstd).abs() < 1e-12);
    /// assert_eq!(&y[3..], &[0.0, 0.0, 0.0]); // a constant row normalises to exactly 0
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn normalize_trailing(&self, k: usize, eps: f64) -> Result<Tensor> {
        if k == 0 || k > self.rank() {
            return Err(crate::Error::invalid(
                "layer_norm",
                format!(
                    "cannot normalise over the last {k} dims of a tensor of rank {}",
                    self.rank()
                ),
            ));
        }
        let len: usize = self.dims()[self.rank() - k..].iter().product();
        if !self.dtype().is_float() || self.numel() == 0 || !fused_fits(self.device(), len) {
            return normalize_composed(self, k, eps);
        }
        let x = self.contiguous()?;
        let (y, stats) = x.storage().layer_norm(x.layout(), len, eps)?;
        let rows = x.numel() / len;
        let stats = Tensor::from_storage(stats, Shape::new(vec![2, rows]));
        let op = Op::LayerNorm {
            x: x.clone(),
            trailing: k,
            eps,
            stats,
        };
        Tensor::from_op(y, x.shape().clone(), op)
    }
}

/// The input's gradient of `Op::LayerNorm` (the rule in `autograd/rules.rs` calls this): the
/// fused backward kernel, or under `create_graph` the composed gradient, differentiable again
/// in `x` and `g`: `rstd (g - mean(g) - xhat mean(g xhat))`.
pub(crate) fn layer_norm_grad(
    x: &Tensor,
    stats: &Tensor,
    g: &Tensor,
    trailing: usize,
    eps: f64,
) -> Result<Tensor> {
    let dims: Vec<usize> = (x.rank() - trailing..x.rank()).collect();
    if crate::is_grad_enabled() {
        let mean = accurate_mean(x, &dims)?;
        let centered = x.sub(&mean)?;
        let var = centered.mul(&centered)?.mean(&dims, true)?;
        let rstd = var.add_scalar(eps)?.rsqrt()?;
        let xhat = centered.mul(&rstd)?;
        let gm = g.mean(&dims, true)?;
        let gx = g.mul(&xhat)?.mean(&dims, true)?;
        return rstd.mul(&g.sub(&gm)?.sub(&xhat.mul(&gx)?)?);
    }
    let len: usize = dims.iter().map(|&d| x.dims()[d]).product();
    let g = g.contiguous()?;
    let dx = crate::tensor::with_read([&g, x, stats], |[gs, xs, ss]| {
        gs.layer_norm_backward(g.layout(), (xs, x.layout()), (ss, stats.layout()), len)
    })?;
    Ok(Tensor::from_storage(dx, x.shape().clone()))
}
