//! Neural-network building blocks usable from Rust: functional losses and activations.
//! (Layers and optimizers build on these.)

pub mod functional;
pub mod loss;

pub use loss::Reduction;
