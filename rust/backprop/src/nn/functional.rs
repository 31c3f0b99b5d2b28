//! Stateless functions over tensors that are not primitives: dropout and friends.

use crate::{DType, Error, Result, Shape, Tensor};

/// Zeroes each element with probability `p` and scales the rest by `1/(1-p)` when `training`;
/// the identity otherwise. Masks come from the global generator, so `manual_seed` fixes them.
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout",
            format!("dropout probability has to be between 0 and 1, but got {p}"),
        ));
    }
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    if p == 1.0 {
        return x.mul(&x.zeros_scalar()?);
    }
    let mask = Tensor::bernoulli(x.shape().clone(), 1.0 - p, x.dtype(), x.device())?;
    x.mul(&mask.mul_scalar(1.0 / (1.0 - p))?)
}

/// `x @ weight^T + bias`, with `weight` shaped `[out_features, in_features]` as in PyTorch.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, x.device()) {
        let b = ac.cast_opt(bias)?;
        return linear(&ac.cast(x)?, &ac.cast(weight)?, b.as_ref());
    }
    let y = if weight.rank() == 1 {
        x.matmul(weight)?
    } else {
        x.matmul(&weight.mt()?)?
    };
    match bias {
        // the bias broadcasts to the output, never the output to the bias (PyTorch's addmm)
        Some(b) => {
            if b.rank() > y.rank()
                || Shape::broadcast("linear", y.shape(), b.shape())? != *y.shape()
            {
                return Err(Error::ShapeMismatch {
                    op: "linear",
                    lhs: y.shape().clone(),
                    rhs: b.shape().clone(),
                    detail: format!(
                        ": the bias (shape {}) must broadcast to the output (shape {}); for a weight of shape {} it has {} elements",
                        b.shape(),
                        y.shape(),
                        weight.shape(),
                        weight.dims().first().copied().unwrap_or(1)
                    ),
                });
            }
            y.add(b)
        }
        None => Ok(y),
    }
}

/// PyTorch's mixed-type normalisation: a float16/bfloat16 input with float32 parameters (the
/// usual case under autocast, where the layer's weights stay float32) is normalised in float32
/// and the result rounded once to the input's dtype, instead of promoting the output to float32.
fn mixed_half(x: &Tensor, params: &[Option<&Tensor>]) -> Option<DType> {
    let dt = x.dtype();
    let mixed = dt.is_float()
        && dt.is_storage_only()
        && params.iter().flatten().any(|p| p.dtype() == DType::F32);
    mixed.then_some(dt)
}

/// Normalises over the trailing `normalized_dims` dims (biased variance), then scales and shifts.
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let k = normalized_shape.len();
    if k == 0 || k > x.rank() || x.dims()[x.rank() - k..] != *normalized_shape {
        return Err(Error::ShapeMismatch {
            op: "layer_norm",
            lhs: x.shape().clone(),
            rhs: crate::Shape::new(normalized_shape.to_vec()),
            detail: ": normalized_shape must match the input's trailing dimensions".into(),
        });
    }
    if let Some(dt) = mixed_half(x, &[weight, bias]) {
        return layer_norm(
            &x.to_dtype(DType::F32)?,
            normalized_shape,
            weight,
            bias,
            eps,
        )?
        .to_dtype(dt);
    }
    let mut y = x.normalize_trailing(k, eps)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
}

/// Batch normalisation over every dim but 1 (input `[N, C]` or `[N, C, L]`). In training mode it
/// normalises with the batch statistics and, when running buffers are given, updates them in
/// place with `momentum` (PyTorch's convention: `running = (1 - m) * running + m * batch`, the
/// running variance being the unbiased one); in eval mode it uses the running buffers.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    if let Some(dt) = mixed_half(x, &[running_mean, running_var, weight, bias]) {
        let y = batch_norm(
            &x.to_dtype(DType::F32)?,
            running_mean,
            running_var,
            weight,
            bias,
            training,
            momentum,
            eps,
        )?;
        return y.to_dtype(dt);
    }
    if x.rank() < 2 {
        return Err(Error::InvalidShape {
            op: "batch_norm",
            shape: x.shape().clone(),
            msg: "expected an input of shape (N, C) or (N, C, L)".into(),
        });
    }
    let c = x.dims()[1];
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    // per-channel tensors broadcast as [1, C, 1, ...]
    let mut bshape = vec![1usize; x.rank()];
    bshape[1] = c;
    let per_channel = |t: &Tensor, what: &str| -> Result<Tensor> {
        if t.numel() != c {
            return Err(Error::ShapeMismatch {
                op: "batch_norm",
                lhs: x.shape().clone(),
                rhs: t.shape().clone(),
                detail: format!(": {what} must have {c} elements (one per channel)"),
            });
        }
        t.reshape(bshape.clone())
    };
    let (mean, var) = if training {
        let n: usize = dims.iter().map(|&d| x.dims()[d]).product();
        if n <= 1 {
            return Err(Error::invalid(
                "batch_norm",
                format!(
                    "expected more than 1 value per channel when training, got input of shape {}",
                    x.shape()
                ),
            ));
        }
        let mean = crate::layer_norm::accurate_mean(x, &dims)?;
        let centered = x.sub(&mean)?;
        let var = centered.mul(&centered)?.mean(&dims, true)?;
        if let (Some(rm), Some(rv)) = (running_mean, running_var) {
            let _g = crate::no_grad();
            let m = mean.detach().reshape([c])?;
            let v = var
                .detach()
                .reshape([c])?
                .mul_scalar(n as f64 / (n as f64 - 1.0))?;
            rm.copy_(
                &rm.mul_scalar(1.0 - momentum)?
                    .add(&m.mul_scalar(momentum)?)?,
            )?;
            rv.copy_(
                &rv.mul_scalar(1.0 - momentum)?
                    .add(&v.mul_scalar(momentum)?)?,
            )?;
        }
        (mean, var)
    } else {
        match (running_mean, running_var) {
            (Some(rm), Some(rv)) => (
                per_channel(rm, "running_mean")?,
                per_channel(rv, "running_var")?,
            ),
            _ => {
                return Err(Error::invalid(
                    "batch_norm",
                    "eval mode needs running_mean and running_var",
                ))
            }
        }
    };
    let mut y = x.sub(&mean)?.mul(&var.add_scalar(eps)?.rsqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(&per_channel(w, "weight")?)?;
    }
    if let Some(b) = bias {
        y = y.add(&per_channel(b, "bias")?)?;
    }
    Ok(y)
}

/// Rows of `weight` picked by integer `indices` (any shape): output `indices.shape + [dim]`.
pub fn embedding(indices: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if weight.rank() != 2 {
        return Err(Error::InvalidShape {
            op: "embedding",
            shape: weight.shape().clone(),
            msg: "weight must be 2-d [num_embeddings, embedding_dim]".into(),
        });
    }
    let flat = indices.reshape([indices.numel()])?;
    let rows = weight.index_select(0usize, &flat)?;
    let mut dims = indices.dims().to_vec();
    dims.push(weight.dims()[1]);
    rows.reshape(dims)
}
