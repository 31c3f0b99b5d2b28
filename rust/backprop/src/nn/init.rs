//! Weight initialisation with PyTorch's formulas (and PyTorch's defaults per layer).
//! Every function fills the tensor in place, outside the graph.

use crate::{Error, Result, Tensor};

/// The recommended gain for a nonlinearity (`param` is the leaky-relu slope).
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> Result<f64> {
    Ok(match nonlinearity {
        "linear" | "identity" | "sigmoid" | "conv1d" | "conv2d" | "conv3d" => 1.0,
        "tanh" => 5.0 / 3.0,
        "relu" => 2f64.sqrt(),
        "leaky_relu" => {
            let a = param.unwrap_or(0.01);
            (2.0 / (1.0 + a * a)).sqrt()
        }
        "selu" => 0.75,
        other => {
            return Err(Error::invalid(
                "calculate_gain",
                format!("unsupported nonlinearity {other}"),
            ))
        }
    })
}

/// `(fan_in, fan_out)` of a weight: `[out, in, *receptive_field]`.
pub fn fans(t: &Tensor) -> Result<(usize, usize)> {
    if t.rank() < 2 {
        return Err(Error::InvalidShape {
            op: "init",
            shape: t.shape().clone(),
            msg: "fan in and fan out need a tensor with at least 2 dimensions".into(),
        });
    }
    let receptive: usize = t.dims()[2..].iter().product();
    Ok((t.dims()[1] * receptive, t.dims()[0] * receptive))
}

/// Initialisers write under no_grad, like PyTorch's: the tensor keeps its identity and history.
fn fill(t: &Tensor, v: Tensor) -> Result<()> {
    let _g = crate::no_grad();
    t.copy_(&v).map(|_| ())
}

pub fn uniform_(t: &Tensor, lo: f64, hi: f64) -> Result<()> {
    fill(
        t,
        Tensor::uniform(t.shape().clone(), lo, hi, t.dtype(), t.device())?,
    )
}
pub fn normal_(t: &Tensor, mean: f64, std: f64) -> Result<()> {
    fill(
        t,
        Tensor::normal(t.shape().clone(), mean, std, t.dtype(), t.device())?,
    )
}
pub fn constant_(t: &Tensor, v: f64) -> Result<()> {
    let _g = crate::no_grad();
    t.copy_(&Tensor::full(
        crate::Shape::scalar(),
        v,
        t.dtype(),
        t.device(),
    )?)
    .map(|_| ())
}
pub fn zeros_(t: &Tensor) -> Result<()> {
    constant_(t, 0.0)
}
pub fn ones_(t: &Tensor) -> Result<()> {
    constant_(t, 1.0)
}

fn fan(t: &Tensor, mode: &str) -> Result<usize> {
    let (fi, fo) = fans(t)?;
    match mode {
        "fan_in" => Ok(fi),
        "fan_out" => Ok(fo),
        other => Err(Error::invalid(
            "kaiming",
            format!("mode must be 'fan_in' or 'fan_out', got {other}"),
        )),
    }
}

/// He initialisation, uniform: bound = gain * sqrt(3 / fan).
pub fn kaiming_uniform_(t: &Tensor, a: f64, mode: &str, nonlinearity: &str) -> Result<()> {
    let std = calculate_gain(nonlinearity, Some(a))? / (fan(t, mode)?.max(1) as f64).sqrt();
    let bound = 3f64.sqrt() * std;
    uniform_(t, -bound, bound)
}

/// He initialisation, normal: std = gain / sqrt(fan).
pub fn kaiming_normal_(t: &Tensor, a: f64, mode: &str, nonlinearity: &str) -> Result<()> {
    let std = calculate_gain(nonlinearity, Some(a))? / (fan(t, mode)?.max(1) as f64).sqrt();
    normal_(t, 0.0, std)
}

/// Glorot initialisation, uniform: bound = gain * sqrt(6 / (fan_in + fan_out)).
pub fn xavier_uniform_(t: &Tensor, gain: f64) -> Result<()> {
    let (fi, fo) = fans(t)?;
    let bound = gain * (6.0 / (fi + fo).max(1) as f64).sqrt();
    uniform_(t, -bound, bound)
}

/// Glorot initialisation, normal: std = gain * sqrt(2 / (fan_in + fan_out)).
pub fn xavier_normal_(t: &Tensor, gain: f64) -> Result<()> {
    let (fi, fo) = fans(t)?;
    normal_(t, 0.0, gain * (2.0 / (fi + fo).max(1) as f64).sqrt())
}
