//! Trains an MLP on the bundled handwritten digits (UCI, CC BY 4.0) with the Rust API alone:
//! `backprop::nn` layers, cross-entropy, Adam, mini-batches.
//!
//! Run with `cargo run --release --example digits`.

use backprop::nn::loss::{cross_entropy, ClassLossOptions};
use backprop::nn::{Linear, Module, Relu, Sequential};
use backprop::optim::{Adam, AdamConfig, Optimizer};
use backprop::{manual_seed, no_grad, DType, Device, Error, Result, Tensor};

mod shared;

fn load() -> Result<(Vec<f32>, Vec<i64>)> {
    let text = shared::bundled_text("digits.csv.gz", "digits")?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: Vec<f32> = line
            .split(',')
            .map(|s| s.trim().parse::<f32>().unwrap_or(f32::NAN))
            .collect();
        if v.len() != 65 || v.iter().any(|f| f.is_nan()) {
            return Err(Error::Io {
                op: "digits",
                msg: format!("malformed row: {line}"),
            });
        }
        x.extend(v[..64].iter().map(|p| p / 16.0));
        y.push(v[64] as i64);
    }
    Ok((x, y))
}

fn main() -> Result<()> {
    manual_seed(0);
    let (x, y) = load()?;
    let n = y.len();
    let n_test = 360;
    let x = Tensor::from_vec(x, [n, 64], Device::Cpu)?;
    let y = Tensor::from_vec(y, [n], Device::Cpu)?;
    // a seeded shuffle, then a train/test split
    let order = Tensor::randperm(n, Device::Cpu)?;
    let (x, y) = (
        x.index_select(0usize, &order)?,
        y.index_select(0usize, &order)?,
    );
    let (x_train, y_train) = (
        x.narrow(0usize, 0, n - n_test)?,
        y.narrow(0usize, 0, n - n_test)?,
    );
    let (x_test, y_test) = (
        x.narrow(0usize, n - n_test, n_test)?,
        y.narrow(0usize, n - n_test, n_test)?,
    );

    let model = Sequential::new()
        .add(Linear::new(64, 128, true, DType::F32, Device::Cpu)?)
        .add(Relu)
        .add(Linear::new(128, 10, true, DType::F32, Device::Cpu)?);
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let opts = ClassLossOptions::default();
    let batch = 32;
    let start = std::time::Instant::now();
    for epoch in 1..=30 {
        let perm = Tensor::randperm(n - n_test, Device::Cpu)?;
        let mut total = 0.0;
        for s in (0..n - n_test).step_by(batch) {
            let idx = perm.narrow(0usize, s, batch.min(n - n_test - s))?;
            let loss = cross_entropy(
                &model.forward(&x_train.index_select(0usize, &idx)?)?,
                &y_train.index_select(0usize, &idx)?,
                &opts,
            )?;
            opt.zero_grad()?;
            loss.backward()?;
            opt.step()?;
            total += loss.item()? * idx.numel() as f64;
        }
        if epoch % 10 == 0 {
            println!(
                "epoch {epoch:2}  train loss {:.4}",
                total / (n - n_test) as f64
            );
        }
    }
    let acc = {
        let _g = no_grad();
        let pred = model.forward(&x_test)?.argmax(Some(1), false)?;
        pred.eq(&y_test)?.to_dtype(DType::F32)?.mean_all()?.item()?
    };
    println!(
        "test accuracy {acc:.4} after {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
