//! Integrated gradients over the weights (Sundararajan et al., 2017): how much each weight
//! contributed to the loss, with shares that add up to the loss change (completeness).

use crate::{autograd, no_grad, DType, Error, Result, Tensor};

/// Nodes and weights of `n`-point Gauss-Legendre quadrature on [0, 1] (exact for polynomials
/// of degree `2n - 1`), by Newton's iteration on the Legendre polynomial `P_n`.
///
/// ```
/// let (a, w) = backprop::viz::gauss_legendre(3);
/// let integral: f64 = a.iter().zip(&w).map(|(x, w)| w * x.powi(5)).sum();
/// assert!((integral - 1.0 / 6.0).abs() < 1e-14); // exact up to degree 5
/// ```
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
        // Chebyshev-like start, then Newton on P_n (evaluated by the three-term recurrence)
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let pn = if n == 0 { 1.0 } else { p1 };
            let pn1 = if n == 0 { 0.0 } else { p0 };
            dp = n as f64 * (x * pn - pn1) / (x * x - 1.0);
            let dx = pn / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        // on [-1, 1]: w = 2 / ((1 - x^2) P_n'(x)^2); mapped to [0, 1]: a = (x + 1) / 2, w / 2
        nodes.push((x + 1.0) / 2.0);
        weights.push(1.0 / ((1.0 - x * x) * dp * dp));
    }
    (nodes, weights)
}

/// What [`integrated_gradients`] found: one attribution per parameter (its shape, float64),
/// the loss at the baseline and at the weights, and how far the shares are from adding up.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub attributions: Vec<Tensor>,
    pub loss_baseline: f64,
    pub loss: f64,
    /// `sum(attributions) - (loss - loss_baseline)`.
    pub residual: f64,
}

impl Attribution {
    /// `|residual| / |loss - loss_baseline|`.
    pub fn relative_residual(&self) -> f64 {
        self.residual.abs() / (self.loss - self.loss_baseline).abs()
    }
}

/// Integrated gradients of `loss()` over `params` along the straight path from `baselines`
/// (zeros when `None`) to the current values, with `steps` Gauss-Legendre nodes: weight `i`
/// gets `(w_i - b_i) * integral_0^1 dL/dw_i(b + a (w - b)) da`. One forward and one backward
/// per node; accumulation in float64. The parameters are written in place along the path and
/// restored bit for bit; their `.grad` is left alone.
///
/// ```
/// use backprop::{viz, Device, Tensor};
/// // L(w) = sum(w^3): the shares of w = [1, 2] from 0 are exactly [1, 8]
/// let w = Tensor::from_vec(vec![1.0f64, 2.0], [2], Device::Cpu)?.requires_grad_(true)?;
/// let ig = viz::integrated_gradients(&[w.clone()], None, 4, || w.mul(&w)?.mul(&w)?.sum_all())?;
/// let a = ig.attributions[0].to_vec::<f64>()?;
/// assert!((a[0] - 1.0).abs() < 1e-12 && (a[1] - 8.0).abs() < 1e-12);
/// assert!(ig.residual.abs() < 1e-12);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn integrated_gradients(
    params: &[Tensor],
    baselines: Option<&[Tensor]>,
    steps: usize,
    mut loss: impl FnMut() -> Result<Tensor>,
) -> Result<Attribution> {
    if steps == 0 {
        return Err(Error::invalid(
            "integrated_gradients",
            "steps must be at least 1",
        ));
    }
    let originals: Vec<Tensor> = {
        let _g = no_grad();
        params
            .iter()
            .map(|p| p.detach().contiguous_copy())
            .collect::<Result<_>>()?
    };
    let base: Vec<Tensor> = match baselines {
        Some(b) => {
            if b.len() != params.len() {
                return Err(Error::invalid(
                    "integrated_gradients",
                    format!("{} baselines for {} parameters", b.len(), params.len()),
                ));
            }
            for (p, b) in params.iter().zip(b) {
                if p.shape() != b.shape() {
                    return Err(Error::ShapeMismatch {
                        op: "integrated_gradients",
                        lhs: p.shape().clone(),
                        rhs: b.shape().clone(),
                        detail: ": a baseline must have its parameter's shape".into(),
                    });
                }
            }
            b.iter().map(|b| b.detach()).collect()
        }
        None => params
            .iter()
            .map(|p| p.zeros_like())
            .collect::<Result<_>>()?,
    };
    let result = (|| -> Result<Attribution> {
        let scalar = |t: Tensor| -> Result<f64> { t.detach().to_dtype(DType::F64)?.item() };
        let set = |a: f64| -> Result<()> {
            let _g = no_grad();
            for ((p, w), b) in params.iter().zip(&originals).zip(&base) {
                let b = b.to_dtype(w.dtype())?.to_device(w.device())?;
                p.copy_(&b.add(&w.sub(&b)?.mul_scalar(a)?)?)?;
            }
            Ok(())
        };
        set(0.0)?;
        let loss_baseline = scalar(no_grad_loss(&mut loss)?)?;
        let (nodes, weights) = gauss_legendre(steps);
        let mut acc: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.numel()]).collect();
        for (a, wk) in nodes.iter().zip(&weights) {
            set(*a)?;
            let l = loss()?;
            let grads = autograd::grad(&[l], params, None, None, false, true)?;
            for (acc, g) in acc.iter_mut().zip(grads) {
                if let Some(g) = g {
                    for (s, v) in acc.iter_mut().zip(g.to_dtype(DType::F64)?.to_vec::<f64>()?) {
                        *s += wk * v;
                    }
                }
            }
        }
        set(1.0)?;
        let loss_now = scalar(no_grad_loss(&mut loss)?)?;
        let mut total = 0.0;
        let mut attributions = Vec::with_capacity(params.len());
        for ((acc, w), b) in acc.into_iter().zip(&originals).zip(&base) {
            let w = w.to_dtype(DType::F64)?.to_vec::<f64>()?;
            let b = b.to_dtype(DType::F64)?.to_vec::<f64>()?;
            let ig: Vec<f64> = acc
                .iter()
                .zip(w.iter().zip(&b))
                .map(|(g, (w, b))| (w - b) * g)
                .collect();
            total += ig.iter().sum::<f64>();
            attributions.push(Tensor::from_vec(
                ig,
                params[attributions.len()].shape().clone(),
                crate::Device::Cpu,
            )?);
        }
        Ok(Attribution {
            attributions,
            loss_baseline,
            loss: loss_now,
            residual: total - (loss_now - loss_baseline),
        })
    })();
    // restore the weights bit for bit, whatever happened
    {
        let _g = no_grad();
        for (p, w) in params.iter().zip(&originals) {
            p.copy_(w)?;
        }
    }
    result
}

fn no_grad_loss(loss: &mut impl FnMut() -> Result<Tensor>) -> Result<Tensor> {
    let _g = no_grad();
    loss()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrature_integrates_polynomials_exactly() {
        for n in 1..12 {
            let (a, w) = gauss_legendre(n);
            for deg in 0..(2 * n) as i32 {
                let got: f64 = a.iter().zip(&w).map(|(x, w)| w * x.powi(deg)).sum();
                assert!(
                    (got - 1.0 / (deg + 1) as f64).abs() < 1e-13,
                    "n={n} deg={deg}: {got}"
                );
            }
        }
    }
}
