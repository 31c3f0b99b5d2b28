//! Numerical gradient checks: compare autograd's Jacobian with central differences in f64.
//!
//! `gradcheck` checks first derivatives; `gradgradcheck` checks the derivative of the
//! vector-Jacobian product, i.e. that the gradient rules themselves differentiate correctly.

use crate::autograd;
use crate::{DType, Error, Result, Tensor};

/// Tolerances and step for the checks (PyTorch's defaults).
#[derive(Debug, Clone, Copy)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// A function of tensors returning tensors (non-float outputs are ignored).
pub type TensorFn<'a> = dyn Fn(&[Tensor]) -> Result<Vec<Tensor>> + 'a;

fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_f64_vec()
}

/// Rebuilds an input as a fresh leaf with the given values (same dtype/device/requires_grad).
fn leaf_like(x: &Tensor, v: Vec<f64>) -> Result<Tensor> {
    let t = Tensor::from_f64s(v, x.shape().clone(), x.dtype(), x.device())?;
    if x.requires_grad() {
        t.requires_grad_(true)
    } else {
        Ok(t)
    }
}

/// Checks d(outputs)/d(inputs) for every input that requires grad. Returns `Ok(())` when all
/// entries agree within `atol + rtol * |numerical|`, else `Err(Error::Gradcheck)` naming the
/// first disagreeing entry.
pub fn gradcheck(f: &TensorFn<'_>, inputs: &[Tensor], opts: GradcheckOptions) -> Result<()> {
    let diff: Vec<usize> = (0..inputs.len())
        .filter(|&i| inputs[i].requires_grad())
        .collect();
    if diff.is_empty() {
        return Err(Error::Gradcheck(
            "no input requires grad: nothing to check".into(),
        ));
    }
    for &i in &diff {
        if inputs[i].dtype() != DType::F64 {
            return Err(Error::Gradcheck(format!(
                "input {i} has dtype {}; gradcheck needs float64 inputs for meaningful finite differences",
                inputs[i].dtype()
            )));
        }
    }
    let base: Vec<Vec<f64>> = inputs.iter().map(values).collect::<Result<_>>()?;
    let fresh = |override_: Option<(usize, usize, f64)>| -> Result<Vec<Tensor>> {
        inputs
            .iter()
            .enumerate()
            .map(|(k, x)| {
                let mut v = base[k].clone();
                if let Some((i, j, d)) = override_ {
                    if i == k {
                        v[j] += d;
                    }
                }
                leaf_like(x, v)
            })
            .collect()
    };

    // outputs at the base point, with the graph
    let xs = fresh(None)?;
    let outs: Vec<Tensor> = f(&xs)?
        .into_iter()
        .filter(|o| o.dtype().is_float())
        .collect();
    let diff_xs: Vec<Tensor> = diff.iter().map(|&i| xs[i].clone()).collect();

    for (oi, out) in outs.iter().enumerate() {
        let n_out = out.numel();
        // analytical Jacobian, one backward pass per output element: ana[input][elem][out_elem]
        let mut ana: Vec<Vec<Vec<f64>>> = diff
            .iter()
            .map(|&i| vec![vec![0.0; n_out]; inputs[i].numel()])
            .collect();
        if out.requires_grad() {
            for j in 0..n_out {
                let mut onehot = vec![0.0; n_out];
                onehot[j] = 1.0;
                let go = Tensor::from_f64s(onehot, out.shape().clone(), out.dtype(), out.device())?;
                let gs = autograd::grad(
                    std::slice::from_ref(out),
                    &diff_xs,
                    Some(&[Some(go)]),
                    Some(true),
                    false,
                    true,
                )?;
                for (k, g) in gs.iter().enumerate() {
                    if let Some(g) = g {
                        for (e, v) in values(g)?.into_iter().enumerate() {
                            ana[k][e][j] = v;
                        }
                    }
                }
            }
        }
        // numerical Jacobian by central differences
        #[allow(clippy::needless_range_loop)] // `e` indexes the input and the Jacobian alike
        for (k, &i) in diff.iter().enumerate() {
            for e in 0..inputs[i].numel() {
                let eval = |d: f64| -> Result<Vec<f64>> {
                    let _ng = autograd::no_grad();
                    let ys = f(&fresh(Some((i, e, d)))?)?;
                    let y = ys
                        .into_iter()
                        .filter(|o| o.dtype().is_float())
                        .nth(oi)
                        .ok_or_else(|| {
                            Error::Gradcheck(
                                "the function returned a different number of outputs".into(),
                            )
                        })?;
                    values(&y)
                };
                let (p, m) = (eval(opts.eps)?, eval(-opts.eps)?);
                for j in 0..n_out {
                    let num = (p[j] - m[j]) / (2.0 * opts.eps);
                    let a = ana[k][e][j];
                    let ok = (a - num).abs() <= opts.atol + opts.rtol * num.abs()
                        || (a.is_nan() && num.is_nan());
                    if !ok {
                        return Err(Error::Gradcheck(format!(
                            "Jacobian mismatch for output {oi} with respect to input {i}, element {e} of the input and {j} of the output: \
                             numerical {num:.8e} vs analytical {a:.8e} (atol={}, rtol={})",
                            opts.atol, opts.rtol
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks second derivatives: gradcheck of `(inputs, v) -> vjp(f, inputs, v)` with random `v`.
pub fn gradgradcheck(f: &TensorFn<'_>, inputs: &[Tensor], opts: GradcheckOptions) -> Result<()> {
    let n_in = inputs.len();
    let outs: Vec<Tensor> = f(inputs)?
        .into_iter()
        .filter(|o| o.dtype().is_float() && o.requires_grad())
        .collect();
    if outs.is_empty() {
        return Err(Error::Gradcheck(
            "no output requires grad: nothing to check".into(),
        ));
    }
    // random cotangents, fixed by a private generator so the check is reproducible
    let mut rng = crate::random::Rng::new(0x5eed);
    let vs: Vec<Tensor> = outs
        .iter()
        .map(|o| {
            let v: Vec<f64> = (0..o.numel()).map(|_| rng.uniform() * 2.0 - 1.0).collect();
            Tensor::from_f64s(v, o.shape().clone(), DType::F64, o.device())?.requires_grad_(true)
        })
        .collect::<Result<_>>()?;
    let diff: Vec<usize> = (0..n_in).filter(|&i| inputs[i].requires_grad()).collect();
    let vjp = move |all: &[Tensor]| -> Result<Vec<Tensor>> {
        let (xs, vs) = all.split_at(n_in);
        // the numerical pass calls this under no_grad; the vjp itself needs the graph
        let _on = autograd::grad_mode(true);
        let outs: Vec<Tensor> = f(xs)?
            .into_iter()
            .filter(|o| o.dtype().is_float() && o.requires_grad())
            .collect();
        let diff_xs: Vec<Tensor> = diff.iter().map(|&i| xs[i].clone()).collect();
        let go: Vec<Option<Tensor>> = vs.iter().map(|v| Some(v.clone())).collect();
        let gs = autograd::grad(&outs, &diff_xs, Some(&go), Some(true), true, true)?;
        gs.into_iter()
            .zip(diff_xs.iter())
            .map(|(g, x)| match g {
                Some(g) => Ok(g),
                None => x.zeros_like(),
            })
            .collect()
    };
    let mut all: Vec<Tensor> = inputs.to_vec();
    all.extend(vs);
    gradcheck(&vjp, &all, opts)
}
