//! Glue for `backprop::nn` and `backprop::optim`: functional layers, initialisers, fused
//! optimiser steps (one call per parameter group, GIL released once) and gradient clipping.

use crate::errors::IntoPy;
use crate::tensor::{wrap, PyTensor};
use backprop::nn::{functional as F, init};
use backprop::optim::update::{apply, Rule};
use backprop::Tensor;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn inner(t: Option<&PyTensor>) -> Option<Tensor> {
    t.map(|t| t.tensor().clone())
}

fn list(ts: Vec<PyRef<'_, PyTensor>>) -> Vec<Tensor> {
    ts.iter().map(|t| t.tensor().clone()).collect()
}

fn opt_list(ts: Vec<Option<PyRef<'_, PyTensor>>>) -> Vec<Option<Tensor>> {
    ts.iter()
        .map(|t| t.as_ref().map(|t| t.tensor().clone()))
        .collect()
}

#[pyfunction]
#[pyo3(signature = (input, weight, bias=None))]
pub fn linear(
    py: Python<'_>,
    input: &PyTensor,
    weight: &PyTensor,
    bias: Option<&PyTensor>,
) -> PyResult<PyTensor> {
    let (x, w, b) = (&input.tensor(), &weight.tensor(), inner(bias));
    let r = crate::tensor::work(
        py,
        x.numel() * w.dims().first().copied().unwrap_or(1),
        || F::linear(x, w, b.as_ref()),
    );
    Ok(wrap(r.py()?))
}

#[pyfunction]
#[pyo3(signature = (input, normalized_shape, weight=None, bias=None, eps=1e-5))]
pub fn layer_norm(
    input: &PyTensor,
    normalized_shape: Vec<usize>,
    weight: Option<&PyTensor>,
    bias: Option<&PyTensor>,
    eps: f64,
) -> PyResult<PyTensor> {
    Ok(wrap(
        F::layer_norm(
            &input.tensor(),
            &normalized_shape,
            inner(weight).as_ref(),
            inner(bias).as_ref(),
            eps,
        )
        .py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, running_mean, running_var, weight=None, bias=None, training=false, momentum=0.1, eps=1e-5))]
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    input: &PyTensor,
    running_mean: Option<&PyTensor>,
    running_var: Option<&PyTensor>,
    weight: Option<&PyTensor>,
    bias: Option<&PyTensor>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> PyResult<PyTensor> {
    let r = F::batch_norm(
        &input.tensor(),
        inner(running_mean).as_ref(),
        inner(running_var).as_ref(),
        inner(weight).as_ref(),
        inner(bias).as_ref(),
        training,
        momentum,
        eps,
    );
    Ok(wrap(r.py()?))
}

#[pyfunction]
pub fn embedding(input: &PyTensor, weight: &PyTensor) -> PyResult<PyTensor> {
    Ok(wrap(F::embedding(&input.tensor(), &weight.tensor()).py()?))
}

#[pyfunction]
#[pyo3(signature = (nonlinearity, param=None))]
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> PyResult<f64> {
    init::calculate_gain(nonlinearity, param).py()
}

/// `kind` in: uniform(a, b), normal(mean, std), constant(v), kaiming_uniform / kaiming_normal
/// (a, mode, nonlinearity), xavier_uniform / xavier_normal (gain).
#[pyfunction]
#[pyo3(signature = (tensor, kind, a=0.0, b=1.0, mode="fan_in", nonlinearity="leaky_relu"))]
pub fn _init(
    tensor: &PyTensor,
    kind: &str,
    a: f64,
    b: f64,
    mode: &str,
    nonlinearity: &str,
) -> PyResult<()> {
    let t = &tensor.tensor();
    match kind {
        "uniform" => init::uniform_(t, a, b),
        "normal" => init::normal_(t, a, b),
        "constant" => init::constant_(t, a),
        "kaiming_uniform" => init::kaiming_uniform_(t, a, mode, nonlinearity),
        "kaiming_normal" => init::kaiming_normal_(t, a, mode, nonlinearity),
        "xavier_uniform" => init::xavier_uniform_(t, a),
        "xavier_normal" => init::xavier_normal_(t, a),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown initialiser {other}"
            )))
        }
    }
    .py()
}

#[pyfunction]
pub fn _fans(tensor: &PyTensor) -> PyResult<(usize, usize)> {
    init::fans(&tensor.tensor()).py()
}

fn run_all(py: Python<'_>, jobs: Vec<(Tensor, Tensor, Vec<Tensor>, Rule)>) -> PyResult<()> {
    py.detach(|| -> backprop::Result<()> {
        for (p, g, s, r) in &jobs {
            apply(p, g, s, r)?;
        }
        Ok(())
    })
    .py()
}

fn check_len(what: &str, n: usize, m: usize) -> PyResult<()> {
    if n != m {
        return Err(PyValueError::new_err(format!(
            "{what}: expected {n} entries, got {m}"
        )));
    }
    Ok(())
}

/// One SGD step over a parameter group. `buffers[i]` is the momentum buffer (None without
/// momentum); `init[i]` marks buffers created this step (PyTorch fills them with the gradient).
#[pyfunction]
#[pyo3(signature = (params, grads, buffers, init, *, lr, momentum, dampening, nesterov, weight_decay, maximize))]
#[allow(clippy::too_many_arguments)]
pub fn _sgd_step(
    py: Python<'_>,
    params: Vec<PyRef<'_, PyTensor>>,
    grads: Vec<PyRef<'_, PyTensor>>,
    buffers: Vec<Option<PyRef<'_, PyTensor>>>,
    init: Vec<bool>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    maximize: bool,
) -> PyResult<()> {
    let (ps, gs, bs) = (list(params), list(grads), opt_list(buffers));
    check_len("grads", ps.len(), gs.len())?;
    check_len("buffers", ps.len(), bs.len())?;
    check_len("init", ps.len(), init.len())?;
    let jobs = ps
        .into_iter()
        .zip(gs)
        .zip(bs)
        .zip(init)
        .map(|(((p, g), b), i)| {
            (
                p,
                g,
                b.into_iter().collect(),
                Rule::Sgd {
                    lr,
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                    maximize,
                    first_step: i,
                },
            )
        })
        .collect();
    run_all(py, jobs)
}

#[pyfunction]
#[pyo3(signature = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, *, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize))]
#[allow(clippy::too_many_arguments)]
pub fn _adam_step(
    py: Python<'_>,
    params: Vec<PyRef<'_, PyTensor>>,
    grads: Vec<PyRef<'_, PyTensor>>,
    exp_avgs: Vec<PyRef<'_, PyTensor>>,
    exp_avg_sqs: Vec<PyRef<'_, PyTensor>>,
    max_exp_avg_sqs: Vec<Option<PyRef<'_, PyTensor>>>,
    steps: Vec<u64>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    amsgrad: bool,
    maximize: bool,
) -> PyResult<()> {
    let (ps, gs, ms, vs, vm) = (
        list(params),
        list(grads),
        list(exp_avgs),
        list(exp_avg_sqs),
        opt_list(max_exp_avg_sqs),
    );
    for (w, n) in [
        ("grads", gs.len()),
        ("exp_avgs", ms.len()),
        ("exp_avg_sqs", vs.len()),
        ("max_exp_avg_sqs", vm.len()),
        ("steps", steps.len()),
    ] {
        check_len(w, ps.len(), n)?;
    }
    let mut jobs = Vec::with_capacity(ps.len());
    for i in 0..ps.len() {
        let mut st = vec![ms[i].clone(), vs[i].clone()];
        if amsgrad {
            st.push(
                vm[i]
                    .clone()
                    .ok_or_else(|| PyValueError::new_err("amsgrad needs max_exp_avg_sq buffers"))?,
            );
        }
        let rule = Rule::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            amsgrad,
            maximize,
            step: steps[i],
        };
        jobs.push((ps[i].clone(), gs[i].clone(), st, rule));
    }
    run_all(py, jobs)
}

#[pyfunction]
#[pyo3(signature = (params, grads, square_avgs, momentum_buffers, grad_avgs, *, lr, alpha, eps, weight_decay, momentum, centered, maximize))]
#[allow(clippy::too_many_arguments)]
pub fn _rmsprop_step(
    py: Python<'_>,
    params: Vec<PyRef<'_, PyTensor>>,
    grads: Vec<PyRef<'_, PyTensor>>,
    square_avgs: Vec<PyRef<'_, PyTensor>>,
    momentum_buffers: Vec<Option<PyRef<'_, PyTensor>>>,
    grad_avgs: Vec<Option<PyRef<'_, PyTensor>>>,
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    maximize: bool,
) -> PyResult<()> {
    let (ps, gs, sq, mb, ga) = (
        list(params),
        list(grads),
        list(square_avgs),
        opt_list(momentum_buffers),
        opt_list(grad_avgs),
    );
    for (w, n) in [
        ("grads", gs.len()),
        ("square_avgs", sq.len()),
        ("momentum_buffers", mb.len()),
        ("grad_avgs", ga.len()),
    ] {
        check_len(w, ps.len(), n)?;
    }
    let rule = Rule::RmsProp {
        lr,
        alpha,
        eps,
        weight_decay,
        momentum,
        centered,
        maximize,
    };
    let mut jobs = Vec::with_capacity(ps.len());
    for i in 0..ps.len() {
        let mut st = vec![sq[i].clone()];
        if momentum > 0.0 {
            st.push(
                mb[i]
                    .clone()
                    .ok_or_else(|| PyValueError::new_err("momentum needs momentum buffers"))?,
            );
        }
        if centered {
            st.push(
                ga[i]
                    .clone()
                    .ok_or_else(|| PyValueError::new_err("centered needs grad_avg buffers"))?,
            );
        }
        jobs.push((ps[i].clone(), gs[i].clone(), st, rule));
    }
    run_all(py, jobs)
}

#[pyfunction]
#[pyo3(signature = (params, grads, sums, steps, *, lr, lr_decay, weight_decay, eps, maximize))]
#[allow(clippy::too_many_arguments)]
pub fn _adagrad_step(
    py: Python<'_>,
    params: Vec<PyRef<'_, PyTensor>>,
    grads: Vec<PyRef<'_, PyTensor>>,
    sums: Vec<PyRef<'_, PyTensor>>,
    steps: Vec<u64>,
    lr: f64,
    lr_decay: f64,
    weight_decay: f64,
    eps: f64,
    maximize: bool,
) -> PyResult<()> {
    let (ps, gs, ss) = (list(params), list(grads), list(sums));
    check_len("grads", ps.len(), gs.len())?;
    check_len("sums", ps.len(), ss.len())?;
    check_len("steps", ps.len(), steps.len())?;
    let jobs = (0..ps.len())
        .map(|i| {
            (
                ps[i].clone(),
                gs[i].clone(),
                vec![ss[i].clone()],
                Rule::Adagrad {
                    lr,
                    lr_decay,
                    weight_decay,
                    eps,
                    maximize,
                    step: steps[i],
                },
            )
        })
        .collect();
    run_all(py, jobs)
}

#[pyfunction]
#[pyo3(signature = (parameters, max_norm, norm_type=2.0))]
pub fn _clip_grad_norm(
    py: Python<'_>,
    parameters: Vec<PyRef<'_, PyTensor>>,
    max_norm: f64,
    norm_type: f64,
) -> PyResult<PyTensor> {
    let ps = list(parameters);
    Ok(wrap(
        py.detach(|| backprop::nn::utils::clip_grad_norm_(&ps, max_norm, norm_type))
            .py()?,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => { $( m.add_function(wrap_pyfunction!($f, m)?)?; )* };
    }
    add!(
        linear,
        layer_norm,
        batch_norm,
        embedding,
        calculate_gain,
        _init,
        _fans,
        _sgd_step,
        _adam_step,
        _rmsprop_step,
        _adagrad_step,
        _clip_grad_norm
    );
    Ok(())
}
