//! One LSTM layer direction over a whole sequence with a hand-written backward through time
//! (the structure of cuDNN's RNN kernels), as an [`autograd::Function`](crate::autograd::Function).
//!
//! Each step is one GEMM and one fused pointwise kernel (`cpu/rnn.rs`, `lstm_cell` in
//! `shaders/elementwise.wgsl`), forward and backward. Autograd through the per-step ops would
//! record ~12 nodes per step and, in the backward,
//! compute the recurrent weight's gradient as T separate `dgates_t^T h_{t-1}` products with an
//! inner dimension of one batch, then add them up. Here the forward runs unrecorded, keeping the
//! gate activations and the cell states; the backward walks the steps in reverse with one GEMM
//! per step (`dh_{t-1} = dgates_t W_hh`) and then forms `dW_hh = dG^T H` as one GEMM over all
//! T x B rows. Everything is Tensor ops, so it runs on either device. Under `create_graph` the
//! backward recomputes the layer with recorded ops and differentiates that, so second
//! derivatives are exact too.

use crate::autograd::{apply, BackwardCtx, Function, FunctionCtx};
use crate::{Error, Result, Tensor};

/// `(outputs [T, B, H], h_T [B, H], c_T [B, H])` of one LSTM direction, PyTorch's gate order
/// (i, f, g, o): `gates_t = xw_t + h_{t-1} W_hh^T`, `c_t = f c_{t-1} + i g`,
/// `h_t = o tanh(c_t)`. `xw` is `[T, B, 4H]`, the input projection of every step with both
/// biases already added; `reverse` walks the steps from the last (the outputs stay in time
/// order).
///
/// ```
/// # use backprop::{DType, Device, Tensor};
/// # use backprop::nn::rnn::lstm_layer;
/// let (t, b, h) = (5, 2, 3);
/// let xw = Tensor::randn([t, b, 4 * h], DType::F64, Device::Cpu)?;
/// let w_hh = Tensor::randn([4 * h, h], DType::F64, Device::Cpu)?;
/// let zeros = Tensor::zeros([b, h], DType::F64, Device::Cpu)?;
/// let (out, h_t, _c_t) = lstm_layer(&xw, &zeros, &zeros, &w_hh, false)?;
/// assert_eq!(out.dims(), &[5, 2, 3]);
/// let last = out.select(0, 4)?.sub(&h_t)?.abs()?.max_all()?.item()?;
/// assert_eq!(last, 0.0);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn lstm_layer(
    xw: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    w_hh: &Tensor,
    reverse: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    // PyTorch's CPU list has the LSTM layer (`mkldnn_rnn_layer`) in lower precision
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, xw.device()) {
        let (xw, h0, c0, w) = (ac.cast(xw)?, ac.cast(h0)?, ac.cast(c0)?, ac.cast(w_hh)?);
        return lstm_layer(&xw, &h0, &c0, &w, reverse);
    }
    let (t, b, g4) = match xw.dims() {
        &[t, b, g4] => (t, b, g4),
        _ => return Err(bad(xw, w_hh, "xw must be [T, B, 4H]")),
    };
    let h = w_hh.dims().get(1).copied().unwrap_or(0);
    if w_hh.rank() != 2 || g4 != 4 * h || w_hh.dims()[0] != g4 {
        return Err(bad(xw, w_hh, "expected xw [T, B, 4H] and w_hh [4H, H]"));
    }
    for s in [h0, c0] {
        if s.dims() != [b, h] {
            return Err(bad(s, w_hh, "h0 and c0 must be [B, H]"));
        }
    }
    if t == 0 {
        return Err(bad(xw, w_hh, "the sequence is empty"));
    }
    let mut out = apply(
        LstmLayer { reverse },
        &[xw.clone(), h0.clone(), c0.clone(), w_hh.clone()],
    )?;
    let c_t = out.pop();
    let h_t = out.pop();
    let hs = out.pop();
    match (hs, h_t, c_t) {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(Error::Autograd(
            "lstm_layer: the function lost an output".into(),
        )),
    }
}

fn bad(a: &Tensor, b: &Tensor, detail: &str) -> Error {
    Error::ShapeMismatch {
        op: "lstm_layer",
        lhs: a.shape().clone(),
        rhs: b.shape().clone(),
        detail: format!(": {detail}"),
    }
}

/// The fused cell step (backend kernel `lstm_cell`): `(h, c, act)` from `pre [B, 4H]` and the
/// previous cell `[B, H]`. Unrecorded: only `Function::forward` calls it.
fn cell(pre: &Tensor, cp: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (pre, cp) = (pre.contiguous()?, cp.contiguous()?);
    let (b, h4) = (pre.dims()[0], pre.dims()[1]);
    let (hn, cn, act) = crate::tensor::with_read([&pre, &cp], |[p, c]| {
        p.lstm_cell(pre.layout(), (c, cp.layout()))
    })?;
    let bh = crate::Shape::new(vec![b, h4 / 4]);
    Ok((
        Tensor::from_storage(hn, bh.clone()),
        Tensor::from_storage(cn, bh),
        Tensor::from_storage(act, pre.shape().clone()),
    ))
}

/// The fused cell backward (backend kernel `lstm_cell_backward`): `(dgates, dc_prev)`.
fn cell_backward(
    act: &Tensor,
    c: &Tensor,
    cp: &Tensor,
    dh: &Tensor,
    dc: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let ts = [act, c, cp, dh, dc].map(|t| t.contiguous());
    let [a, c, cp, dh, dc] = ts;
    let (a, c, cp, dh, dc) = (a?, c?, cp?, dh?, dc?);
    let (dg, dcp) = crate::tensor::with_read([&a, &c, &cp, &dh, &dc], |[sa, sc, sp, sh, sd]| {
        sa.lstm_cell_backward(
            a.layout(),
            (sc, c.layout()),
            (sp, cp.layout()),
            (sh, dh.layout()),
            (sd, dc.layout()),
        )
    })?;
    Ok((
        Tensor::from_storage(dg, a.shape().clone()),
        Tensor::from_storage(dcp, c.shape().clone()),
    ))
}

struct LstmLayer {
    reverse: bool,
}

/// The activations of one step from its pre-activations `[B, 4H]`: `[i, f, g, o]` with the
/// sigmoid on i, f, o and tanh on g, as one `[B, 4H]` tensor.
fn activate(pre: &Tensor, h: usize) -> Result<Tensor> {
    let s = pre.sigmoid()?;
    let g = pre.narrow(1usize, 2 * h, h)?.tanh()?;
    Tensor::cat(
        &[s.narrow(1usize, 0, 2 * h)?, g, s.narrow(1usize, 3 * h, h)?],
        1usize,
    )
}

impl LstmLayer {
    /// The steps in the order they run.
    fn order(&self, t: usize) -> Vec<usize> {
        if self.reverse {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        }
    }

    /// The forward as `Function::forward` runs it (unrecorded): one GEMM and one fused cell
    /// kernel per step.
    fn run_fused(&self, xw: &Tensor, h0: &Tensor, c0: &Tensor, w_hh: &Tensor) -> Result<Steps> {
        self.run_steps([xw, h0, c0, w_hh], cell)
    }

    /// The same forward composed from recorded ops, under whatever grad mode is on (the
    /// `create_graph` recomputation).
    fn run(&self, xw: &Tensor, h0: &Tensor, c0: &Tensor, w_hh: &Tensor) -> Result<Steps> {
        let h = w_hh.dims()[1];
        self.run_steps([xw, h0, c0, w_hh], |pre, cc| {
            let a = activate(pre, h)?;
            let (i, f) = (a.narrow(1usize, 0, h)?, a.narrow(1usize, h, h)?);
            let (g, o) = (a.narrow(1usize, 2 * h, h)?, a.narrow(1usize, 3 * h, h)?);
            let c = f.mul(cc)?.add(&i.mul(&g)?)?;
            Ok((o.mul(&c.tanh()?)?, c, a))
        })
    }

    /// The step loop shared by both: `step(pre, c_prev) -> (h, c, act)` after the recurrent GEMM.
    fn run_steps(
        &self,
        [xw, h0, c0, w_hh]: [&Tensor; 4],
        step: impl Fn(&Tensor, &Tensor) -> Result<(Tensor, Tensor, Tensor)>,
    ) -> Result<Steps> {
        let t = xw.dims()[0];
        // W_hh^T laid out contiguous once per sequence: every step then multiplies by it in the
        // orientation `gemm` runs fastest (32x256 @ 256x1024, the LSTM bench's step: 142 us
        // through the transposed view, 111 us contiguous; median of 7 x 500 calls)
        let w_t = w_hh.t()?.contiguous()?;
        let (mut hh, mut cc) = (h0.clone(), c0.clone());
        let mut outs = vec![None; t];
        let (mut acts, mut cells, mut prev) = (vec![None; t], vec![None; t], vec![None; t]);
        for s in self.order(t) {
            let pre = xw.select(0usize, s as i64)?.add(&hh.matmul(&w_t)?)?;
            let (h_new, c, a) = step(&pre, &cc)?;
            prev[s] = Some(hh);
            acts[s] = Some(a);
            cells[s] = Some(c.clone());
            outs[s] = Some(h_new.clone());
            hh = h_new;
            cc = c;
        }
        let flat = |v: Vec<Option<Tensor>>| -> Vec<Tensor> { v.into_iter().flatten().collect() };
        Ok(Steps {
            // the one stacked copy: the layer's output
            outs: Tensor::stack(&flat(outs), 0usize)?,
            h_t: hh,
            c_t: cc,
            acts: flat(acts),
            cells: flat(cells),
            prev: flat(prev),
        })
    }
}

/// What the step loop leaves: the outputs `[T, B, H]` and final states, and per step (in time
/// order) the gate activations `[B, 4H]`, the cell `c_t` and the `h` the step read. The
/// per-step tensors stay separate: the backward reads them one step at a time, and stacking
/// them was a quarter of the forward (3.7M floats copied per call on the LSTM bench).
struct Steps {
    outs: Tensor,
    h_t: Tensor,
    c_t: Tensor,
    acts: Vec<Tensor>,
    cells: Vec<Tensor>,
    prev: Vec<Tensor>,
}

impl Function for LstmLayer {
    fn name(&self) -> String {
        "LstmLayerBackward".into()
    }

    fn forward(&self, ctx: &mut FunctionCtx, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let [xw, h0, c0, w_hh] = inputs else {
            return Err(Error::Autograd("lstm_layer: expected 4 inputs".into()));
        };
        let st = self.run_fused(xw, h0, c0, w_hh)?;
        // the inputs (for create_graph's recomputation), then what the hand-written backward
        // reads: T activations, T cells, T previous h
        let mut saved = inputs.to_vec();
        saved.extend(st.acts);
        saved.extend(st.cells);
        saved.extend(st.prev);
        ctx.save_for_backward(&saved);
        Ok(vec![st.outs, st.h_t, st.c_t])
    }

    fn backward(&self, ctx: &BackwardCtx, grads: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let saved: Vec<Tensor> = ctx.saved_tensors().iter().flatten().cloned().collect();
        let missing = || Error::Autograd("lstm_layer: saved tensors missing".into());
        let (inputs, per_step) = saved.split_at_checked(4).ok_or_else(missing)?;
        let [xw, h0, c0, w_hh] = inputs else {
            return Err(missing());
        };
        let [g_out, g_h, g_c] = grads else {
            return Err(Error::Autograd("lstm_layer: expected 3 gradients".into()));
        };
        if crate::is_grad_enabled() {
            return self.backward_recorded([xw, h0, c0, w_hh], grads);
        }
        let (t, b, h) = (xw.dims()[0], xw.dims()[1], w_hh.dims()[1]);
        if per_step.len() != 3 * t {
            return Err(missing());
        }
        let (acts, rest) = per_step.split_at(t);
        let (cells, prev) = rest.split_at(t);
        let mut dh = g_h.clone();
        let mut dc = g_c.clone();
        let mut dgates = vec![None; t];
        let order: Vec<usize> = self.order(t).into_iter().rev().collect();
        for &s in &order {
            let c_prev = if s == order[order.len() - 1] {
                c0
            } else if self.reverse {
                &cells[s + 1]
            } else {
                &cells[s - 1]
            };
            let dh_s = dh.add(&g_out.select(0usize, s as i64)?)?;
            let (dg, dc_prev) = cell_backward(&acts[s], &cells[s], c_prev, &dh_s, &dc)?;
            dh = dg.matmul(w_hh)?;
            dc = dc_prev;
            dgates[s] = Some(dg);
        }
        let dg: Vec<Tensor> = dgates.into_iter().flatten().collect();
        let dg = Tensor::stack(&dg, 0usize)?; // [T, B, 4H]
        let need = |i| ctx.needs_input_grad(i);
        let dw = if need(3) {
            // one product over every step's rows: [4H, T*B] @ [T*B, H]
            let rows = t * b;
            let prev = Tensor::stack(prev, 0usize)?;
            Some(
                dg.reshape([rows, 4 * h])?
                    .t()?
                    .matmul(&prev.reshape([rows, h])?)?,
            )
        } else {
            None
        };
        Ok(vec![
            need(0).then_some(dg),
            need(1).then_some(dh),
            need(2).then_some(dc),
            dw,
        ])
    }
}

impl LstmLayer {
    /// `create_graph`: the same forward recorded from the saved inputs, differentiated with
    /// a graph, so the gradient is itself differentiable.
    fn backward_recorded(
        &self,
        [xw, h0, c0, w_hh]: [&Tensor; 4],
        grads: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        let st = self.run(xw, h0, c0, w_hh)?;
        let (outs, h_t, c_t) = (st.outs, st.h_t, st.c_t);
        let inputs = [xw, h0, c0, w_hh];
        let wanted: Vec<Tensor> = inputs
            .iter()
            .filter(|x| x.requires_grad())
            .map(|x| (*x).clone())
            .collect();
        if wanted.is_empty() {
            return Ok(vec![None; 4]);
        }
        let go: Vec<Option<Tensor>> = grads.iter().cloned().map(Some).collect();
        let mut got = crate::autograd::grad(
            &[outs, h_t, c_t],
            &wanted,
            Some(&go),
            Some(true),
            true,
            true,
        )?
        .into_iter();
        Ok(inputs
            .iter()
            .map(|x| {
                if x.requires_grad() {
                    got.next().flatten()
                } else {
                    None
                }
            })
            .collect())
    }
}
