//! # backprop
//!
//! A small deep-learning engine: n-dimensional tensors on the CPU (SIMD, threads) or any GPU
//! (WGSL compute shaders through `wgpu`), with reverse-mode automatic differentiation.
//!
//! ```
//! use backprop::{Tensor, DType, Device};
//!
//! // y = sum(tanh(W x + b)); dy/dW, dy/db by backpropagation
//! let w = Tensor::randn([3, 2], DType::F32, Device::Cpu)?.requires_grad_(true)?;
//! let b = Tensor::zeros([3], DType::F32, Device::Cpu)?.requires_grad_(true)?;
//! let x = Tensor::from_vec(vec![1.0f32, -2.0], [2], Device::Cpu)?;
//! let y = w.matmul(&x)?.add(&b)?.tanh()?.sum_all()?;
//! y.backward()?;
//! assert_eq!(w.grad().unwrap().dims(), &[3, 2]);
//! println!("dy/db = {}", b.grad().unwrap());
//! # Ok::<(), backprop::Error>(())
//! ```
//!
//! The crate is organised one concept per file: [`Tensor`] (`tensor.rs`) holds storage +
//! [`Layout`] + autograd metadata; `op.rs` lists the primitive ops; `autograd/` walks the graph
//! and holds every gradient rule; `cpu/` (and `gpu/` with the `gpu` feature) implement the
//! primitives behind one [`backend::BackendStorage`] trait; [`io`] saves and loads safetensors
//! checkpoints.

mod attention;
pub mod autocast;
pub mod autograd;
pub mod backend;
pub mod cpu;
mod creation;
pub mod device;
mod display;
pub mod dtype;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod gradcheck;
mod indexer;
mod indexing;
mod inplace;
pub mod io;
mod layer_norm;
pub mod layout;
mod linalg;
mod masking;
mod matrix;
mod memory_format;
pub mod nn;
mod norm;
pub mod op;
pub mod optim;
mod pointwise;
pub mod random;
mod rearrange;
mod reduction;
mod scan;
pub mod shape;
mod softmax;
mod sort;
pub mod storage;
pub mod tensor;
mod unfold;
mod views;
pub mod viz;
pub mod wgsl;

pub use autograd::{grad_mode, is_grad_enabled, no_grad, set_grad_enabled};
pub use device::{default_device, set_default_device, Device};
pub use display::{print_options, set_print_options, PrintOptions};
pub use dtype::{
    default_float, set_default_float, DType, Element, FloatElement, Participation, Scalar, UInt8,
};
pub use error::{CallbackError, Error, Result};
pub use indexer::{IndexOp, Indexer};
pub use layout::Layout;
pub use memory_format::MemoryFormat;
pub use norm::MatrixOrd;
pub use random::manual_seed;
pub use rearrange::MeshIndexing;
pub use shape::{Dim, Dims, Shape};
pub use tensor::{live_tensors, Tensor, TensorId};

/// The error for asking for the GPU in a build without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
pub(crate) fn gpu_unavailable() -> Error {
    Error::Gpu("this build of backprop has no GPU backend (enable the `gpu` cargo feature)".into())
}
