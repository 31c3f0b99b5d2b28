//! Convolution, transposed convolution, pooling and padding, composed from `unfold`/`fold`,
//! matmul and reductions: their gradients (and second derivatives) come from those primitives.
//! NCHW layout; unbatched `[C, H, W]` inputs are accepted and treated as N = 1.

use crate::op::Window;
use crate::{DType, Error, Result, Shape, Tensor};

/// Padding of a convolution: explicit per-axis amounts, or `"same"` (output size = input size,
/// stride 1), as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Explicit(usize, usize),
    Same,
}

/// Adds a batch dim to an unbatched `[C, H, W]` input; remembers to remove it.
fn batched(op: &'static str, x: &Tensor) -> Result<(Tensor, bool)> {
    match x.rank() {
        4 => Ok((x.clone(), false)),
        3 => Ok((x.unsqueeze(0usize)?, true)),
        _ => Err(Error::InvalidShape {
            op,
            shape: x.shape().clone(),
            msg: "expected a 4-d input [N, C, H, W] (or 3-d [C, H, W])".into(),
        }),
    }
}

fn unbatch(x: Tensor, was_unbatched: bool) -> Result<Tensor> {
    if was_unbatched {
        x.squeeze(Some(0))
    } else {
        Ok(x)
    }
}

/// PyTorch's `F.unfold`: `Tensor::unfold` (zero padding), also for an unbatched `[C, H, W]`
/// input (giving `[C*kh*kw, L]`).
pub fn unfold(x: &Tensor, w: Window) -> Result<Tensor> {
    let (x, unb) = batched("unfold", x)?;
    unbatch(x.unfold(w, 0.0)?, unb)
}

/// PyTorch's `F.fold`: `Tensor::fold`, also for an unbatched `[C*kh*kw, L]` input.
pub fn fold(x: &Tensor, w: Window, out_hw: (usize, usize)) -> Result<Tensor> {
    if x.rank() == 2 {
        return x.unsqueeze(0usize)?.fold(w, out_hw)?.squeeze(Some(0));
    }
    x.fold(w, out_hw)
}

/// 2-d convolution: `x [N, C, H, W]`, `weight [O, C/groups, kh, kw]`, optional `bias [O]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
    groups: usize,
) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, x.device()) {
        let b = ac.cast_opt(bias)?;
        let (x, w) = (ac.cast(x)?, ac.cast(weight)?);
        return conv2d(&x, &w, b.as_ref(), stride, padding, dilation, groups);
    }
    let (x, unb) = batched("conv2d", x)?;
    if weight.rank() != 4 {
        return Err(Error::InvalidShape {
            op: "conv2d",
            shape: weight.shape().clone(),
            msg: "weight must be 4-d [out_channels, in_channels/groups, kh, kw]".into(),
        });
    }
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (o, cg, kh, kw) = (
        weight.dims()[0],
        weight.dims()[1],
        weight.dims()[2],
        weight.dims()[3],
    );
    if groups == 0 || c % groups != 0 || o % groups != 0 || cg * groups != c {
        return Err(Error::ShapeMismatch {
            op: "conv2d",
            lhs: x.shape().clone(),
            rhs: weight.shape().clone(),
            detail: format!(": expected input with {} channels (weight's in_channels/groups = {cg} times groups = {groups}), got {c} channels", cg * groups),
        });
    }
    if stride.0 == 0 || stride.1 == 0 {
        return Err(Error::invalid(
            "conv2d",
            format!("non-positive stride is not supported, got {stride:?}"),
        ));
    }
    if dilation.0 == 0 || dilation.1 == 0 {
        return Err(Error::invalid(
            "conv2d",
            format!("dilation should be greater than zero, got {dilation:?}"),
        ));
    }
    if kh == 0 || kw == 0 {
        return Err(Error::InvalidShape {
            op: "conv2d",
            shape: weight.shape().clone(),
            msg: "the kernel must not be empty".into(),
        });
    }
    // "same": pad so the output keeps H x W; an odd total pad puts the extra row/column at the end
    let (x, pad) = match padding {
        Padding::Explicit(ph, pw) => (x, (ph, pw)),
        Padding::Same => {
            if stride != (1, 1) {
                return Err(Error::invalid(
                    "conv2d",
                    "padding='same' is not supported for strided convolutions",
                ));
            }
            let span = |d: usize, k: usize| {
                d.checked_mul(k - 1).ok_or_else(|| {
                    Error::invalid("conv2d", format!("dilation {dilation:?} overflows"))
                })
            };
            let (th, tw) = (span(dilation.0, kh)?, span(dilation.1, kw)?);
            let xp = if th % 2 == 1 || tw % 2 == 1 {
                pad(&x, &[0, tw % 2, 0, th % 2], PadMode::Constant, 0.0)?
            } else {
                x
            };
            (xp, (th / 2, tw / 2))
        }
    };
    let w = Window {
        kernel: (kh, kw),
        stride,
        padding: pad,
        dilation,
    };
    let (oh, ow) = w.out_hw(x.dims()[2], x.dims()[3]).ok_or_else(|| {
        let (ph, pw) = (h as u128 + 2 * pad.0 as u128, wd as u128 + 2 * pad.1 as u128);
        let detail = if ph.max(pw) > i64::MAX as u128 {
            format!(": the padded input {ph}x{pw} (input {h}x{wd}, padding {pad:?}) exceeds the int64 range")
        } else {
            format!(": the kernel size {kh}x{kw} (dilation {dilation:?}) is larger than the padded input {ph}x{pw} (input {h}x{wd}, padding {pad:?})")
        };
        Error::ShapeMismatch {
            op: "conv2d",
            lhs: x.shape().clone(),
            rhs: weight.shape().clone(),
            detail,
        }
    })?;
    let cols = if (kh, kw, stride, pad) == (1, 1, (1, 1), (0, 0)) {
        // a 1x1 convolution's columns are the input itself: a view, no im2col copy
        x.reshape([n, c, oh * ow])?
    } else {
        x.unfold(w, 0.0)? // [N, C*kh*kw, L]
    };
    let k = cg * kh * kw;
    let out = if groups == 1 {
        weight.reshape([o, k])?.matmul(&cols)? // [O, K] @ [N, K, L] -> [N, O, L]
    } else {
        let cols = cols.reshape([n, groups, k, oh * ow])?;
        weight
            .reshape([groups, o / groups, k])?
            .matmul(&cols)?
            .reshape([n, o, oh * ow])?
    };
    let mut out = out.reshape([n, o, oh, ow])?;
    if let Some(b) = bias {
        out = out.add(&check_bias("conv2d", b, o)?.reshape([1, o, 1, 1])?)?;
    }
    unbatch(out, unb)
}

fn check_bias(op: &'static str, b: &Tensor, channels: usize) -> Result<Tensor> {
    if b.rank() != 1 || b.dims()[0] != channels {
        return Err(Error::ShapeMismatch {
            op,
            lhs: Shape::new(vec![channels]),
            rhs: b.shape().clone(),
            detail: format!(": bias must be 1-d with {channels} entries"),
        });
    }
    Ok(b.clone())
}

/// Transposed convolution (the gradient of conv2d w.r.t. its input, as a layer):
/// `x [N, Cin, H, W]`, `weight [Cin, Cout/groups, kh, kw]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: (usize, usize),
    padding: (usize, usize),
    output_padding: (usize, usize),
    groups: usize,
    dilation: (usize, usize),
) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, x.device()) {
        let b = ac.cast_opt(bias)?;
        let (x, w) = (ac.cast(x)?, ac.cast(weight)?);
        return conv_transpose2d(
            &x,
            &w,
            b.as_ref(),
            stride,
            padding,
            output_padding,
            groups,
            dilation,
        );
    }
    let (x, unb) = batched("conv_transpose2d", x)?;
    if weight.rank() != 4 {
        return Err(Error::InvalidShape {
            op: "conv_transpose2d",
            shape: weight.shape().clone(),
            msg: "weight must be 4-d [in_channels, out_channels/groups, kh, kw]".into(),
        });
    }
    let (n, cin, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (wcin, cog, kh, kw) = (
        weight.dims()[0],
        weight.dims()[1],
        weight.dims()[2],
        weight.dims()[3],
    );
    if groups == 0 || wcin != cin || cin % groups != 0 {
        return Err(Error::ShapeMismatch {
            op: "conv_transpose2d",
            lhs: x.shape().clone(),
            rhs: weight.shape().clone(),
            detail: format!(": expected input with {wcin} channels (weight dim 0), divisible by groups = {groups}"),
        });
    }
    if output_padding.0 >= stride.0.max(dilation.0) || output_padding.1 >= stride.1.max(dilation.1)
    {
        return Err(Error::invalid(
            "conv_transpose2d",
            "output_padding must be smaller than either stride or dilation",
        ));
    }
    if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
        return Err(Error::invalid(
            "conv_transpose2d",
            format!("stride {stride:?} and dilation {dilation:?} must be positive"),
        ));
    }
    // (i - 1) * s + d * (k - 1) + output_padding + 1 - 2p, in checked arithmetic
    let out_len = |i: usize, k: usize, s: usize, p: usize, d: usize, op: usize| -> Option<usize> {
        i.checked_sub(1)?
            .checked_mul(s)?
            .checked_add(d.checked_mul(k.checked_sub(1)?)?)?
            .checked_add(op)?
            .checked_add(1)?
            .checked_sub(p.checked_mul(2)?)
            .filter(|&v| v <= i64::MAX as usize)
    };
    let bad_geom = || {
        Error::invalid(
            "conv_transpose2d",
            format!("padding {padding:?} is too large for input {h}x{wd} with kernel {kh}x{kw}"),
        )
    };
    let hout = out_len(h, kh, stride.0, padding.0, dilation.0, output_padding.0)
        .filter(|&v| v > 0)
        .ok_or_else(bad_geom)?;
    let wout = out_len(wd, kw, stride.1, padding.1, dilation.1, output_padding.1)
        .filter(|&v| v > 0)
        .ok_or_else(bad_geom)?;
    let cout = cog * groups;
    let cig = cin / groups;
    let k = cog * kh * kw;
    // columns = W^T x per group: [g, k, cig] @ [N, g, cig, HW] -> [N, g, k, HW]
    let wt = weight.reshape([groups, cig, k])?.mt()?;
    let cols =
        wt.matmul(&x.reshape([n, groups, cig, h * wd])?)?
            .reshape([n, cout * kh * kw, h * wd])?;
    let w = Window {
        kernel: (kh, kw),
        stride,
        padding,
        dilation,
    };
    let mut out = cols.fold(w, (hout, wout))?;
    if let Some(b) = bias {
        out = out.add(&check_bias("conv_transpose2d", b, cout)?.reshape([1, cout, 1, 1])?)?;
    }
    unbatch(out, unb)
}

/// A pooling window over `x`, its output size, and the extra bottom/right padding `ceil_mode`
/// needs. With `ceil_mode` the output size rounds up, as in PyTorch, except that a window may
/// not start in the bottom/right padding (`(out - 1) * stride >= in + pad` drops the last one);
/// the partial windows at the end then read the extra rows/columns, which the caller fills with
/// a value that does not count (-inf for max, 0 for sums).
#[allow(clippy::too_many_arguments)]
fn pool_window(
    op: &'static str,
    x: &Tensor,
    kernel: (usize, usize),
    stride: Option<(usize, usize)>,
    padding: (usize, usize),
    dilation: (usize, usize),
    ceil_mode: bool,
) -> Result<(Window, usize, usize, (usize, usize))> {
    if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
        return Err(Error::invalid(
            op,
            format!("padding {padding:?} should be at most half of the kernel size {kernel:?}"),
        ));
    }
    let stride = stride.unwrap_or(kernel);
    if kernel.0 == 0
        || kernel.1 == 0
        || stride.0 == 0
        || stride.1 == 0
        || dilation.0 == 0
        || dilation.1 == 0
    {
        return Err(Error::invalid(
            op,
            format!(
                "kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be positive"
            ),
        ));
    }
    if x.dims()[1..].contains(&0) {
        return Err(Error::InvalidShape {
            op,
            shape: x.shape().clone(),
            msg: "expected a 3-d or 4-d input with non-zero channel and spatial dims (only the batch may be empty)".into(),
        });
    }
    let too_large = || {
        Error::InvalidShape {
        op,
        shape: x.shape().clone(),
        msg: format!("the pooling window {kernel:?} (dilation {dilation:?}) is larger than the padded input, or the output size is too small"),
    }
    };
    // PyTorch's output size: floor (or ceil) of (len + 2p - span) / s, plus one, in signed
    // arithmetic (with ceil_mode a window may start inside the input and run past its padded
    // end); then, with ceil_mode, a last window starting in the end padding is dropped
    let out_len = |len: usize, k: usize, s: usize, p: usize, d: usize| -> Option<(usize, usize)> {
        let span =
            i128::from(u64::try_from(d).ok()?) * (i128::from(u64::try_from(k).ok()?) - 1) + 1;
        let (len, s, p) = (len as i128, s as i128, p as i128);
        let padded = len + 2 * p;
        let num = padded - span;
        let q = if ceil_mode {
            num.div_euclid(s) + i128::from(num.rem_euclid(s) != 0)
        } else {
            num.div_euclid(s)
        };
        let mut out = q + 1;
        if ceil_mode && out > 0 && (out - 1) * s >= len + p {
            out -= 1;
        }
        if out < 1 || out > i64::MAX as i128 {
            return None;
        }
        let extra = ((out - 1) * s + span - padded).max(0);
        Some((out as usize, usize::try_from(extra).ok()?))
    };
    let (h, wd) = (x.dims()[2], x.dims()[3]);
    let (oh, eh) = out_len(h, kernel.0, stride.0, padding.0, dilation.0).ok_or_else(too_large)?;
    let (ow, ew) = out_len(wd, kernel.1, stride.1, padding.1, dilation.1).ok_or_else(too_large)?;
    let w = Window {
        kernel,
        stride,
        padding,
        dilation,
    };
    Ok((w, oh, ow, (eh, ew)))
}

/// `x` with `extra` more rows and columns of `value` at the bottom/right (ceil-mode pooling).
fn pad_end(x: &Tensor, extra: (usize, usize), value: f64) -> Result<Tensor> {
    if extra == (0, 0) {
        return Ok(x.clone());
    }
    pad(x, &[0, extra.1, 0, extra.0], PadMode::Constant, value)
}

/// Max-pooling; also returns, when asked, the flat index (into H*W) of each maximum, as PyTorch.
///
/// One primitive picks each window's maximum (`BackendStorage::pool_argmax`, PyTorch's scan
/// rule); the values are a `gather` of the input's planes at those indices, so the gradient is
/// the gather's (the output gradient added at each maximum, overlapping windows accumulating,
/// as PyTorch's backward) and differentiates again.
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: Option<(usize, usize)>,
    padding: (usize, usize),
    dilation: (usize, usize),
    ceil_mode: bool,
    return_indices: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (x, unb) = batched("max_pool2d", x)?;
    if x.dtype() == DType::Bool {
        return Err(Error::DType {
            op: "max_pool2d",
            dtype: DType::Bool,
            detail: " (expected a numeric tensor)".into(),
        });
    }
    // ceil mode's partial windows are clipped by the kernel, so its extra padding is not needed
    let (w, oh, ow, _) = pool_window(
        "max_pool2d",
        &x,
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    )?;
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let shape = Shape::new(vec![n, c, oh, ow]);
    shape.check_extents("max_pool2d")?;
    let s = crate::tensor::with_read([&x], |[sx]| sx.pool_argmax(x.layout(), &w, (oh, ow)))?;
    let idx = Tensor::from_storage(s, shape);
    let out = x
        .reshape([n, c, h * wd])?
        .gather(2usize, &idx.reshape([n, c, oh * ow])?)?
        .reshape([n, c, oh, ow])?;
    let out = unbatch(out, unb)?;
    if !return_indices {
        return Ok((out, None));
    }
    Ok((out, Some(unbatch(idx, unb)?)))
}

/// Average pooling. The divisor is, as in PyTorch: `divisor_override` when given; else the
/// number of window positions inside the padded input (`count_include_pad`, the default) or
/// inside the input itself; the rows/columns `ceil_mode` adds never count.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: Option<(usize, usize)>,
    padding: (usize, usize),
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<f64>,
) -> Result<Tensor> {
    let (x, unb) = batched("avg_pool2d", x)?;
    let (w, oh, ow, extra) =
        pool_window("avg_pool2d", &x, kernel, stride, padding, (1, 1), ceil_mode)?;
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let kk = kernel.0 * kernel.1;
    let sums = pad_end(&x, extra, 0.0)?
        .unfold(w, 0.0)?
        .reshape([n, c, kk, oh * ow])?
        .sum(&[2usize], false)?;
    let out = if let Some(d) = divisor_override {
        if d == 0.0 {
            return Err(Error::invalid(
                "avg_pool2d",
                "divisor_override must not be zero",
            ));
        }
        sums.div_scalar(d)?
    } else if extra == (0, 0) && (count_include_pad || padding == (0, 0)) {
        sums.div_scalar(kk as f64)?
    } else {
        // count the positions that do count: ones over the counted region, zeros elsewhere
        let counted = if count_include_pad {
            Tensor::ones(
                [1, 1, h + 2 * padding.0, wd + 2 * padding.1],
                x.dtype(),
                x.device(),
            )?
        } else {
            pad(
                &Tensor::ones([1, 1, h, wd], x.dtype(), x.device())?,
                &[padding.1, padding.1, padding.0, padding.0],
                PadMode::Constant,
                0.0,
            )?
        };
        let whole = Window {
            padding: (0, 0),
            ..w
        };
        let counts = pad_end(&counted, extra, 0.0)?
            .unfold(whole, 0.0)?
            .sum(&[1usize], false)?; // [1, L]
        sums.div(&counts.reshape([1, 1, oh * ow])?)?
    };
    unbatch(out.reshape([n, c, oh, ow])?, unb)
}

/// Averaging matrix `[out, len]` of adaptive pooling: bin i covers
/// `floor(i*len/out) .. ceil((i+1)*len/out)`, as in PyTorch.
/// The `[out, len]` averaging matrix of adaptive pooling: row `i` averages PyTorch's window
/// `[floor(i * len / out), ceil((i + 1) * len / out))`.
fn adaptive_matrix(len: usize, out: usize, dtype: DType, x: &Tensor) -> Result<Tensor> {
    let shape = Shape::new(vec![out, len]);
    // the window bounds in u128: `(i + 1) * len` overflows usize long before the allocation fails
    let bounds = |i: usize| {
        let (i, l, o) = (i as u128, len as u128, out as u128);
        ((i * l / o) as usize, ((i + 1) * l).div_ceil(o) as usize)
    };
    let m = crate::cpu::buffer::alloc::<f64>("adaptive_avg_pool2d", &shape)?;
    let mut m = m;
    for i in 0..out {
        let (start, end) = bounds(i);
        for j in start..end {
            m[i * len + j] = 1.0 / (end - start) as f64;
        }
    }
    Tensor::from_f64s(m, shape, dtype, x.device())
}

/// Adaptive average pooling to `(oh, ow)`: `A_h @ x @ A_w^T` with averaging matrices, so it
/// is a pair of matmuls (and differentiable for free).
pub fn adaptive_avg_pool2d(x: &Tensor, output: (usize, usize)) -> Result<Tensor> {
    let (x, unb) = batched("adaptive_avg_pool2d", x)?;
    if output.0 == 0 || output.1 == 0 {
        return Err(Error::invalid(
            "adaptive_avg_pool2d",
            "output size must be positive",
        ));
    }
    if x.dims()[1..].contains(&0) {
        return Err(Error::InvalidShape {
            op: "adaptive_avg_pool2d",
            shape: x.shape().clone(),
            msg: "expected input to have non-zero size for non-batch dimensions".into(),
        });
    }
    let out = Shape::new(vec![x.dims()[0], x.dims()[1], output.0, output.1]);
    if crate::cpu::buffer::checked_bytes(&out, x.dtype()).is_none() {
        return Err(Error::OutOfMemory {
            op: "adaptive_avg_pool2d",
            shape: out.clone(),
            dtype: x.dtype(),
            bytes: out
                .dims()
                .iter()
                .fold(x.dtype().size_in_bytes() as u128, |a, &d| {
                    a.saturating_mul(d as u128)
                }),
        });
    }
    let ah = adaptive_matrix(x.dims()[2], output.0, x.dtype(), &x)?;
    let aw = adaptive_matrix(x.dims()[3], output.1, x.dtype(), &x)?;
    unbatch(ah.matmul(&x)?.matmul(&aw.t()?)?, unb)
}

/// How `pad` fills the new border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Replicate,
}

/// Pads the trailing dims; `pads` is PyTorch's `(left, right, top, bottom, ...)`, last dim first.
pub fn pad(x: &Tensor, pads: &[usize], mode: PadMode, value: f64) -> Result<Tensor> {
    // reflection and replication pads are on PyTorch's CPU float32 list
    if mode != PadMode::Constant {
        if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, x.device()) {
            return pad(&ac.cast(x)?, pads, mode, value);
        }
    }
    if pads.len() % 2 != 0 || pads.len() / 2 > x.rank() {
        return Err(Error::invalid(
            "pad",
            format!(
                "padding length must be even and at most 2 * rank ({}), got {}",
                2 * x.rank(),
                pads.len()
            ),
        ));
    }
    let mut y = x.clone();
    for (i, pair) in pads.chunks(2).enumerate() {
        let d = x.rank() - 1 - i;
        let (before, after) = (pair[0], pair[1]);
        if before == 0 && after == 0 {
            continue;
        }
        let len = y.dims()[d];
        y = match mode {
            PadMode::Constant => {
                let mut parts = Vec::with_capacity(3);
                let side = |k: usize| -> Result<Tensor> {
                    let mut dims = y.dims().to_vec();
                    dims[d] = k;
                    Tensor::full(dims, value, y.dtype(), y.device())
                };
                if before > 0 {
                    parts.push(side(before)?);
                }
                parts.push(y.clone());
                if after > 0 {
                    parts.push(side(after)?);
                }
                Tensor::cat(&parts, d)?
            }
            PadMode::Reflect | PadMode::Replicate => {
                if mode == PadMode::Reflect && (before >= len || after >= len) {
                    return Err(Error::invalid("pad", format!("reflect padding ({before}, {after}) must be smaller than the dimension size {len}")));
                }
                if len == 0 {
                    return Err(Error::invalid(
                        "pad",
                        "cannot reflect or replicate an empty dimension",
                    ));
                }
                let idx: Vec<i64> = (-(before as i64)..(len + after) as i64)
                    .map(|i| {
                        let n = len as i64;
                        if mode == PadMode::Replicate {
                            i.clamp(0, n - 1)
                        } else if i < 0 {
                            -i
                        } else if i >= n {
                            2 * (n - 1) - i
                        } else {
                            i
                        }
                    })
                    .collect();
                let n_idx = idx.len();
                y.index_select(d, &Tensor::from_vec(idx, [n_idx], y.device())?)?
            }
        };
    }
    Ok(y)
}

/// Zeroes whole channels with probability `p` in training (input `[N, C, ...]`).
pub fn dropout2d(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout2d",
            format!("dropout probability has to be between 0 and 1, but got {p}"),
        ));
    }
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    if x.rank() < 2 {
        return Err(Error::InvalidShape {
            op: "dropout2d",
            shape: x.shape().clone(),
            msg: "expected at least [N, C]".into(),
        });
    }
    let mut mdims = vec![1usize; x.rank()];
    mdims[0] = x.dims()[0];
    mdims[1] = x.dims()[1];
    if p == 1.0 {
        return x.mul(&Tensor::zeros(mdims, x.dtype(), x.device())?);
    }
    let mask = Tensor::bernoulli(mdims, 1.0 - p, x.dtype(), x.device())?;
    x.mul(&mask.mul_scalar(1.0 / (1.0 - p))?)
}
