//! Fully connected layer.

use super::{functional, init, Module};
use crate::{DType, Device, Result, Tensor};

/// `y = x W^T + b` with `W: [out, in]`, initialised as PyTorch does (Kaiming-uniform with
/// a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), for both weight and bias).
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        device: Device,
    ) -> Result<Linear> {
        let weight = Tensor::zeros([out_features, in_features], dtype, device)?;
        init::kaiming_uniform_(&weight, 5f64.sqrt(), "fan_in", "leaky_relu")?;
        let bias = if bias {
            let b = Tensor::zeros([out_features], dtype, device)?;
            let bound = if in_features > 0 {
                1.0 / (in_features as f64).sqrt()
            } else {
                0.0
            };
            init::uniform_(&b, -bound, bound)?;
            Some(b.requires_grad_(true)?)
        } else {
            None
        };
        Ok(Linear {
            weight: weight.requires_grad_(true)?,
            bias,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::linear(x, &self.weight, self.bias.as_ref())
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }
}
