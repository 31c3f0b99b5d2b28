//! Neural-network building blocks usable from Rust: layers (`Module`), functional ops, losses,
//! initialisers and training utilities. The Python `backprop_rs.nn` classes call the same
//! functional ops, so the maths lives here once.

mod activation;
pub mod conv;
mod conv_layers;
mod embedding;
pub mod functional;
pub mod init;
mod linear;
pub mod loss;
mod module;
mod normalization;
pub mod rnn;
pub mod utils;

pub use activation::{
    Dropout, Flatten, Gelu, Identity, LeakyRelu, LogSoftmax, Relu, Sigmoid, Softmax, Tanh,
};
pub use conv_layers::{AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d};
pub use embedding::Embedding;
pub use linear::Linear;
pub use loss::Reduction;
pub use module::{Module, Sequential};
pub use normalization::{BatchNorm1d, LayerNorm};
