//! Trains a character-level LSTM on the bundled tinyshakespeare (Karpathy's char-rnn data set,
//! the works of Shakespeare, public domain) with the Rust API alone: an embedding, one LSTM
//! layer written with tensor ops (the input projection of all steps in one matmul, then per step
//! one `h @ W_hh^T` and the gates), a linear head, cross-entropy, Adam, gradient clipping and
//! truncated backpropagation through time. Reports the training loss, the validation loss on
//! the last 10% of the text, and a sample.
//!
//! Run with `cargo run --release --example char_lstm [-- STEPS]` (default 400 steps).

use backprop::nn::loss::{cross_entropy, ClassLossOptions};
use backprop::nn::utils::clip_grad_norm_;
use backprop::nn::{init, Embedding, Linear, Module};
use backprop::optim::{Adam, AdamConfig, Optimizer};
use backprop::{manual_seed, no_grad, DType, Device, Error, Result, Tensor};

mod shared;

const EMBED: usize = 32;
const HIDDEN: usize = 128;
const BATCH: usize = 32;
const STEPS_T: usize = 32;

struct CharLstm {
    embed: Embedding,
    w_ih: Tensor,
    w_hh: Tensor,
    bias: Tensor,
    head: Linear,
}

impl CharLstm {
    fn new(vocab: usize) -> Result<CharLstm> {
        let dev = Device::Cpu;
        let bound = 1.0 / (HIDDEN as f64).sqrt(); // PyTorch's LSTM initialisation
        let param = |shape: &[usize]| -> Result<Tensor> {
            let t = Tensor::zeros(shape.to_vec(), DType::F32, dev)?;
            init::uniform_(&t, -bound, bound)?;
            t.requires_grad_(true)
        };
        Ok(CharLstm {
            embed: Embedding::new(vocab, EMBED, DType::F32, dev)?,
            w_ih: param(&[4 * HIDDEN, EMBED])?,
            w_hh: param(&[4 * HIDDEN, HIDDEN])?,
            bias: param(&[4 * HIDDEN])?,
            head: Linear::new(HIDDEN, vocab, true, DType::F32, dev)?,
        })
    }

    fn parameters(&self) -> Vec<Tensor> {
        let mut p = self.embed.parameters();
        p.extend([self.w_ih.clone(), self.w_hh.clone(), self.bias.clone()]);
        p.extend(self.head.parameters());
        p
    }

    /// Logits `[T * B, vocab]` for the time-major inputs `[T, B]`, and the final state.
    fn forward(&self, x: &Tensor, state: (Tensor, Tensor)) -> Result<(Tensor, (Tensor, Tensor))> {
        let (t_len, b) = (x.dims()[0], x.dims()[1]);
        let e = self.embed.forward(&x.reshape([t_len * b])?)?;
        // the input projection of every step at once: one GEMM
        let xw = e.matmul(&self.w_ih.t()?)?.add(&self.bias)?;
        let (mut h, mut c) = state;
        let mut outs = Vec::with_capacity(t_len);
        for t in 0..t_len {
            let gates = xw
                .narrow(0usize, t * b, b)?
                .add(&h.matmul(&self.w_hh.t()?)?)?;
            // PyTorch's gate order: input, forget, cell, output
            let gate = |k: usize| gates.narrow(1usize, k * HIDDEN, HIDDEN);
            let (i, f, g, o) = (gate(0)?, gate(1)?, gate(2)?, gate(3)?);
            c = f.sigmoid()?.mul(&c)?.add(&i.sigmoid()?.mul(&g.tanh()?)?)?;
            h = o.sigmoid()?.mul(&c.tanh()?)?;
            outs.push(h.clone());
        }
        let hs = Tensor::cat(&outs, 0usize)?;
        Ok((self.head.forward(&hs)?, (h, c)))
    }
}

fn zeros_state(b: usize) -> Result<(Tensor, Tensor)> {
    let z = || Tensor::zeros([b, HIDDEN], DType::F32, Device::Cpu);
    Ok((z()?, z()?))
}

/// `BATCH` random windows of `STEPS_T + 1` characters from `data`, as time-major inputs and
/// next-character targets.
fn batch(data: &[i64]) -> Result<(Tensor, Tensor)> {
    let starts = Tensor::randint(0, (data.len() - STEPS_T - 1) as i64, [BATCH], Device::Cpu)?
        .to_vec::<i64>()?;
    let (mut x, mut y) = (vec![0i64; STEPS_T * BATCH], vec![0i64; STEPS_T * BATCH]);
    for (j, &s) in starts.iter().enumerate() {
        for t in 0..STEPS_T {
            x[t * BATCH + j] = data[s as usize + t];
            y[t * BATCH + j] = data[s as usize + t + 1];
        }
    }
    Ok((
        Tensor::from_vec(x, [STEPS_T, BATCH], Device::Cpu)?,
        Tensor::from_vec(y, [STEPS_T * BATCH], Device::Cpu)?,
    ))
}

fn main() -> Result<()> {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    manual_seed(1337);
    let text = shared::bundled_text("tinyshakespeare.txt.gz", "char_lstm")?;
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let code = |ch: char| chars.binary_search(&ch).unwrap_or(0) as i64;
    let data: Vec<i64> = text.chars().map(code).collect();
    let split = data.len() * 9 / 10;
    let (train, val) = (&data[..split], &data[split..]);
    println!(
        "{} characters, vocabulary {}, {} for training",
        data.len(),
        chars.len(),
        train.len()
    );

    let model = CharLstm::new(chars.len())?;
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let opts = ClassLossOptions::default();
    let start = std::time::Instant::now();
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for step in 1..=steps {
        let (x, y) = batch(train)?;
        let (logits, _) = model.forward(&x, zeros_state(BATCH)?)?;
        let loss = cross_entropy(&logits, &y, &opts)?;
        opt.zero_grad()?;
        loss.backward()?;
        clip_grad_norm_(&model.parameters(), 1.0, 2.0)?;
        opt.step()?;
        last = loss.item()?;
        if step == 1 {
            first = last;
        }
        if step % 50 == 0 || step == steps {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "step {step:4}  train loss {:.4}  {:.0} chars/s",
                loss.item()?,
                (step * BATCH * STEPS_T) as f64 / secs
            );
        }
    }

    // CI runs a few steps: the loss must have fallen from the first step's (~ln 65 = 4.17)
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // also fails on a NaN loss
    if !(last < first) {
        return Err(Error::invalid(
            "char_lstm",
            format!("the training loss did not fall: {first:.4} -> {last:.4}"),
        ));
    }

    let _g = no_grad();
    let mut total = 0.0;
    let evals = 20;
    for _ in 0..evals {
        let (x, y) = batch(val)?;
        let (logits, _) = model.forward(&x, zeros_state(BATCH)?)?;
        total += cross_entropy(&logits, &y, &opts)?.item()?;
    }
    println!(
        "validation loss {:.4} (mean of {evals} batches of {BATCH} x {STEPS_T}) after {:.1} s",
        total / evals as f64,
        start.elapsed().as_secs_f64()
    );

    // a greedy-free sample: draw each next character from the softmax
    let mut state = zeros_state(1)?;
    let mut ch = code('\n');
    let mut out = String::new();
    for _ in 0..200 {
        let x = Tensor::from_vec(vec![ch], [1, 1], Device::Cpu)?;
        let (logits, s) = model.forward(&x, state)?;
        state = s;
        let probs = logits.softmax(1usize)?.to_vec::<f32>()?;
        let u = Tensor::rand([1], DType::F32, Device::Cpu)?.to_vec::<f32>()?[0];
        let mut acc = 0.0;
        ch = (probs.len() - 1) as i64;
        for (k, p) in probs.iter().enumerate() {
            acc += p;
            if u < acc {
                ch = k as i64;
                break;
            }
        }
        out.push(chars[ch as usize]);
    }
    println!("sample:\n{out}");
    Ok(())
}
