//! Uses the packaged crate the way a Rust program would: a forward pass, backpropagation, an
//! optimiser step, indexing, and the GPU query (which needs the WGSL sources inside the crate).

use backprop::optim::{Optimizer, Sgd, SgdConfig};
use backprop::{DType, Device, IndexOp, Tensor};

fn main() -> backprop::Result<()> {
    let w = Tensor::from_vec(vec![0.5f32, -0.25, 1.0, 2.0], [2, 2], Device::Cpu)?.requires_grad_(true)?;
    let x = Tensor::from_vec(vec![1.0f32, 3.0], [2], Device::Cpu)?;
    let loss = w.matmul(&x)?.tanh()?.sum_all()?;
    loss.backward()?;
    let g = w.grad().expect("a gradient");
    let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, ..Default::default() });
    opt.step()?;
    println!("loss {:.4}, grad row 0 {}", loss.item()?, g.i(0)?);
    // the WGSL sources travel with the crate
    assert!(backprop::wgsl::source("matmul").is_some());
    println!("gpu available: {}", backprop::gpu::is_available());
    Ok(())
}
