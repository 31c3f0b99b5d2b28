//! Trains a 2-8-1 MLP on XOR with nothing but the Rust API: forward, loss, backward, SGD.
//!
//! Run with `cargo run --example xor`.

use backprop::nn::loss::{binary_cross_entropy_with_logits, Reduction};
use backprop::{manual_seed, no_grad, DType, Device, Result, Tensor};

fn main() -> Result<()> {
    manual_seed(0);
    let dev = Device::Cpu;
    let x = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [4, 2], dev)?;
    let y = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0], [4, 1], dev)?;

    // Kaiming-uniform-style init, as nn.Linear does.
    let w1 = Tensor::uniform([2, 8], -0.7, 0.7, DType::F32, dev)?.requires_grad_(true)?;
    let b1 = Tensor::zeros([8], DType::F32, dev)?.requires_grad_(true)?;
    let w2 = Tensor::uniform([8, 1], -0.35, 0.35, DType::F32, dev)?.requires_grad_(true)?;
    let b2 = Tensor::zeros([1], DType::F32, dev)?.requires_grad_(true)?;
    let params = [&w1, &b1, &w2, &b2];
    let lr = 0.5;

    let mut loss_value = f64::NAN;
    for step in 0..2000 {
        let h = x.matmul(&w1)?.add(&b1)?.tanh()?;
        let logits = h.matmul(&w2)?.add(&b2)?;
        let loss = binary_cross_entropy_with_logits(&logits, &y, None, None, Reduction::Mean)?;
        loss.backward()?;
        {
            let _g = no_grad();
            for p in params {
                if let Some(g) = p.grad() {
                    p.copy_(&p.sub(&g.mul_scalar(lr)?)?)?;
                }
                p.set_grad(None)?;
            }
        }
        loss_value = loss.item()?;
        if step % 500 == 0 {
            println!("step {step:4}  loss {loss_value:.4}");
        }
    }
    let pred = {
        let _g = no_grad();
        x.matmul(&w1)?
            .add(&b1)?
            .tanh()?
            .matmul(&w2)?
            .add(&b2)?
            .sigmoid()?
    };
    println!("final loss {loss_value:.4}");
    println!("predictions for (0,0) (0,1) (1,0) (1,1): {pred}");
    let p = pred.to_vec::<f32>()?;
    let correct = p
        .iter()
        .zip([0.0, 1.0, 1.0, 0.0])
        .filter(|(a, b)| ((**a > 0.5) as i32 as f32) == *b)
        .count();
    println!("{correct}/4 correct");
    Ok(())
}
