//! Parameter-free layers: activations, softmax, identity, flatten.

use super::Module;
use crate::{Result, Tensor};

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        impl Module for $name {
            fn forward(&self, $x: &Tensor) -> Result<Tensor> {
                $body
            }
        }
    };
}

activation!(/// `max(0, x)`
    Relu, |x| x.relu());
activation!(/// `tanh(x)`
    Tanh, |x| x.tanh());
activation!(/// `1 / (1 + exp(-x))`
    Sigmoid, |x| x.sigmoid());
activation!(/// Exact GELU, `x * Phi(x)`
    Gelu, |x| x.gelu());
activation!(/// Passes its input through.
    Identity, |x| Ok(x.clone()));

/// `max(0, x) + slope * min(0, x)`.
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu(pub f64);
impl Module for LeakyRelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.leaky_relu(self.0)
    }
}

/// Softmax along a dim.
#[derive(Debug, Clone, Copy)]
pub struct Softmax(pub i64);
impl Module for Softmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.softmax(self.0)
    }
}

/// Log-softmax along a dim.
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax(pub i64);
impl Module for LogSoftmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.log_softmax(self.0)
    }
}

/// Flattens dims `start..=end` (PyTorch's default: 1..=-1, keeping the batch dim).
#[derive(Debug, Clone, Copy)]
pub struct Flatten {
    pub start: i64,
    pub end: i64,
}
impl Default for Flatten {
    fn default() -> Self {
        Flatten { start: 1, end: -1 }
    }
}
impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten(self.start, self.end)
    }
}

/// Zeroes elements with probability `p` during training (scaling the rest by 1/(1-p)).
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f64,
    pub training: bool,
}
impl Dropout {
    pub fn new(p: f64) -> Dropout {
        Dropout { p, training: true }
    }
}
impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::functional::dropout(x, self.p, self.training)
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
