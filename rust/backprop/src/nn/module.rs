//! The `Module` trait for Rust users, and `Sequential`.

use crate::{Result, Tensor};

/// A layer (or a network of layers): a forward function plus its parameters.
///
/// ```
/// use backprop::nn::{Linear, Module, Relu, Sequential};
/// use backprop::{DType, Device, Tensor};
/// let mlp = Sequential::new()
///     .add(Linear::new(4, 8, true, DType::F32, Device::Cpu)?)
///     .add(Relu)
///     .add(Linear::new(8, 2, true, DType::F32, Device::Cpu)?);
/// let y = mlp.forward(&Tensor::ones([5, 4], DType::F32, Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[5, 2]);
/// assert_eq!(mlp.parameters().len(), 4);
/// # Ok::<(), backprop::Error>(())
/// ```
pub trait Module: Send + Sync {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Parameters with dotted names (`"0.weight"`), in a stable order.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Non-trainable state that is saved with the model (e.g. batch-norm running statistics).
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Switches training behaviour (dropout, batch-norm statistics) on or off.
    fn set_training(&mut self, _training: bool) {}
}

/// Modules applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer (builder style).
    #[allow(clippy::should_implement_trait)] // a builder step, not arithmetic
    pub fn add<M: Module + 'static>(mut self, m: M) -> Self {
        self.layers.push(Box::new(m));
        self
    }

    pub fn push(&mut self, m: Box<dyn Module>) {
        self.layers.push(m);
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h)?;
        }
        Ok(h)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            v.extend(
                l.named_parameters()
                    .into_iter()
                    .map(|(n, t)| (format!("{i}.{n}"), t)),
            );
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            v.extend(
                l.named_buffers()
                    .into_iter()
                    .map(|(n, t)| (format!("{i}.{n}"), t)),
            );
        }
        v
    }

    fn set_training(&mut self, training: bool) {
        for l in &mut self.layers {
            l.set_training(training);
        }
    }
}
