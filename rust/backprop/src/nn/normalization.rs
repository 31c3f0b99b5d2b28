//! Layer normalisation and batch normalisation.

use super::{functional, Module};
use crate::{DType, Device, Result, Tensor};

/// Normalises the trailing `normalized_shape` dims of each sample, then applies a learned
/// per-element scale and shift.
pub struct LayerNorm {
    pub normalized_shape: Vec<usize>,
    pub eps: f64,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
}

impl LayerNorm {
    pub fn new(
        normalized_shape: Vec<usize>,
        eps: f64,
        affine: bool,
        dtype: DType,
        device: Device,
    ) -> Result<LayerNorm> {
        let (weight, bias) = if affine {
            (
                Some(Tensor::ones(normalized_shape.clone(), dtype, device)?.requires_grad_(true)?),
                Some(Tensor::zeros(normalized_shape.clone(), dtype, device)?.requires_grad_(true)?),
            )
        } else {
            (None, None)
        };
        Ok(LayerNorm {
            normalized_shape,
            eps,
            weight,
            bias,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::layer_norm(
            x,
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".into(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".into(), b.clone()));
        }
        v
    }
}

/// Batch normalisation over `[N, C]` or `[N, C, L]` inputs, with running statistics.
pub struct BatchNorm1d {
    pub eps: f64,
    pub momentum: f64,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub training: bool,
}

impl BatchNorm1d {
    pub fn new(
        num_features: usize,
        eps: f64,
        momentum: f64,
        affine: bool,
        dtype: DType,
        device: Device,
    ) -> Result<BatchNorm1d> {
        let (weight, bias) = if affine {
            (
                Some(Tensor::ones([num_features], dtype, device)?.requires_grad_(true)?),
                Some(Tensor::zeros([num_features], dtype, device)?.requires_grad_(true)?),
            )
        } else {
            (None, None)
        };
        Ok(BatchNorm1d {
            eps,
            momentum,
            weight,
            bias,
            running_mean: Tensor::zeros([num_features], dtype, device)?,
            running_var: Tensor::ones([num_features], dtype, device)?,
            training: true,
        })
    }
}

impl Module for BatchNorm1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::batch_norm(
            x,
            Some(&self.running_mean),
            Some(&self.running_var),
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.training,
            self.momentum,
            self.eps,
        )
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".into(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".into(), b.clone()));
        }
        v
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        vec![
            ("running_mean".into(), self.running_mean.clone()),
            ("running_var".into(), self.running_var.clone()),
        ]
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
