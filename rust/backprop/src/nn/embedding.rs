//! Lookup table of learned vectors.

use super::{functional, init, Module};
use crate::{DType, Device, Result, Tensor};

/// Maps integer ids to rows of a `[num_embeddings, dim]` weight (initialised N(0, 1), as PyTorch).
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(
        num_embeddings: usize,
        dim: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Embedding> {
        let weight = Tensor::zeros([num_embeddings, dim], dtype, device)?;
        init::normal_(&weight, 0.0, 1.0)?;
        Ok(Embedding {
            weight: weight.requires_grad_(true)?,
        })
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        functional::embedding(ids, &self.weight)
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".into(), self.weight.clone())]
    }
}
