"""The op table: one entry per op, each with a backprop_rs call, a NumPy reference and sample
inputs (including broadcast, 0-d, empty and non-contiguous cases). test_ops.py drives forward
parity (f32 and f64), gradcheck and gradgradcheck for every row from this one list (the PyTorch
OpInfo idea)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

import backprop_rs as bp
import backprop_rs.nn.functional as F


@dataclass
class Sample:
    inputs: List[np.ndarray]  # float inputs (differentiated) then any int inputs
    kwargs: Dict[str, Any] = field(default_factory=dict)
    desc: str = ""
    noncontig: bool = False  # feed float inputs as transposed views
    int_inputs: Sequence[int] = ()  # positions of integer (index/label) inputs


@dataclass
class OpInfo:
    name: str
    op: Callable[..., Any]
    ref: Callable[..., Any]
    samples: Callable[[np.random.Generator], List[Sample]]
    grad: bool = True
    gradgrad: bool = True
    # f32 forward tolerance (the default is the 1e-6 / 1e-4; wider ones say why)
    atol: float = 1e-6
    rtol: float = 1e-4
    f64: bool = True
    # the devices the row runs on (float32 only on the GPU: WGSL has no f64)
    devices: Sequence[str] = ("cpu", "gpu")


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _erfc(x):
    return np.vectorize(math.erfc, otypes=[np.float64])(x)


def _lgamma(x):
    return np.vectorize(lambda v: math.inf if math.isinf(v) or (v <= 0 and v == math.floor(v)) else math.lgamma(v),
                        otypes=[np.float64])(x)


# digamma and trigamma, written independently of the engine's kernels (cpu/math.rs shifts to 10
# and sums seven asymptotic terms): shift to 40, four terms (error below 1e-18 there), reflection
# below 1/2. The gradchecks tie them to libm's lgamma as well (d lgamma = digamma, d digamma =
# trigamma, by finite differences).
def _digamma1(v):
    if v == -math.inf:
        return math.nan
    if v <= 0 and v == math.floor(v):
        return math.nan if v < 0 else -math.copysign(math.inf, v)  # -inf at +0, +inf at -0
    if v < 0.5:
        return _digamma1(1.0 - v) - math.pi / math.tan(math.pi * v)
    acc = 0.0
    while v < 40.0:
        acc -= 1.0 / v
        v += 1.0
    w = 1.0 / (v * v)
    return acc + math.log(v) - 0.5 / v - w / 12 + w * w / 120 - w ** 3 / 252 + w ** 4 / 240


def _trigamma1(v):
    if v == -math.inf:
        return math.nan
    if v <= 0 and v == math.floor(v):
        return math.inf
    if v < 0.5:
        try:
            refl = (math.pi / math.sin(math.pi * v)) ** 2
        except OverflowError:  # |v| below ~1e-154 (or that close to a pole): the square is inf
            return math.inf
        return refl - _trigamma1(1.0 - v)
    acc = 0.0
    while v < 40.0:
        acc += 1.0 / (v * v)
        v += 1.0
    w = 1.0 / (v * v)
    return acc + 1 / v + w / 2 + w / v / 6 - w * w / v / 30 + w ** 3 / v / 42 - w ** 4 / v / 30


def _digamma(x):
    return np.vectorize(_digamma1, otypes=[np.float64])(x)


def _trigamma(x):
    return np.vectorize(_trigamma1, otypes=[np.float64])(x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _softmax_bwd_ref(g, y, dim, log):
    if log:
        return g - np.exp(y) * g.sum(axis=dim, keepdims=True)
    return y * (g - (g * y).sum(axis=dim, keepdims=True))


def softmax_bwd_samples(log):
    def gen(rng):
        out = []
        for dim in (-1, 0, 1):
            x = rng.uniform(-2, 2, size=(3, 4, 5))
            y = _log_softmax(x, dim) if log else _softmax(x, dim)
            out.append(Sample([rng.uniform(-1, 1, size=(3, 4, 5)), y], dict(dim=dim, log=log), f"dim={dim}"))
        x = rng.uniform(-2, 2, size=(3, 4, 5))
        out.append(Sample([rng.uniform(-1, 1, size=(3, 4, 5)), _softmax(x, 1)], dict(dim=1, log=log), "noncontig",
                          noncontig=True))
        return out

    return gen


def _softmax_bwd_op(g, y, dim, log):
    f = bp._log_softmax_backward_data if log else bp._softmax_backward_data
    return f(g, y, dim, g.dtype)


def _sdpa_ref(q, k, v, is_causal=False, scale=None):
    """softmax(q k^T * scale) v in NumPy float64, with the causal mask as PyTorch's (j <= i)."""
    sf = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * sf
    if is_causal:
        L, S = s.shape[-2:]
        s = np.where(np.arange(L)[:, None] >= np.arange(S)[None, :], s, -np.inf)
    return _softmax(s, -1) @ v


def sdpa_samples(rng):
    """The fused attention primitive (no mask, no dropout: F.scaled_dot_product_attention's
    fused route): L != S so the causal alignment shows, 2-d to 4-d, a scale, views."""
    n = rng.normal
    return [
        Sample([n(size=(2, 3, 4)), n(size=(2, 5, 4)), n(size=(2, 5, 3))], desc="3d"),
        Sample([n(size=(2, 3, 4)), n(size=(2, 5, 4)), n(size=(2, 5, 3))], dict(is_causal=True), "3d-causal"),
        Sample([n(size=(4, 4)), n(size=(4, 4)), n(size=(4, 2))], dict(is_causal=True, scale=0.3), "2d-scale"),
        Sample([n(size=(1, 2, 3, 4)), n(size=(1, 2, 6, 4)), n(size=(1, 2, 6, 5))], dict(is_causal=True), "4d"),
        Sample([n(size=(2, 4, 3)), n(size=(2, 4, 3)), n(size=(2, 4, 3))], desc="noncontig", noncontig=True),
    ]


def _layer_norm_ref(x, *wb, shape, eps=1e-5):
    """F.layer_norm in NumPy float64: biased variance over the trailing len(shape) dims."""
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    m = x.mean(axis=axes, keepdims=True)
    y = (x - m) / np.sqrt(((x - m) ** 2).mean(axis=axes, keepdims=True) + eps)
    if wb:
        y = y * wb[0] + wb[1]
    return y


def _layer_norm_op(x, *wb, shape, eps=1e-5):
    w, b = wb if wb else (None, None)
    return F.layer_norm(x, shape, w, b, eps)


def layer_norm_samples(rng):
    """The fused normalising primitive (Op::LayerNorm) with and without the affine part, over one
    and two trailing dims, a row longer than the SIMD width with a tail, a constant row, views,
    and an empty batch (the composed route)."""
    n = rng.normal
    const = n(size=(3, 6))
    const[1] = 0.7
    return [
        Sample([n(size=(4, 5))], dict(shape=[5]), "2d"),
        Sample([n(size=(2, 3, 4)), n(size=(3, 4)), n(size=(3, 4))], dict(shape=[3, 4]), "two dims, affine"),
        Sample([n(size=(3, 37)), n(size=(37,)), n(size=(37,))], dict(shape=[37], eps=1e-3), "long rows, affine"),
        Sample([const], dict(shape=[6]), "constant row"),
        Sample([n(size=(6, 4)), n(size=(6, 4)), n(size=(6, 4))], dict(shape=[6, 4]), "noncontig", noncontig=True),
        Sample([n(size=(3, 5, 4))], dict(shape=[4]), "noncontig rows", noncontig=True),
        Sample([n(size=(0, 4))], dict(shape=[4]), "empty"),
    ]


def unary_samples(lo=-2.0, hi=2.0, avoid_zero=False):
    def gen(rng):
        def u(*shape):
            a = rng.uniform(lo, hi, size=shape)
            if avoid_zero:
                a = np.where(np.abs(a) < 0.1, 0.5, a)
            return a

        return [
            Sample([u(3, 4)], desc="2d"),
            Sample([u()], desc="0d"),
            Sample([u(0, 3)], desc="empty"),
            Sample([u(2, 3, 5)], desc="3d-noncontig", noncontig=True),
            Sample([u(7)], desc="1d"),
        ]

    return gen


def binary_samples(lo=-2.0, hi=2.0, rhs_lo=None, rhs_hi=None):
    def gen(rng):
        def a(*s):
            return rng.uniform(lo, hi, size=s)

        def b(*s):
            return rng.uniform(rhs_lo if rhs_lo is not None else lo, rhs_hi if rhs_hi is not None else hi, size=s)

        return [
            Sample([a(3, 4), b(3, 4)], desc="same"),
            Sample([a(3, 4), b(4)], desc="broadcast-row"),
            Sample([a(3, 1), b(1, 4)], desc="broadcast-outer"),
            Sample([a(2, 3, 4), b(2, 1, 4)], desc="broadcast-mid"),
            Sample([a(), b(3)], desc="0d-lhs"),
            Sample([a(0, 4), b(4)], desc="empty"),
            Sample([a(4, 3), b(4, 3)], desc="noncontig", noncontig=True),
        ]

    return gen


def reduce_samples(dims_list, positive=False):
    def gen(rng):
        out = []
        for kw in dims_list:
            x = rng.uniform(0.5 if positive else -2, 2, size=(3, 4, 5))
            out.append(Sample([x], kwargs=dict(kw), desc=str(kw)))
        out.append(Sample([rng.uniform(0.5 if positive else -2, 2, size=(3, 4, 5))], kwargs=dict(dims_list[-1]), desc="noncontig", noncontig=True))
        return out

    return gen


def _np_reduce(fn):
    def ref(x, dim=None, keepdim=False):
        axis = tuple(dim) if isinstance(dim, (list, tuple)) else dim
        return fn(x, axis=axis, keepdims=keepdim)

    return ref


def _ce_ref(x, t, reduction="mean", weight=None, ignore_index=-100, label_smoothing=0.0):
    c = x.shape[1]
    lp = _log_softmax(x, 1)
    w = np.ones(c) if weight is None else weight
    keep = t != ignore_index
    ts = np.where(keep, t, 0)
    picked = lp[np.arange(len(t)), ts]
    wt = w[ts] * keep
    nll = -picked * wt
    smooth = -(lp * w).sum(1) * keep
    if reduction == "none":
        return (1 - label_smoothing) * nll + label_smoothing / c * smooth
    if reduction == "sum":
        return (1 - label_smoothing) * nll.sum() + label_smoothing / c * smooth.sum()
    return (1 - label_smoothing) * nll.sum() / wt.sum() + label_smoothing / c * smooth.sum() / wt.sum()


def _ce_prob_ref(x, p, reduction="mean", label_smoothing=0.0):
    c = x.shape[1]
    q = p * (1 - label_smoothing) + label_smoothing / c
    loss = -(_log_softmax(x, 1) * q).sum(1)
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def ce_samples(rng):
    x = rng.normal(size=(5, 4))
    t = rng.integers(0, 4, size=5)
    t_ign = t.copy()
    t_ign[1] = -100
    w = rng.uniform(0.5, 2.0, size=4)
    return [
        Sample([x, t], dict(reduction="mean"), "mean", int_inputs=[1]),
        Sample([x, t], dict(reduction="sum"), "sum", int_inputs=[1]),
        Sample([x, t], dict(reduction="none"), "none", int_inputs=[1]),
        Sample([x, t_ign], dict(reduction="mean"), "ignore_index", int_inputs=[1]),
        Sample([x, t], dict(reduction="mean", label_smoothing=0.1), "smoothing", int_inputs=[1]),
        Sample([x, t], dict(reduction="mean", weight=w), "weight", int_inputs=[1]),
        # the harness feeds the logits as a transposed view (a strided input)
        Sample([x, t], dict(reduction="mean"), "noncontig", noncontig=True, int_inputs=[1]),
    ]


def _ce_op(x, t, **kw):
    if "weight" in kw and kw["weight"] is not None:
        kw = dict(kw)
        kw["weight"] = bp.tensor(kw["weight"], dtype=x.dtype, device=x.device)
    return F.cross_entropy(x, t, **kw)


def _ce_ref_kw(x, t, **kw):
    return _ce_ref(x, t, **kw)


def ce_prob_samples(rng):
    x = rng.normal(size=(5, 4))
    p = _softmax(rng.normal(size=(5, 4)), 1)
    return [
        Sample([x, p], dict(reduction="mean"), "mean"),
        Sample([x, p], dict(reduction="none"), "none"),
        Sample([x, p], dict(reduction="mean", label_smoothing=0.2), "smoothing"),
    ]


def nll_samples(rng):
    x = _log_softmax(rng.normal(size=(6, 3)), 1)
    t = rng.integers(0, 3, size=6)
    return [
        Sample([x, t], dict(reduction="mean"), "mean", int_inputs=[1]),
        Sample([x, t], dict(reduction="sum"), "sum", int_inputs=[1]),
        Sample([x, t], dict(reduction="none"), "none", int_inputs=[1]),
    ]


def _nll_ref(x, t, reduction="mean"):
    loss = -x[np.arange(len(t)), t]
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def pair_loss_samples(rng):
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    return [Sample([a, b], dict(reduction=r), r) for r in ("mean", "sum", "none")] + [
        Sample([rng.normal(size=(3, 4)), rng.normal(size=(3, 4))], dict(reduction="mean"), "noncontig", noncontig=True)
    ]


def bce_samples(rng):
    x = rng.normal(size=(4, 3)) * 3
    y = rng.uniform(0, 1, size=(4, 3))
    return [Sample([x, y], dict(reduction=r), r) for r in ("mean", "sum", "none")]


def _bce_ref(x, y, reduction="mean"):
    loss = np.logaddexp(0, x) - x * y
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def matmul_samples(rng):
    n = rng.normal
    return [
        Sample([n(size=(3, 4)), n(size=(4, 2))], desc="2d"),
        Sample([n(size=(4,)), n(size=(4,))], desc="1d-1d"),
        Sample([n(size=(3, 4)), n(size=(4,))], desc="2d-1d"),
        Sample([n(size=(4,)), n(size=(4, 2))], desc="1d-2d"),
        Sample([n(size=(2, 3, 4)), n(size=(4, 5))], desc="batched-2d"),
        # [..., m, k] @ [k, n] folds into one [B*m, k] product (and @ [k] into a matrix-vector one)
        Sample([n(size=(2, 1, 3, 4)), n(size=(4, 5))], desc="folded-4d"),
        Sample([n(size=(2, 3, 4)), n(size=(4,))], desc="folded-3d-1d"),
        Sample([n(size=(0, 3, 4)), n(size=(4, 2))], desc="folded-empty-batch"),
        # the transposed view's rows do not merge with its batch: the batched route
        Sample([n(size=(2, 4, 3)), n(size=(3, 5))], desc="batched-2d-noncontig", noncontig=True),
        Sample([n(size=(2, 1, 3, 4)), n(size=(3, 4, 2))], desc="batch-broadcast"),
        Sample([n(size=(3, 4)), n(size=(4, 2))], desc="noncontig", noncontig=True),
        Sample([n(size=(0, 4)), n(size=(4, 3))], desc="empty-m"),
        Sample([n(size=(3, 0)), n(size=(0, 2))], desc="empty-k"),
    ]


def index_gather_samples(rng):
    x = rng.normal(size=(3, 5))
    idx = rng.integers(0, 5, size=(3, 4))
    idx0 = rng.integers(0, 3, size=(2, 5))
    return [
        Sample([x, idx], dict(dim=1), "dim1", int_inputs=[1]),
        Sample([x, idx0], dict(dim=0), "dim0", int_inputs=[1]),
    ]


def index_select_samples(rng):
    x = rng.normal(size=(4, 3, 2))
    return [
        Sample([x, np.array([3, 0, 0, 2])], dict(dim=0), "dim0-dups", int_inputs=[1]),
        Sample([x, np.array([2, 1])], dict(dim=1), "dim1", int_inputs=[1]),
        Sample([x, np.array([1])], dict(dim=-1), "dim-1", int_inputs=[1]),
    ]


def scatter_add_samples(rng):
    x = rng.normal(size=(3, 5))
    src = rng.normal(size=(3, 4))
    idx = rng.integers(0, 5, size=(3, 4))
    return [Sample([x, src, idx], dict(dim=1), "dim1", int_inputs=[2])]


def _scatter_add_ref(x, src, idx, dim):
    out = x.copy()
    for i in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            if dim == 1:
                out[i, idx[i, j]] += src[i, j]
            else:
                out[idx[i, j], j] += src[i, j]
    return out


def index_add_samples(rng):
    x = rng.normal(size=(4, 3))
    src = rng.normal(size=(3, 3))
    return [
        Sample([x, src, np.array([0, 2, 0])], dict(dim=0), "dim0-dups", int_inputs=[2]),
        Sample([x, rng.normal(size=(4, 4)), np.array([2, 0, 2, 1])], dict(dim=1), "dim1-dups", int_inputs=[2]),
        Sample([x, rng.normal(size=(4, 2)), np.array([1, 1])], dict(dim=-1), "dim-1", int_inputs=[2]),
    ]


def _index_add_ref(x, src, idx, dim):
    out = x.copy()
    # out[..., idx[k], ...] += src[..., k, ...] along `dim`, repeated indices accumulating
    np.add.at(out, (slice(None),) * (dim % x.ndim) + (idx,), src)
    return out


def cat_samples(rng):
    n = rng.normal
    return [
        Sample([n(size=(2, 3)), n(size=(4, 3))], dict(dim=0), "dim0"),
        Sample([n(size=(2, 3)), n(size=(2, 1))], dict(dim=1), "dim1"),
        Sample([n(size=(3, 2)), n(size=(3, 2))], dict(dim=-1), "noncontig", noncontig=True),
    ]


def stack_samples(rng):
    n = rng.normal
    return [Sample([n(size=(2, 3)), n(size=(2, 3))], dict(dim=d), f"dim{d}") for d in (0, 1, 2, -1)]


def view_samples(rng):
    return [Sample([rng.normal(size=(2, 3, 4))], desc="3d"), Sample([rng.normal(size=(2, 3, 4))], desc="noncontig", noncontig=True)]


def where_samples(rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    return [Sample([a, b], desc="broadcast"), Sample([rng.normal(size=(3, 4)), rng.normal(size=(3, 4))], desc="same")]


def _slice_op(x):
    return x[1:, ::2, 1:3]


def _slice_ref(x):
    return x[1:, ::2, 1:3]


def _getitem_int(x):
    return x[1, -1]


def _adv_index(x):
    return x[bp.tensor([1, 0, 1]), :, bp.tensor([2, 3, 0])]


def _adv_index_ref(x):
    return x[np.array([1, 0, 1]), :, np.array([2, 3, 0])]


def _mask_index(x):
    return x[x > 0]


def _mask_index_ref(x):
    return x[x > 0]


def _np_unfold(x, k, stride=(1, 1), pad=(0, 0), dil=(1, 1), value=0.0):
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * pad[0], w + 2 * pad[1]), value, dtype=x.dtype)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    oh = (h + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    ow = (w + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
    cols = np.empty((n, c, k[0], k[1], oh, ow), dtype=x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            cols[:, :, i, j] = xp[:, :, i * dil[0]: i * dil[0] + stride[0] * oh: stride[0], j * dil[1]: j * dil[1] + stride[1] * ow: stride[1]][:, :, :oh, :ow]
    return cols, oh, ow


def _np_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    st, pd, dl = [(v, v) if isinstance(v, int) else v for v in (stride, padding, dilation)]
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    cols, oh, ow = _np_unfold(x, (kh, kw), st, pd, dl)
    cols = cols.reshape(n, groups, cg, kh, kw, oh, ow)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    out = np.einsum("ngcijhw,gocij->ngohw", cols, wg).reshape(n, o, oh, ow)
    return out if b is None else out + b.reshape(1, o, 1, 1)


def _np_conv_t(x, w, stride, padding, output_padding=0):
    # transposed conv as the adjoint: scatter each input pixel times the kernel
    n, cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    s, p = stride, padding
    hout = (h - 1) * s - 2 * p + kh + output_padding
    wout = (wd - 1) * s - 2 * p + kw + output_padding
    full = np.zeros((n, cout, (h - 1) * s + kh + output_padding, (wd - 1) * s + kw + output_padding))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * s:i * s + kh, j * s:j * s + kw] += np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
    return full[:, :, p:p + hout, p:p + wout]


def _np_pool(x, k, stride, pad, kind, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """PyTorch's pooling, written out window by window: output sizes round up under ceil_mode
    (but no window starts in the bottom/right padding); a window is clipped to the padded input,
    and an average divides by the clipped window's size (count_include_pad), by the number of real
    elements in it, or by divisor_override."""
    n, c, h, w = x.shape

    def out_len(size):
        o = (size + 2 * pad - k + (stride - 1 if ceil_mode else 0)) // stride + 1
        if ceil_mode and (o - 1) * stride >= size + pad:
            o -= 1
        return o

    oh, ow = out_len(h), out_len(w)
    res = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * stride - pad, j * stride - pad
            h1, w1 = min(h0 + k, h + pad), min(w0 + k, w + pad)
            hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            win = x[:, :, hs:he, ws:we]
            if kind == "max":
                res[:, :, i, j] = win.max(axis=(2, 3))
            else:
                div = divisor_override or ((h1 - h0) * (w1 - w0) if count_include_pad else (he - hs) * (we - ws))
                res[:, :, i, j] = win.sum(axis=(2, 3)) / div
    return res


def _np_adaptive(x, out):
    n, c, h, w = x.shape
    res = np.zeros((n, c, out[0], out[1]))
    for i in range(out[0]):
        h0, h1 = (i * h) // out[0], -(-((i + 1) * h) // out[0])
        for j in range(out[1]):
            w0, w1 = (j * w) // out[1], -(-((j + 1) * w) // out[1])
            res[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return res


def conv_samples(rng):
    n = rng.normal
    return [
        Sample([n(size=(2, 3, 6, 5)), n(size=(4, 3, 3, 3)), n(size=(4,))], dict(padding=1), "pad1-bias"),
        Sample([n(size=(1, 4, 7, 7)), n(size=(6, 2, 3, 2)), n(size=(6,))], dict(stride=(2, 1), dilation=(1, 2), groups=2), "stride-dil-groups"),
        Sample([n(size=(2, 1, 8, 8)), n(size=(3, 1, 5, 5)), n(size=(3,))], dict(padding="same"), "same"),
        Sample([n(size=(1, 2, 5, 6)), n(size=(2, 2, 2, 2)), n(size=(2,))], dict(), "noncontig", noncontig=True),
    ]


def _conv_ref(x, w, b, **kw):
    if kw.get("padding") == "same":
        kw = dict(kw)
        kw["padding"] = (w.shape[2] - 1) // 2
    return _np_conv2d(x, w, b, **kw)


def pool_samples(rng):
    return [
        Sample([rng.normal(size=(2, 3, 6, 6))], dict(k=2, stride=2, pad=0), "k2"),
        Sample([rng.normal(size=(1, 2, 7, 5))], dict(k=3, stride=2, pad=1), "k3-pad"),
        Sample([rng.normal(size=(1, 2, 6, 6))], dict(k=2, stride=1, pad=0), "overlap-noncontig", noncontig=True),
        # partial windows at the bottom/right: 8 -> 4 (not 3) and 7 -> 3 rows; with padding, the
        # last window may not start in the padding (7 + 2*1 -> 4, not 5)
        Sample([rng.normal(size=(1, 2, 8, 7))], dict(k=3, stride=2, pad=0, ceil_mode=True), "ceil"),
        Sample([rng.normal(size=(1, 2, 7, 6))], dict(k=3, stride=2, pad=1, ceil_mode=True), "ceil-pad"),
    ]


def avg_pool_samples(rng):
    return pool_samples(rng) + [
        Sample([rng.normal(size=(1, 2, 7, 5))], dict(k=3, stride=2, pad=1, count_include_pad=False), "exclude-pad"),
        Sample([rng.normal(size=(1, 2, 7, 6))], dict(k=3, stride=2, pad=1, ceil_mode=True, count_include_pad=False), "ceil-exclude-pad"),
        Sample([rng.normal(size=(1, 2, 6, 6))], dict(k=2, stride=2, pad=0, divisor_override=3.0), "divisor"),
    ]


OPS: List[OpInfo] = [
    # ---- unary
    OpInfo("neg", lambda x: -x, lambda x: -x, unary_samples()),
    OpInfo("abs", lambda x: x.abs(), np.abs, unary_samples(avoid_zero=True)),
    OpInfo("exp", lambda x: x.exp(), np.exp, unary_samples()),
    OpInfo("log", lambda x: x.log(), np.log, unary_samples(0.2, 3.0)),
    OpInfo("sqrt", lambda x: x.sqrt(), np.sqrt, unary_samples(0.2, 3.0)),
    OpInfo("sin", lambda x: x.sin(), np.sin, unary_samples()),
    OpInfo("cos", lambda x: x.cos(), np.cos, unary_samples()),
    OpInfo("tanh", lambda x: x.tanh(), np.tanh, unary_samples()),
    OpInfo("sigmoid", lambda x: x.sigmoid(), _sigmoid, unary_samples(-6, 6)),
    OpInfo("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), unary_samples(avoid_zero=True)),
    OpInfo("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), unary_samples(avoid_zero=True)),
    OpInfo("gelu", lambda x: F.gelu(x), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), unary_samples(-3, 3)),
    OpInfo("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
           lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))), unary_samples(-3, 3)),
    OpInfo("softplus", lambda x: F.softplus(x), lambda x: np.logaddexp(0, x), unary_samples(-5, 5)),
    OpInfo("clamp", lambda x: x.clamp(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), unary_samples()),
    OpInfo("clamp_min", lambda x: x.clamp(min=0.1), lambda x: np.maximum(x, 0.1), unary_samples()),
    OpInfo("square", lambda x: x.square(), np.square, unary_samples()),
    OpInfo("pow_scalar", lambda x: x**3, lambda x: x**3, unary_samples()),
    OpInfo("pow_frac", lambda x: x**1.5, lambda x: x**1.5, unary_samples(0.2, 3.0)),
    OpInfo("rpow", lambda x: 2.0**x, lambda x: 2.0**x, unary_samples()),
    OpInfo("reciprocal", lambda x: x.reciprocal(), lambda x: 1 / x, unary_samples(avoid_zero=True)),
    OpInfo("sign", lambda x: x.sign(), np.sign, unary_samples(avoid_zero=True), gradgrad=False),
    OpInfo("scalar_arith", lambda x: (3.0 - x) * 2 / 4 + 1, lambda x: (3.0 - x) * 2 / 4 + 1, unary_samples()),
    OpInfo("rdiv", lambda x: 1.5 / x, lambda x: 1.5 / x, unary_samples(avoid_zero=True)),
    # ---- binary (with broadcasting)
    OpInfo("add", lambda a, b: a + b, np.add, binary_samples()),
    OpInfo("sub", lambda a, b: a - b, np.subtract, binary_samples()),
    OpInfo("mul", lambda a, b: a * b, np.multiply, binary_samples()),
    OpInfo("div", lambda a, b: a / b, np.divide, binary_samples(rhs_lo=0.5, rhs_hi=2.0)),
    OpInfo("pow", lambda a, b: a**b, np.power, binary_samples(0.3, 2.0, -1.5, 1.5)),
    OpInfo("maximum", lambda a, b: bp.maximum(a, b), np.maximum, binary_samples()),
    OpInfo("minimum", lambda a, b: bp.minimum(a, b), np.minimum, binary_samples()),
    OpInfo("where", lambda a, b: bp.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b), where_samples),
    # comparisons: no gradient
    OpInfo("eq", lambda a, b: a == b, np.equal, binary_samples(), grad=False),
    OpInfo("lt", lambda a, b: a < b, np.less, binary_samples(), grad=False),
    OpInfo("le", lambda a, b: a <= b, np.less_equal, binary_samples(), grad=False),
    OpInfo("gt", lambda a, b: a > b, np.greater, binary_samples(), grad=False),
    OpInfo("ge", lambda a, b: a >= b, np.greater_equal, binary_samples(), grad=False),
    OpInfo("ne", lambda a, b: a != b, np.not_equal, binary_samples(), grad=False),
    # ---- reductions
    OpInfo("sum", lambda x, **k: x.sum(**k), _np_reduce(np.sum),
           reduce_samples([{}, {"dim": 1}, {"dim": (0, 2), "keepdim": True}, {"dim": -1}])),
    OpInfo("mean", lambda x, **k: x.mean(**k), _np_reduce(np.mean),
           reduce_samples([{}, {"dim": 0}, {"dim": (1, 2)}, {"dim": 1, "keepdim": True}])),
    OpInfo("amax", lambda x, **k: x.amax(**k), _np_reduce(np.max), reduce_samples([{}, {"dim": 1}, {"dim": (0, 2), "keepdim": True}])),
    OpInfo("amin", lambda x, **k: x.amin(**k), _np_reduce(np.min), reduce_samples([{"dim": 0}, {"dim": (1,)}])),
    OpInfo("max_dim", lambda x, dim, keepdim=False: x.max(dim, keepdim).values,
           lambda x, dim, keepdim=False: x.max(axis=dim, keepdims=keepdim), reduce_samples([{"dim": 1}, {"dim": 0, "keepdim": True}])),
    OpInfo("min_dim", lambda x, dim: x.min(dim).values, lambda x, dim: x.min(axis=dim), reduce_samples([{"dim": 2}])),
    OpInfo("max_all", lambda x: x.max(), np.max, reduce_samples([{}])),
    OpInfo("argmax", lambda x, **k: x.argmax(**k), lambda x, dim=None, keepdim=False: np.argmax(x, axis=dim, keepdims=keepdim),
           reduce_samples([{}, {"dim": 1}, {"dim": 0, "keepdim": True}]), grad=False),
    OpInfo("argmin", lambda x, **k: x.argmin(**k), lambda x, dim=None: np.argmin(x, axis=dim), reduce_samples([{"dim": 2}]), grad=False),
    OpInfo("var", lambda x, **k: x.var(**k), lambda x, dim=None, keepdim=False, unbiased=True: np.var(x, axis=dim, ddof=1 if unbiased else 0, keepdims=keepdim),
           reduce_samples([{}, {"dim": 1}, {"dim": (0, 2), "unbiased": False}, {"dim": 2, "keepdim": True}])),
    OpInfo("std", lambda x, **k: x.std(**k), lambda x, dim=None, keepdim=False: np.std(x, axis=dim, ddof=1, keepdims=keepdim),
           reduce_samples([{}, {"dim": 0}])),
    OpInfo("logsumexp", lambda x, dim, keepdim=False: x.logsumexp(dim, keepdim),
           lambda x, dim, keepdim=False: np.log(np.exp(x).sum(axis=dim, keepdims=keepdim)), reduce_samples([{"dim": 1}, {"dim": 0, "keepdim": True}])),
    # ---- matmul
    OpInfo("matmul", lambda a, b: a @ b, np.matmul, matmul_samples, atol=1e-5),  # f32 accumulation over k
    # ---- views and shape ops
    OpInfo("reshape", lambda x: x.reshape(6, -1), lambda x: x.reshape(6, -1), view_samples),
    OpInfo("view", lambda x: x.contiguous().view(3, 8), lambda x: x.reshape(3, 8), view_samples),
    OpInfo("transpose", lambda x: x.transpose(0, 2), lambda x: x.swapaxes(0, 2), view_samples),
    OpInfo("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1), view_samples),
    OpInfo("T", lambda x: x.T, lambda x: x.T, view_samples),
    OpInfo("unsqueeze", lambda x: x.unsqueeze(1), lambda x: np.expand_dims(x, 1), view_samples),
    OpInfo("squeeze", lambda x: x[:, :1].squeeze(1), lambda x: x[:, :1].squeeze(1), view_samples),
    OpInfo("expand", lambda x: x[:, :1].expand(2, 5, -1), lambda x: np.broadcast_to(x[:, :1], (2, 5, x.shape[2])), view_samples),
    OpInfo("flatten", lambda x: x.flatten(1), lambda x: x.reshape(x.shape[0], -1), view_samples),
    OpInfo("narrow", lambda x: x.narrow(2, 1, 2), lambda x: x[:, :, 1:3], view_samples),
    OpInfo("slice", _slice_op, _slice_ref, view_samples),
    OpInfo("index_int", _getitem_int, _getitem_int, view_samples),
    OpInfo("index_ellipsis", lambda x: x[..., 0, None], lambda x: x[..., 0, None], view_samples),
    OpInfo("index_tensor", _adv_index, _adv_index_ref, view_samples),
    OpInfo("index_mask", _mask_index, _mask_index_ref, view_samples),
    OpInfo("contiguous", lambda x: x.contiguous(), lambda x: x, view_samples),
    OpInfo("repeat", lambda x: x.repeat(2, 1, 1), lambda x: np.tile(x, (2, 1, 1)), view_samples),
    OpInfo("cat", lambda a, b, dim: bp.cat([a, b], dim), lambda a, b, dim: np.concatenate([a, b], dim), cat_samples),
    OpInfo("stack", lambda a, b, dim: bp.stack([a, b], dim), lambda a, b, dim: np.stack([a, b], dim), stack_samples),
    # ---- index ops
    OpInfo("gather", lambda x, i, dim: x.gather(dim, i), lambda x, i, dim: np.take_along_axis(x, i, dim), index_gather_samples),
    OpInfo("index_select", lambda x, i, dim: x.index_select(dim, i), lambda x, i, dim: np.take(x, i, axis=dim), index_select_samples),
    OpInfo("scatter_add", lambda x, s, i, dim: x.scatter_add(dim, i, s), _scatter_add_ref, scatter_add_samples),
    OpInfo("index_add", lambda x, s, i, dim: x.index_add(dim, i, s), _index_add_ref, index_add_samples),
    # ---- softmax and losses
    OpInfo("softmax", lambda x, dim: x.softmax(dim), lambda x, dim: _softmax(x, dim), reduce_samples([{"dim": -1}, {"dim": 0}, {"dim": 1}])),
    OpInfo("log_softmax", lambda x, dim: x.log_softmax(dim), lambda x, dim: _log_softmax(x, dim), reduce_samples([{"dim": -1}, {"dim": 1}])),
    # the fused backward primitive (its own rule gives softmax's double backward)
    OpInfo("softmax_backward", _softmax_bwd_op, _softmax_bwd_ref, softmax_bwd_samples(False)),
    OpInfo("log_softmax_backward", _softmax_bwd_op, _softmax_bwd_ref, softmax_bwd_samples(True)),
    # the fused (flash) attention primitive; its double backward is the composed rule
    OpInfo("scaled_dot_product_attention", lambda q, k, v, **kw: F.scaled_dot_product_attention(q, k, v, **kw),
           _sdpa_ref, sdpa_samples, atol=1e-5),
    # the fused normalising primitive; the affine part is a plain mul and add
    OpInfo("layer_norm", _layer_norm_op, _layer_norm_ref, layer_norm_samples, atol=1e-5),
    OpInfo("cross_entropy", _ce_op, _ce_ref_kw, ce_samples),
    OpInfo("cross_entropy_probs", lambda x, p, **k: F.cross_entropy(x, p, **k), _ce_prob_ref, ce_prob_samples),
    OpInfo("nll_loss", lambda x, t, **k: F.nll_loss(x, t, **k), _nll_ref, nll_samples),
    OpInfo("mse_loss", lambda a, b, **k: F.mse_loss(a, b, **k),
           lambda a, b, reduction: {"none": (a - b) ** 2, "sum": ((a - b) ** 2).sum(), "mean": ((a - b) ** 2).mean()}[reduction], pair_loss_samples),
    OpInfo("l1_loss", lambda a, b, **k: F.l1_loss(a, b, **k),
           lambda a, b, reduction: {"none": np.abs(a - b), "sum": np.abs(a - b).sum(), "mean": np.abs(a - b).mean()}[reduction], pair_loss_samples),
    OpInfo("bce_with_logits", lambda x, y, **k: F.binary_cross_entropy_with_logits(x, y, **k), _bce_ref, bce_samples),
    # ---- convolution family
    OpInfo("conv2d", lambda x, w, b, **k: F.conv2d(x, w, b, **k), _conv_ref, conv_samples, atol=1e-5),
    OpInfo("conv_transpose2d", lambda x, w, stride, padding, output_padding: F.conv_transpose2d(x, w, None, stride, padding, output_padding),
           lambda x, w, stride, padding, output_padding: _np_conv_t(x, w, stride, padding, output_padding),
           lambda rng: [Sample([rng.normal(size=(2, 3, 3, 4)), rng.normal(size=(3, 2, 3, 3))], dict(stride=2, padding=1, output_padding=1), "s2p1op1"),
                        Sample([rng.normal(size=(1, 2, 4, 4)), rng.normal(size=(2, 3, 2, 2))], dict(stride=1, padding=0, output_padding=0), "s1")], atol=1e-5),
    OpInfo("max_pool2d", lambda x, k, stride, pad, **kw: F.max_pool2d(x, k, stride, pad, **kw), lambda x, k, stride, pad, **kw: _np_pool(x, k, stride, pad, "max", **kw), pool_samples),
    OpInfo("avg_pool2d", lambda x, k, stride, pad, **kw: F.avg_pool2d(x, k, stride, pad, **kw), lambda x, k, stride, pad, **kw: _np_pool(x, k, stride, pad, "avg", **kw), avg_pool_samples),
    OpInfo("adaptive_avg_pool2d", lambda x, out: F.adaptive_avg_pool2d(x, out), _np_adaptive,
           lambda rng: [Sample([rng.normal(size=(2, 3, 7, 5))], dict(out=(3, 2)), "uneven"), Sample([rng.normal(size=(1, 2, 4, 4))], dict(out=(2, 2)), "even")]),
    OpInfo("pad_constant", lambda x: F.pad(x, (1, 2, 2, 0), value=0.5), lambda x: np.pad(x, ((0, 0), (2, 0), (1, 2)), constant_values=0.5), view_samples),
    OpInfo("pad_reflect", lambda x: F.pad(x, (2, 1), mode="reflect"), lambda x: np.pad(x, ((0, 0), (0, 0), (2, 1)), mode="reflect"), view_samples),
    OpInfo("pad_replicate", lambda x: F.pad(x, (1, 3), mode="replicate"), lambda x: np.pad(x, ((0, 0), (0, 0), (1, 3)), mode="edge"), view_samples),
    OpInfo("unfold", lambda x: F.unfold(x, (2, 3), dilation=1, padding=1, stride=(1, 2)),
           lambda x: _np_unfold(x, (2, 3), (1, 2), (1, 1))[0].reshape(x.shape[0], x.shape[1] * 6, -1),
           lambda rng: [Sample([rng.normal(size=(2, 3, 5, 6))], desc="4d")]),
    OpInfo("fold", lambda c: F.fold(c, (4, 5), (2, 2), stride=(2, 1)),
           lambda c: _np_fold(c, (4, 5), (2, 2), (2, 1)),
           lambda rng: [Sample([rng.normal(size=(2, 3 * 4, 2 * 4))], desc="3d")]),
    OpInfo("batch_norm2d", lambda x: F.batch_norm(x, None, None, training=True),
           lambda x: (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True) + 1e-5),
           lambda rng: [Sample([rng.normal(size=(3, 2, 4, 5))], desc="4d")], atol=1e-5),
]


def _np_fold(c, out, k, stride):
    n, ckk, L = c.shape
    ch = ckk // (k[0] * k[1])
    oh = (out[0] - k[0]) // stride[0] + 1
    ow = (out[1] - k[1]) // stride[1] + 1
    c = c.reshape(n, ch, k[0], k[1], oh, ow)
    res = np.zeros((n, ch, out[0], out[1]))
    for i in range(k[0]):
        for j in range(k[1]):
            res[:, :, i:i + stride[0] * oh:stride[0], j:j + stride[1] * ow:stride[1]] += c[:, :, i, j]
    return res


# ---------------------------------------------------------------- issue 13: the everyday surface


def _signed_away(rng, shape, lo=0.5, hi=2.0):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def mod_samples(rng):
    a = lambda *s: rng.uniform(-5, 5, size=s)  # noqa: E731
    return [
        Sample([a(3, 4), _signed_away(rng, (3, 4))], desc="same"),
        Sample([a(3, 4), _signed_away(rng, (4,))], desc="broadcast-row"),
        Sample([a(), _signed_away(rng, (3,))], desc="0d-lhs"),
        Sample([a(0, 4), _signed_away(rng, (4,))], desc="empty"),
        Sample([a(4, 3), _signed_away(rng, (4, 3))], desc="noncontig", noncontig=True),
    ]


def mat_samples(rng):
    n = rng.normal
    return [
        Sample([n(size=(4, 5))], desc="2d"),
        Sample([n(size=(2, 3, 4))], desc="3d"),
        Sample([n(size=(5, 3))], desc="noncontig", noncontig=True),
        Sample([n(size=(0, 3))], desc="empty"),
    ]


def square_samples(rng):
    return [Sample([rng.normal(size=(4, 4))], desc="square"), Sample([rng.normal(size=(3, 5))], desc="noncontig", noncontig=True)]


def specials_samples(rng):
    x = rng.normal(size=(3, 4))
    x[0, 1], x[1, 2], x[2, 0], x[2, 3] = np.nan, np.inf, -np.inf, 0.0
    return [Sample([x], desc="specials"), Sample([x.T.copy()], desc="noncontig", noncontig=True), Sample([np.zeros((0, 2))], desc="empty")]


def scan_samples(with_zeros=False):
    def gen(rng):
        x = rng.uniform(-2, 2, size=(3, 5, 4))
        if with_zeros:
            x[0, 2, 1] = 0.0
            x[1, 0, :] = 0.0
            x[2, 3, 2] = 0.0
            x[2, 1, 2] = 0.0
        return [
            Sample([x], dict(dim=1), "dim1"),
            Sample([x], dict(dim=-1), "dim-1"),
            Sample([x], dict(dim=0), "dim0"),
            Sample([x[:, :, :3]], dict(dim=1), "noncontig", noncontig=True),
            Sample([rng.uniform(-2, 2, size=(9,))], dict(dim=0), "1d-odd"),
            Sample([np.array(1.5)], dict(dim=0), "0d"),
        ]

    return gen



def quantile_samples(rng):
    x = rng.normal(size=(3, 7))
    return [Sample([x], dict(q=0.3, dim=1), "dim1"), Sample([x], dict(q=0.5), "all"),
            Sample([x], dict(q=0.9, dim=0, keepdim=True, interpolation="midpoint"), "midpoint"),
            Sample([x], dict(q=0.6, dim=1, interpolation="lower"), "lower")]


def _np_quantile(x, q, dim=None, keepdim=False, interpolation="linear"):
    return np.quantile(x, q, axis=dim, keepdims=keepdim, method=interpolation)


def _np_diag_embed(x, offset=0):
    n = x.shape[-1] + abs(offset)
    out = np.zeros(x.shape[:-1] + (n, n))
    for i in range(x.shape[-1]):
        r, c = (i, i + offset) if offset >= 0 else (i - offset, i)
        out[..., r, c] = x[..., i]
    return out


def _np_block_diag(a, b):
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[:a.shape[0], :a.shape[1]] = a
    out[a.shape[0]:, a.shape[1]:] = b
    return out


def _np_windows(x, dimension, size, step):
    w = np.lib.stride_tricks.sliding_window_view(x, size, axis=dimension)
    return np.take(w, range(0, w.shape[dimension], step), axis=dimension)


def _np_index_copy(x, s, i):
    out = x.copy()
    out[:, i] = s
    return out



def _np_erfinv(x):
    # bisection on math.erf in float64: an independent reference (60 halvings: below 1e-16)
    lo, hi = np.full(np.shape(x), -6.0), np.full(np.shape(x), 6.0)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    for _ in range(60):
        mid = (lo + hi) / 2
        below = erf(mid) < x
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def _np_lrn(x, size=3, alpha=0.1, beta=0.75, k=1.0):
    sq = x ** 2
    c = x.shape[1]
    pad = np.pad(sq, [(0, 0), (size // 2, (size - 1) // 2)] + [(0, 0)] * (x.ndim - 2))
    div = np.stack([pad[:, i:i + size].sum(1) for i in range(c)], 1) / size
    return x / (k + alpha * div) ** beta



def _np_conv3d(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    st, pd, dl = (tuple(v) if isinstance(v, tuple) else (v,) * 3 for v in (stride, padding, dilation))
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pd])
    o, cg, *ks = w.shape
    outs = [(xp.shape[2 + i] - dl[i] * (ks[i] - 1) - 1) // st[i] + 1 for i in range(3)]
    y = np.zeros((x.shape[0], o, *outs))
    og = o // groups
    for i, j, k in np.ndindex(*outs):
        sl = [slice(i * st[0], i * st[0] + dl[0] * (ks[0] - 1) + 1, dl[0]),
              slice(j * st[1], j * st[1] + dl[1] * (ks[1] - 1) + 1, dl[1]),
              slice(k * st[2], k * st[2] + dl[2] * (ks[2] - 1) + 1, dl[2])]
        for g in range(groups):
            patch = xp[:, g * cg:(g + 1) * cg, sl[0], sl[1], sl[2]]
            y[:, g * og:(g + 1) * og, i, j, k] = np.einsum("ncdhw,ocdhw->no", patch, w[g * og:(g + 1) * og])
    return y + b[None, :, None, None, None]


def _np_pool3d(kind):
    def ref(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * 3
        s = k if stride is None else (stride if isinstance(stride, tuple) else (stride,) * 3)
        p = padding if isinstance(padding, tuple) else (padding,) * 3
        outs = []
        for i in range(3):
            num = x.shape[2 + i] + 2 * p[i] - k[i]
            n = (-(-num // s[i]) if ceil_mode else num // s[i]) + 1
            if ceil_mode and (n - 1) * s[i] >= x.shape[2 + i] + p[i]:
                n -= 1
            outs.append(n)
        y = np.zeros(x.shape[:2] + tuple(outs))
        for idx in np.ndindex(*outs):
            lo = [idx[i] * s[i] - p[i] for i in range(3)]
            hi = [lo[i] + k[i] for i in range(3)]
            cl = [max(v, 0) for v in lo]
            ch = [min(hi[i], x.shape[2 + i]) for i in range(3)]
            win = x[:, :, cl[0]:ch[0], cl[1]:ch[1], cl[2]:ch[2]]
            if kind == "max":
                y[(slice(None), slice(None)) + idx] = win.max(axis=(2, 3, 4))
            else:
                count = np.prod([min(hi[i], x.shape[2 + i] + p[i]) - lo[i] for i in range(3)]) if count_include_pad \
                    else win[0, 0].size
                y[(slice(None), slice(None)) + idx] = win.sum(axis=(2, 3, 4)) / count
        return y
    return ref


def _np_adaptive3d(reduce):
    def ref(x, output_size):
        y = np.zeros(x.shape[:2] + tuple(output_size))
        for idx in np.ndindex(*output_size):
            sl = []
            for i in range(3):
                n, o = x.shape[2 + i], output_size[i]
                sl.append(slice((idx[i] * n) // o, -(-((idx[i] + 1) * n) // o)))
            y[(slice(None), slice(None)) + idx] = reduce(x[:, :, sl[0], sl[1], sl[2]], axis=(2, 3, 4))
        return y
    return ref


_np_adaptive_avg3d = _np_adaptive3d(np.mean)



def _np_conv_transpose3d(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    st, pd, op, dl = (tuple(v) if isinstance(v, tuple) else (v,) * 3 for v in (stride, padding, output_padding, dilation))
    n, cin = x.shape[:2]
    _, cog, *ks = w.shape
    full = [(x.shape[2 + i] - 1) * st[i] + dl[i] * (ks[i] - 1) + 1 + op[i] for i in range(3)]
    y = np.zeros((n, cog * groups, *full))
    cig = cin // groups
    for idx in np.ndindex(*x.shape[2:]):
        for kk in np.ndindex(*ks):
            o = [idx[i] * st[i] + kk[i] * dl[i] for i in range(3)]
            for g in range(groups):
                contrib = np.einsum("nc,co->no", x[:, g * cig:(g + 1) * cig][(slice(None), slice(None)) + idx],
                                    w[g * cig:(g + 1) * cig][(slice(None), slice(None)) + kk])
                y[:, g * cog:(g + 1) * cog, o[0], o[1], o[2]] += contrib
    y = y[:, :, pd[0]:full[0] - pd[0], pd[1]:full[1] - pd[1], pd[2]:full[2] - pd[2]]
    return y + b[None, :, None, None, None]


_np_adaptive_max3d = _np_adaptive3d(np.max)


def sort_samples(rng):
    x = rng.normal(size=(3, 5, 4))
    return [
        Sample([x], dict(dim=1), "dim1"),
        Sample([x], dict(dim=-1), "dim-1"),
        Sample([x], dict(dim=0, descending=True), "dim0-desc"),
        Sample([x], dict(dim=-1), "noncontig", noncontig=True),
        Sample([rng.normal(size=(7,))], dict(dim=0, descending=True), "1d"),
    ]


def _np_sort(x, dim=-1, descending=False):
    s = np.sort(x, axis=dim, kind="stable")
    return np.flip(s, axis=dim) if descending else s


def _np_argsort(x, dim=-1, descending=False):
    return np.argsort(-x if descending else x, axis=dim, kind="stable")


def _np_topk(x, k, dim=-1, largest=True):
    s = _np_sort(x, dim, descending=largest)
    return np.take(s, np.arange(k), axis=dim)


def topk_samples(rng):
    x = rng.normal(size=(3, 6, 4))
    return [
        Sample([x], dict(k=3, dim=1), "k3-dim1"),
        Sample([x], dict(k=2, dim=-1, largest=False), "smallest"),
        Sample([x], dict(k=4, dim=-1), "noncontig", noncontig=True),
        Sample([x], dict(k=0, dim=0), "k0"),
    ]


def _np_median(x, dim=None, keepdim=False):
    if dim is None:
        return np.sort(x.reshape(-1))[(x.size - 1) // 2]
    n = x.shape[dim]
    return np.take(np.sort(x, axis=dim), [(n - 1) // 2] if keepdim else (n - 1) // 2, axis=dim)


def median_samples(rng):
    x = rng.normal(size=(3, 6, 5))
    return [
        Sample([x], dict(dim=1), "even"),
        Sample([x], dict(dim=2, keepdim=True), "odd-keepdim"),
        Sample([x], dict(), "all"),
        Sample([x], dict(dim=-1), "noncontig", noncontig=True),
    ]


def _median_op(x, dim=None, keepdim=False):
    if dim is None:
        return x.median()
    return x.median(dim, keepdim).values


def _kth_ref(x, k, dim=-1, keepdim=False):
    return np.take(np.sort(x, axis=dim), [k - 1] if keepdim else k - 1, axis=dim)


def search_samples(rng):
    seq = np.sort(rng.normal(size=(6,)))
    v = rng.normal(size=(3, 4))
    v[0, 0], v[1, 1] = seq[2], seq[4]  # exact hits: left and right differ there
    rows = np.sort(rng.normal(size=(3, 5)), axis=1)
    return [
        Sample([seq, v], dict(right=False), "left"),
        Sample([seq, v], dict(right=True), "right"),
        Sample([rows, v], dict(right=False), "rows"),
    ]


def _searchsorted_ref(seq, v, right=False):
    side = "right" if right else "left"
    if seq.ndim == 1:
        return np.searchsorted(seq, v, side=side)
    return np.stack([np.searchsorted(seq[i], v[i], side=side) for i in range(seq.shape[0])])


def _masked_fill_op(x):
    return x.masked_fill(x > 0.5, -1.0)


def _index_fill_op(x):
    return x.index_fill(1, bp.tensor([0, -1], device=x.device), 0.25)


def _index_fill_ref(x):
    y = x.copy()
    y[:, [0, -1]] = 0.25
    return y


def _take_along_samples(rng):
    x = rng.normal(size=(3, 5))
    return [
        Sample([x, rng.integers(0, 5, size=(3, 2))], dict(dim=1), "dim1", int_inputs=[1]),
        Sample([x, rng.integers(0, 3, size=(4, 1))], dict(dim=0), "dim0-broadcast", int_inputs=[1]),
        Sample([x, rng.integers(0, 15, size=(6,))], dict(dim=None), "flat", int_inputs=[1]),
    ]


def _take_along_ref(x, i, dim):
    if dim is None:
        return x.reshape(-1)[i]
    shape = list(np.broadcast_shapes(tuple(1 if d == dim else s for d, s in enumerate(x.shape)), tuple(1 if d == dim else s for d, s in enumerate(i.shape))))
    xs, is_ = list(shape), list(shape)
    xs[dim], is_[dim] = x.shape[dim], i.shape[dim]
    return np.take_along_axis(np.broadcast_to(x, xs), np.broadcast_to(i, is_), dim)


def _isclose_samples(rng):
    a = rng.normal(size=(4, 5))
    b = a + rng.choice([0.0, 1e-10, 1e-3, 1.0], size=a.shape) * rng.choice([-1, 1], size=a.shape)
    b[0, 0], a[0, 0] = np.nan, np.nan
    b[1, 1] = a[1, 1] = np.inf
    return [Sample([a, b], dict(), "default"), Sample([a, b], dict(rtol=1e-2, atol=1e-3, equal_nan=True), "loose-nan")]


OPS += [
    # ---- unary primitives
    OpInfo("log1p", lambda x: x.log1p(), np.log1p, unary_samples(-0.5, 3.0)),
    OpInfo("expm1", lambda x: x.expm1(), np.expm1, unary_samples()),
    OpInfo("log2", lambda x: x.log2(), np.log2, unary_samples(0.2, 3.0)),
    OpInfo("log10", lambda x: x.log10(), np.log10, unary_samples(0.2, 3.0)),
    OpInfo("tan", lambda x: x.tan(), np.tan, unary_samples(-1.2, 1.2), atol=1e-5),
    OpInfo("asin", lambda x: x.asin(), np.arcsin, unary_samples(-0.9, 0.9)),
    OpInfo("acos", lambda x: x.acos(), np.arccos, unary_samples(-0.9, 0.9)),
    OpInfo("atan", lambda x: x.atan(), np.arctan, unary_samples(-3, 3)),
    OpInfo("sinh", lambda x: x.sinh(), np.sinh, unary_samples()),
    OpInfo("cosh", lambda x: x.cosh(), np.cosh, unary_samples()),
    OpInfo("floor", lambda x: x.floor(), np.floor, unary_samples(-3, 3), gradgrad=False),
    OpInfo("ceil", lambda x: x.ceil(), np.ceil, unary_samples(-3, 3), gradgrad=False),
    OpInfo("round", lambda x: x.round(), np.round, unary_samples(-3, 3), gradgrad=False),
    OpInfo("trunc", lambda x: x.trunc(), np.trunc, unary_samples(-3, 3), gradgrad=False),
    OpInfo("erfc", lambda x: x.erfc(), _erfc, unary_samples(-3.0, 5.0)),
    OpInfo("lgamma", lambda x: x.lgamma(), _lgamma, unary_samples(0.2, 6.0)),
    # the reflection branch, between the poles at -3 and -2
    OpInfo("lgamma_negative", lambda x: x.lgamma(), _lgamma, unary_samples(-2.8, -2.2)),
    # digamma's own second derivative would be polygamma(2): no kernel, so no gradgrad
    OpInfo("digamma", lambda x: x.digamma(), _digamma, unary_samples(0.2, 6.0), gradgrad=False),
    OpInfo("digamma_negative", lambda x: x.digamma(), _digamma, unary_samples(-1.8, -1.2), gradgrad=False),
    OpInfo("polygamma1", lambda x: bp.polygamma(1, x), _trigamma, unary_samples(-0.8, 6.0), grad=False),
    # p = 2 (domain x > 1/2) and samples from 1.6: the property test's draws around a 0-d
    # sample (within 1 of it) stay inside the domain
    OpInfo("mvlgamma", lambda x: bp.mvlgamma(x, 2), lambda x: _lgamma(x) + _lgamma(x - 0.5)
           + 0.5 * math.log(math.pi), unary_samples(1.6, 5.0)),
    OpInfo("frac", lambda x: x.frac(), lambda x: x - np.trunc(x), unary_samples(-3, 3)),
    OpInfo("clamp_max", lambda x: x.clamp_max(0.3), lambda x: np.minimum(x, 0.3), unary_samples()),
    OpInfo("clamp_min_method", lambda x: x.clamp_min(-0.3), lambda x: np.maximum(x, -0.3), unary_samples()),
    # ---- binary primitives
    OpInfo("atan2", lambda a, b: a.atan2(b), np.arctan2, binary_samples()),
    OpInfo("fmod", lambda a, b: a.fmod(b), np.fmod, mod_samples, atol=1e-5),
    OpInfo("remainder", lambda a, b: a.remainder(b), np.remainder, mod_samples, atol=1e-5),
    OpInfo("mod_operator", lambda a, b: a % b, np.remainder, mod_samples, atol=1e-5),
    OpInfo("lerp", lambda a, b: a.lerp(b, 0.3), lambda a, b: a + 0.3 * (b - a), binary_samples()),
    OpInfo("lerp_tensor", lambda a, b, w: bp.lerp(a, b, w), lambda a, b, w: a + w * (b - a),
           lambda rng: [Sample([rng.normal(size=(3, 4)), rng.normal(size=(4,)), rng.uniform(size=(3, 1))], desc="broadcast")]),
    # ---- matrix composites
    OpInfo("tril", lambda x: x.tril(), np.tril, mat_samples),
    OpInfo("tril_k", lambda x: x.tril(-1), lambda x: np.tril(x, -1), mat_samples),
    OpInfo("triu", lambda x: x.triu(), np.triu, mat_samples),
    OpInfo("triu_k", lambda x: bp.triu(x, 2), lambda x: np.triu(x, 2), mat_samples),
    OpInfo("diagonal", lambda x: x.diagonal(), lambda x: np.diagonal(x).copy(), mat_samples),
    OpInfo("diagonal_offset", lambda x: x.diagonal(1, -1, 0), lambda x: np.diagonal(x, 1, -1, 0).copy(), mat_samples),
    OpInfo("diagonal_neg", lambda x: bp.diagonal(x, -1), lambda x: np.diagonal(x, -1).copy(), mat_samples),
    OpInfo("diag_2d", lambda x: x.diag(1), lambda x: np.diag(x, 1), square_samples),
    OpInfo("diag_1d", lambda x: bp.diag(x, -2), lambda x: np.diag(x, -2),
           lambda rng: [Sample([rng.normal(size=(4,))], desc="1d"), Sample([np.zeros(0)], desc="empty")]),
    OpInfo("trace", lambda x: x.trace(), np.trace, square_samples),
    OpInfo("outer", lambda a, b: bp.outer(a, b), np.outer,
           lambda rng: [Sample([rng.normal(size=(3,)), rng.normal(size=(4,))], desc="1d"), Sample([rng.normal(size=(0,)), rng.normal(size=(2,))], desc="empty")]),
    OpInfo("bmm", lambda a, b: bp.bmm(a, b), np.matmul,
           lambda rng: [Sample([rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))], desc="3d"),
                        Sample([rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 3, 3))], desc="noncontig", noncontig=True)], atol=1e-5),
    OpInfo("addmm", lambda i, a, b: bp.addmm(i, a, b, beta=0.5, alpha=2.0), lambda i, a, b: 0.5 * i + 2.0 * a @ b,
           lambda rng: [Sample([rng.normal(size=(3, 5)), rng.normal(size=(3, 4)), rng.normal(size=(4, 5))], desc="2d"),
                        Sample([rng.normal(size=(5,)), rng.normal(size=(3, 4)), rng.normal(size=(4, 5))], desc="broadcast-bias")], atol=1e-5),
    OpInfo("baddbmm", lambda i, a, b: i.baddbmm(a, b, alpha=0.5), lambda i, a, b: i + 0.5 * a @ b,
           lambda rng: [Sample([rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))], desc="3d")], atol=1e-5),
    # ---- rearranging composites
    OpInfo("flip", lambda x: x.flip(0, 2), lambda x: np.flip(x, (0, 2)), view_samples),
    OpInfo("flip_list", lambda x: bp.flip(x, [-1]), lambda x: np.flip(x, -1), view_samples),
    OpInfo("roll", lambda x: x.roll((1, -2), (0, 2)), lambda x: np.roll(x, (1, -2), (0, 2)), view_samples),
    OpInfo("roll_flat", lambda x: bp.roll(x, 5), lambda x: np.roll(x, 5), view_samples),
    OpInfo("tile", lambda x: x.tile(2, 1), lambda x: np.tile(x, (2, 1)), view_samples),
    OpInfo("tile_more", lambda x: bp.tile(x, (2, 1, 1, 2)), lambda x: np.tile(x, (2, 1, 1, 2)), view_samples),
    OpInfo("repeat_interleave", lambda x: x.repeat_interleave(2, dim=1), lambda x: np.repeat(x, 2, axis=1), view_samples),
    OpInfo("repeat_interleave_tensor", lambda x: x.repeat_interleave(bp.tensor([1, 0, 3], device=x.device), dim=1),
           lambda x: np.repeat(x, [1, 0, 3], axis=1), view_samples),
    OpInfo("repeat_interleave_flat", lambda x: bp.repeat_interleave(x, 2), lambda x: np.repeat(x, 2), view_samples),
    OpInfo("take_along_dim", lambda x, i, dim: bp.take_along_dim(x, i, dim), _take_along_ref, _take_along_samples),
    OpInfo("masked_fill", _masked_fill_op, lambda x: np.where(x > 0.5, -1.0, x), unary_samples()),
    OpInfo("masked_select", lambda x: x.masked_select(x > 0), lambda x: x[x > 0], view_samples),
    OpInfo("index_fill", _index_fill_op, _index_fill_ref, view_samples),
    OpInfo("where_scalar_other", lambda x: bp.where(x > 0, x, 0.5), lambda x: np.where(x > 0, x, 0.5), unary_samples(avoid_zero=True)),
    # ---- float classes and closeness (no gradient)
    OpInfo("isnan", lambda x: x.isnan(), np.isnan, specials_samples, grad=False),
    OpInfo("isinf", lambda x: bp.isinf(x), np.isinf, specials_samples, grad=False),
    OpInfo("isfinite", lambda x: x.isfinite(), np.isfinite, specials_samples, grad=False),
    OpInfo("nan_to_num", lambda x: x.nan_to_num(nan=0.5, posinf=1e30, neginf=-2e30),
           lambda x: np.nan_to_num(x, nan=0.5, posinf=1e30, neginf=-2e30), specials_samples, grad=False),
    OpInfo("nan_to_num_grad", lambda x: bp.nan_to_num(x), lambda x: x, unary_samples()),
    OpInfo("isclose", lambda a, b, **k: a.isclose(b, **k), lambda a, b, **k: np.isclose(a, b, **k), _isclose_samples, grad=False),
    # ---- scans
    OpInfo("cumsum", lambda x, dim: x.cumsum(dim), lambda x, dim: np.cumsum(x, axis=dim) if x.ndim else x, scan_samples()),
    OpInfo("cumprod", lambda x, dim: bp.cumprod(x, dim), lambda x, dim: np.cumprod(x, axis=dim) if x.ndim else x, scan_samples()),
    OpInfo("cumprod_zeros", lambda x, dim: x.cumprod(dim), lambda x, dim: np.cumprod(x, axis=dim) if x.ndim else x, scan_samples(with_zeros=True)),
    # ---- composites of issue 13's second surface sweep (math_ops.py, stacking.py)
    OpInfo("prod", lambda x, **k: bp.prod(x, **k), lambda x, dim=None, keepdim=False: np.prod(x, axis=dim, keepdims=keepdim),
           reduce_samples([{"dim": 1}, {"dim": 0, "keepdim": True}, {}]), atol=1e-5),
    OpInfo("prod_zeros", lambda x, dim: x.prod(dim), lambda x, dim: np.prod(x, axis=dim) if x.ndim else x, scan_samples(with_zeros=True),
           atol=1e-5),
    OpInfo("nansum", lambda x, **k: bp.nansum(x, **k), lambda x, dim=None, keepdim=False: np.nansum(x, axis=dim, keepdims=keepdim),
           reduce_samples([{"dim": 1}, {}])),
    OpInfo("nanmean", lambda x, **k: bp.nanmean(x, **k), lambda x, dim=None, keepdim=False: np.nanmean(x, axis=dim, keepdims=keepdim),
           reduce_samples([{"dim": 2, "keepdim": True}, {}])),
    OpInfo("quantile", lambda x, **k: bp.quantile(x, **k), _np_quantile, quantile_samples, atol=1e-5),
    OpInfo("logaddexp", bp.logaddexp, np.logaddexp, binary_samples()),
    OpInfo("logaddexp2", bp.logaddexp2, np.logaddexp2, binary_samples()),
    OpInfo("xlogy", bp.xlogy, lambda x, y: np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y))),
           binary_samples(rhs_lo=0.2, rhs_hi=2.0)),
    OpInfo("logit", lambda x: bp.logit(x), lambda x: np.log(x / (1 - x)), unary_samples(0.1, 0.9)),
    OpInfo("exp2", bp.exp2, np.exp2, unary_samples()),
    OpInfo("deg2rad", bp.deg2rad, np.deg2rad, unary_samples()),
    OpInfo("fmax", bp.fmax, np.fmax, binary_samples()),
    OpInfo("fmin", bp.fmin, np.fmin, binary_samples()),
    OpInfo("asinh", bp.asinh, np.arcsinh, unary_samples(-3, 3)),
    OpInfo("acosh", bp.acosh, np.arccosh, unary_samples(1.1, 4)),
    OpInfo("atanh", bp.atanh, np.arctanh, unary_samples(-0.9, 0.9)),
    OpInfo("sinc", bp.sinc, np.sinc, unary_samples(avoid_zero=True)),
    OpInfo("tensordot", lambda a, b: bp.tensordot(a, b, dims=([1, 2], [0, 1])), lambda a, b: np.tensordot(a, b, axes=([1, 2], [0, 1])),
           lambda rng: [Sample([rng.normal(size=(2, 3, 4)), rng.normal(size=(3, 4, 5))], desc="pairs")], atol=1e-5),
    OpInfo("kron", bp.kron, np.kron, lambda rng: [Sample([rng.normal(size=(2, 3)), rng.normal(size=(3, 2))], desc="2d"),
                                                  Sample([rng.normal(size=(2,)), rng.normal(size=(2, 3))], desc="ranks")]),
    OpInfo("inner", bp.inner, np.inner, lambda rng: [Sample([rng.normal(size=(2, 4)), rng.normal(size=(3, 4))], desc="2d")], atol=1e-5),
    OpInfo("addmv", lambda c, m, v: bp.addmv(c, m, v, beta=0.5, alpha=2.0), lambda c, m, v: 0.5 * c + 2.0 * (m @ v),
           lambda rng: [Sample([rng.normal(size=(3,)), rng.normal(size=(3, 4)), rng.normal(size=(4,))], desc="mv")], atol=1e-5),
    OpInfo("addr", lambda c, a, b: bp.addr(c, a, b), lambda c, a, b: c + np.outer(a, b),
           lambda rng: [Sample([rng.normal(size=(3, 4)), rng.normal(size=(3,)), rng.normal(size=(4,))], desc="outer")]),
    OpInfo("addbmm", lambda c, a, b: bp.addbmm(c, a, b), lambda c, a, b: c + np.einsum("bij,bjk->ik", a, b),
           lambda rng: [Sample([rng.normal(size=(3, 2)), rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 5, 2))], desc="bmm")],
           atol=1e-5),
    OpInfo("cov", lambda x: bp.cov(x), lambda x: np.cov(x), lambda rng: [Sample([rng.normal(size=(3, 6))], desc="rows"),
                                                                          Sample([rng.normal(size=(6,))], desc="1d")], atol=1e-5),
    OpInfo("corrcoef", bp.corrcoef, np.corrcoef, lambda rng: [Sample([rng.normal(size=(3, 6))], desc="rows")], atol=1e-5),
    OpInfo("hstack", lambda a, b: bp.hstack([a, b]), lambda a, b: np.hstack([a, b]),
           lambda rng: [Sample([rng.normal(size=(2, 3)), rng.normal(size=(2, 2))], desc="2d"),
                        Sample([rng.normal(size=(3,)), rng.normal(size=(2,))], desc="1d")]),
    OpInfo("vstack", lambda a, b: bp.vstack([a, b]), lambda a, b: np.vstack([a, b]),
           lambda rng: [Sample([rng.normal(size=(3,)), rng.normal(size=(2, 3))], desc="mixed")]),
    OpInfo("dstack", lambda a, b: bp.dstack([a, b]), lambda a, b: np.dstack([a, b]),
           lambda rng: [Sample([rng.normal(size=(2, 3)), rng.normal(size=(2, 3))], desc="2d")]),
    OpInfo("column_stack", lambda a, b: bp.column_stack([a, b]), lambda a, b: np.column_stack([a, b]),
           lambda rng: [Sample([rng.normal(size=(3,)), rng.normal(size=(3, 2))], desc="mixed")]),
    OpInfo("rot90", lambda x, k: bp.rot90(x, k, [1, 2]), lambda x, k: np.rot90(x, k, (1, 2)),
           lambda rng: [Sample([rng.normal(size=(2, 3, 4))], dict(k=k), f"k={k}") for k in (1, 2, 3, -1)]),
    OpInfo("diag_embed", lambda x, **k: bp.diag_embed(x, **k), _np_diag_embed,
           lambda rng: [Sample([rng.normal(size=(2, 3))], dict(offset=o), f"offset={o}") for o in (0, 1, -2)]),
    OpInfo("block_diag", lambda a, b: bp.block_diag(a, b), _np_block_diag,
           lambda rng: [Sample([rng.normal(size=(2, 3)), rng.normal(size=(1, 2))], desc="2d")]),
    OpInfo("unfold_windows", lambda x, **k: x.unfold(**k), _np_windows,
           lambda rng: [Sample([rng.normal(size=(2, 7, 3))], dict(dimension=1, size=3, step=2), "step2"),
                        Sample([rng.normal(size=(5,))], dict(dimension=0, size=2, step=1), "overlap")]),
    OpInfo("take", lambda x, i: bp.take(x, i), lambda x, i: np.take(x, i),
           lambda rng: [Sample([rng.normal(size=(3, 4)), np.array([[0, 5], [-1, 11]])], desc="2d", int_inputs=(1,))]),
    OpInfo("index_copy", lambda x, s, i: x.index_copy(1, i, s), _np_index_copy,
           lambda rng: [Sample([rng.normal(size=(3, 5)), rng.normal(size=(3, 2)), np.array([4, 1])], desc="dim1", int_inputs=(2,))]),
    OpInfo("erfinv", bp.erfinv, lambda x: _np_erfinv(x), unary_samples(-0.95, 0.95), atol=1e-5),
    OpInfo("local_response_norm", lambda x: bp.nn.functional.local_response_norm(x, 3, alpha=0.1, beta=0.75, k=1.0),
           _np_lrn, lambda rng: [Sample([rng.normal(size=(2, 5, 3, 2))], desc="4d"),
                                 Sample([rng.normal(size=(2, 4, 3))], desc="3d")], atol=1e-5),
    OpInfo("conv3d", lambda x, w, b, **k: bp.nn.functional.conv3d(x, w, b, **k), _np_conv3d,
           lambda rng: [Sample([rng.normal(size=(2, 3, 4, 5, 4)), rng.normal(size=(4, 3, 2, 3, 2)), rng.normal(size=(4,))],
                               dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1)), "strided"),
                        Sample([rng.normal(size=(1, 4, 3, 3, 3)), rng.normal(size=(2, 2, 3, 1, 2)), rng.normal(size=(2,))],
                               dict(groups=2, padding=(1, 0, 0)), "groups")], atol=1e-5),
    OpInfo("max_pool3d", lambda x, **k: bp.nn.functional.max_pool3d(x, **k), _np_pool3d("max"),
           lambda rng: [Sample([rng.normal(size=(2, 2, 5, 4, 6))], dict(kernel_size=2, stride=2, padding=1), "pad"),
                        Sample([rng.normal(size=(1, 2, 5, 5, 5))], dict(kernel_size=(3, 2, 2), stride=(2, 1, 2),
                                                                       ceil_mode=True), "ceil")]),
    OpInfo("avg_pool3d", lambda x, **k: bp.nn.functional.avg_pool3d(x, **k), _np_pool3d("avg"),
           lambda rng: [Sample([rng.normal(size=(2, 2, 5, 4, 6))], dict(kernel_size=3, stride=2, padding=1), "pad"),
                        Sample([rng.normal(size=(1, 2, 5, 5, 5))], dict(kernel_size=2, stride=1, padding=1,
                                                                       count_include_pad=False), "exclude-pad")]),
    OpInfo("conv_transpose3d", lambda x, w, b, **k: bp.nn.functional.conv_transpose3d(x, w, b, **k), _np_conv_transpose3d,
           lambda rng: [Sample([rng.normal(size=(2, 4, 3, 2, 3)), rng.normal(size=(4, 3, 2, 2, 3)), rng.normal(size=(6,))],
                               dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 0), groups=2,
                                    dilation=(1, 2, 1)), "strided-groups"),
                        Sample([rng.normal(size=(1, 2, 2, 3, 2)), rng.normal(size=(2, 2, 3, 1, 2)), rng.normal(size=(2,))],
                               dict(), "plain")], atol=1e-5),
    OpInfo("adaptive_max_pool3d", lambda x, **k: bp.nn.functional.adaptive_max_pool3d(x, **k), _np_adaptive_max3d,
           lambda rng: [Sample([rng.normal(size=(2, 2, 5, 7, 4))], dict(output_size=(2, 3, 3)), "uneven")]),
    OpInfo("adaptive_avg_pool3d", lambda x, **k: bp.nn.functional.adaptive_avg_pool3d(x, **k), _np_adaptive_avg3d,
           lambda rng: [Sample([rng.normal(size=(2, 2, 5, 7, 4))], dict(output_size=(2, 3, 4)), "uneven")]),
    # ---- sorting (the order comes from the CPU kernel; values are a gather)
    OpInfo("sort", lambda x, **k: x.sort(**k).values, _np_sort, sort_samples),
    OpInfo("argsort", lambda x, **k: x.argsort(**k), _np_argsort, sort_samples, grad=False),
    OpInfo("sort_indices", lambda x, **k: bp.sort(x, **k).indices, _np_argsort, sort_samples, grad=False),
    OpInfo("topk", lambda x, **k: x.topk(**k).values, _np_topk, topk_samples),
    OpInfo("kthvalue", lambda x, k, dim, keepdim=False: x.kthvalue(k, dim, keepdim).values, _kth_ref,
           lambda rng: [Sample([rng.normal(size=(3, 5, 4))], dict(k=2, dim=1), "dim1"),
                        Sample([rng.normal(size=(3, 5, 4))], dict(k=4, dim=-1, keepdim=True), "keepdim")]),
    OpInfo("median", _median_op, _np_median, median_samples),
    # (the sequences are sorted inside the op and the reference, so random draws stay valid)
    OpInfo("searchsorted", lambda s, v, **k: bp.searchsorted(s.sort().values, v, **k),
           lambda s, v, **k: _searchsorted_ref(np.sort(s, axis=-1), v, **k), search_samples, grad=False),
    OpInfo("bucketize", lambda v, s, **k: bp.bucketize(v, s.sort().values, **k),
           lambda v, s, right=False: np.searchsorted(np.sort(s), v, side="right" if right else "left"),
           lambda rng: [Sample([rng.normal(size=(3, 4)), np.sort(rng.normal(size=(5,)))], dict(right=r), f"right={r}") for r in (False, True)], grad=False),
]
