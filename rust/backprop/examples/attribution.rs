//! Backprop at work, from Rust: trains a 2-4-1 MLP on XOR, prints its graph as Graphviz DOT
//! (pipe it to `dot -Tsvg`), then attributes the loss change from the zero weights to the
//! trained ones to each weight with integrated gradients, and checks that the shares add up.
//!
//! Run with `cargo run --example attribution` (`-- --dot` prints only the DOT text).

use backprop::nn::loss::{mse_loss, Reduction};
use backprop::{manual_seed, no_grad, viz, DType, Device, Result, Tensor};

fn main() -> Result<()> {
    let dot_only = std::env::args().any(|a| a == "--dot");
    manual_seed(1);
    let dev = Device::Cpu;
    let x = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [4, 2], dev)?;
    let y = Tensor::from_vec(vec![0.0f64, 1.0, 1.0, 0.0], [4, 1], dev)?;
    let w1 = Tensor::uniform([2, 4], -1.0, 1.0, DType::F64, dev)?.requires_grad_(true)?;
    let b1 = Tensor::zeros([4], DType::F64, dev)?.requires_grad_(true)?;
    let w2 = Tensor::uniform([4, 1], -1.0, 1.0, DType::F64, dev)?.requires_grad_(true)?;
    let b2 = Tensor::zeros([1], DType::F64, dev)?.requires_grad_(true)?;
    let params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()];
    let names = ["w1", "b1", "w2", "b2"];
    let loss_fn = || -> Result<Tensor> {
        let h = x.matmul(&w1)?.add(&b1)?.tanh()?;
        let out = h.matmul(&w2)?.add(&b2)?.sigmoid()?;
        mse_loss(&out, &y, Reduction::Mean)
    };

    for _ in 0..3000 {
        let loss = loss_fn()?;
        loss.backward()?;
        let _g = no_grad();
        for p in &params {
            if let Some(g) = p.grad() {
                p.copy_(&p.sub(&g.mul_scalar(2.0)?)?)?;
            }
            p.set_grad(None)?;
        }
    }

    let loss = loss_fn()?;
    let named: Vec<(&str, &Tensor)> = names.iter().copied().zip(params.iter()).collect();
    let dot = viz::to_dot(&[&loss], &named, &viz::DotOptions::default())?;
    if dot_only {
        print!("{dot}");
        return Ok(());
    }
    println!("{dot}");
    println!("trained loss {:.5}", loss.item()?);

    let ig = viz::integrated_gradients(&params, None, 64, loss_fn)?;
    println!(
        "loss at the zero weights {:.5}, trained {:.5}: change {:.5}",
        ig.loss_baseline,
        ig.loss,
        ig.loss - ig.loss_baseline
    );
    for (name, a) in names.iter().zip(&ig.attributions) {
        let v = a.to_vec::<f64>()?;
        println!("{name}: share of the change {:+.5}", v.iter().sum::<f64>());
    }
    println!(
        "the shares add up to the change within {:.2e} (relative)",
        ig.relative_residual()
    );
    if ig.relative_residual() > 1e-2 {
        return Err(backprop::Error::invalid(
            "attribution example",
            "completeness residual above 1%",
        ));
    }
    Ok(())
}
