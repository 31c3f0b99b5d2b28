"""Recurrent layers, packed sequences, attention and transformers against independent NumPy
implementations with the same weights.

Gradients of every parameter are checked by the complex-step method on the NumPy reference:
``dL/dp = Im(L(p + i h e_p)) / h`` with ``h = 1e-30`` is exact to rounding (no subtraction), so
float64 gradients are compared to 1e-10. All perturbations run at once, as a leading batch axis
of the NumPy computation (one complex forward per test)."""

import math

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import nn
from backprop_rs.nn import functional as F
from backprop_rs.nn.utils import rnn as rnn_utils

from conftest import gpu_or_skip

H_STEP = 1e-30


def _np(t):
    return t.detach().numpy().astype(np.float64)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x):
    return np.where(np.real(x) > 0, x, 0.0)


# ----------------------------------------------------------------------------------- NumPy RNNs

def np_cell(mode, x, h, c, p, sfx):
    """One step of ``mode`` for one sequence: ``x`` (..., F), ``h`` (..., H) -> new ``h``, ``c``."""
    w_ih, w_hh = p["weight_ih" + sfx], p["weight_hh" + sfx]
    b_ih, b_hh = p.get("bias_ih" + sfx), p.get("bias_hh" + sfx)

    def lin(v, w, b):
        y = np.einsum("...f,...gf->...g", v, w)
        return y if b is None else y + b

    if mode in ("RNN_TANH", "RNN_RELU"):
        pre = lin(x, w_ih, b_ih) + lin(h, w_hh, b_hh)
        return (np.tanh(pre) if mode == "RNN_TANH" else _relu(pre)), None
    if mode == "LSTM":
        g = lin(x, w_ih, b_ih) + lin(h, w_hh, b_hh)
        n = g.shape[-1] // 4
        i, f, gg, o = _sig(g[..., :n]), _sig(g[..., n:2 * n]), np.tanh(g[..., 2 * n:3 * n]), _sig(g[..., 3 * n:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        if "weight_hr" + sfx in p:
            h = lin(h, p["weight_hr" + sfx], None)
        return h, c
    gi, gh = lin(x, w_ih, b_ih), lin(h, w_hh, b_hh)
    n = gi.shape[-1] // 3
    r = _sig(gi[..., :n] + gh[..., :n])
    z = _sig(gi[..., n:2 * n] + gh[..., n:2 * n])
    nn_ = np.tanh(gi[..., 2 * n:] + r * gh[..., 2 * n:])
    return (1 - z) * nn_ + z * h, None


def np_rnn(mode, p, x, lengths, h0, c0, num_layers, bidirectional):
    """Reference multi-layer (bi)directional recurrence, one sequence at a time over its own
    length. ``x`` (T, N, F) (values beyond a length are ignored); ``p`` maps names (without the
    ``_l{k}`` part handled here) to arrays that may carry a leading perturbation axis.
    Returns ``out`` (..., T, N, D*H) with zeros beyond each length, ``h_n``, ``c_n`` (..., D*L, N, H)."""
    T, N = x.shape[0], x.shape[1]
    D = 2 if bidirectional else 1
    outs, hs, cs = [], [], []
    for b in range(N):
        L = lengths[b]
        seq = [x[t, b] for t in range(L)]
        h_b, c_b = [], []
        for layer in range(num_layers):
            dir_out = []
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                k = layer * D + d
                h = h0[..., k, b, :]
                c = c0[..., k, b, :] if c0 is not None else None
                res = [None] * L
                for t in (range(L - 1, -1, -1) if d else range(L)):
                    h, c = np_cell(mode, seq[t], h, c, p, sfx)
                    res[t] = h
                dir_out.append(res)
                h_b.append(h)
                c_b.append(c)
            seq = [np.concatenate([dir_out[0][t], dir_out[1][t]], -1) if D == 2 else dir_out[0][t] for t in range(L)]
        width = seq[0].shape[-1]
        lead = np.broadcast(*[s for s in seq]).shape[:-1] if seq else ()
        o = np.zeros(lead + (T, width), dtype=np.result_type(*seq))
        for t in range(L):
            o[..., t, :] = seq[t]
        outs.append(o)
        hs.append(np.stack(np.broadcast_arrays(*h_b), -2))
        if c0 is not None:
            cs.append(np.stack(np.broadcast_arrays(*c_b), -2))
    out = np.stack(np.broadcast_arrays(*outs), -2)  # (..., T, N, W)
    h_n = np.stack(np.broadcast_arrays(*hs), -2)  # (..., DL, N, H)
    c_n = np.stack(np.broadcast_arrays(*cs), -2) if c0 is not None else None
    return out, h_n, c_n


def _complex_perturbed(arrays):
    """For named arrays, the versions with a leading axis of size P (all elements of all arrays):
    entry j adds ``i * H_STEP`` to the j-th element overall. Returns (perturbed, slices)."""
    sizes = {k: v.size for k, v in arrays.items()}
    P = sum(sizes.values())
    out, slices, off = {}, {}, 0
    for k, v in arrays.items():
        a = np.broadcast_to(v.astype(np.complex128), (P,) + v.shape).copy()
        idx = np.arange(v.size)
        a.reshape(P, -1)[off + idx, idx] += 1j * H_STEP
        out[k] = a
        slices[k] = slice(off, off + v.size)
        off += v.size
    return out, slices


CASES = [
    ("RNN_TANH", dict(num_layers=1)),
    ("RNN_RELU", dict(num_layers=2, bias=False)),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=1, proj_size=2)),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(num_layers=1, bias=False)),
]


def _make(mode, kw, input_size=3, hidden=4, dtype=bp.float64):
    if mode.startswith("RNN"):
        return nn.RNN(input_size, hidden, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", dtype=dtype, **kw)
    cls = nn.LSTM if mode == "LSTM" else nn.GRU
    return cls(input_size, hidden, dtype=dtype, **kw)


def _run_layer(m, x_np, lengths, h0_np, c0_np, packed, dtype):
    """Runs ``m`` on time-major ``x_np``; returns padded (T, N, W) output, h_n, c_n tensors and the
    input tensors (for gradients)."""
    bf = m.batch_first
    x = bp.tensor(x_np.transpose(1, 0, 2) if bf else x_np, dtype=dtype, requires_grad=True)
    h0 = bp.tensor(h0_np, dtype=dtype, requires_grad=True)
    c0 = bp.tensor(c0_np, dtype=dtype, requires_grad=True) if c0_np is not None else None
    hx = (h0, c0) if c0 is not None else h0
    if packed:
        inp = rnn_utils.pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
        out, hn = m(inp, hx)
        assert isinstance(out, rnn_utils.PackedSequence)
        out, got_len = rnn_utils.pad_packed_sequence(out, batch_first=bf, total_length=x_np.shape[0])
        assert got_len.tolist() == list(lengths)
    else:
        out, hn = m(x, hx)
    if bf:
        out = out.transpose(0, 1)
    h_n, c_n = hn if isinstance(hn, tuple) else (hn, None)
    return out, h_n, c_n, (x, h0, c0)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("mode,kw", CASES, ids=[f"{m}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for m, kw in CASES])
def test_recurrent_layer_matches_numpy_f64(mode, kw, packed, rng):
    m = _make(mode, kw)
    T, N = 5, 3
    lengths = [5, 2, 4] if packed else [T] * N
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    h_out = kw.get("proj_size", 0) or 4
    x_np = rng.standard_normal((T, N, 3))
    h0_np = rng.standard_normal((D * L, N, h_out)) * 0.5
    c0_np = rng.standard_normal((D * L, N, 4)) * 0.5 if mode == "LSTM" else None
    out, h_n, c_n, (x, h0, c0) = _run_layer(m, x_np, lengths, h0_np, c0_np, packed, bp.float64)

    params = {k: _np(v) for k, v in m.state_dict().items()}
    ref_out, ref_h, ref_c = np_rnn(mode, params, x_np, lengths, h0_np, c0_np, L, D == 2)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, rtol=0, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(c_n.detach().numpy(), ref_c, rtol=0, atol=1e-12)

    # gradients of a random linear functional of (output, h_n, c_n) w.r.t. every parameter and h0/c0
    g_out, g_h = rng.standard_normal(ref_out.shape), rng.standard_normal(ref_h.shape)
    g_c = rng.standard_normal(ref_c.shape) if ref_c is not None else None
    loss = (out * bp.tensor(g_out)).sum() + (h_n * bp.tensor(g_h)).sum()
    if c_n is not None:
        loss = loss + (c_n * bp.tensor(g_c)).sum()
    loss.backward()

    leaves = dict(params, __h0=h0_np, **({"__c0": c0_np} if c0_np is not None else {}))
    pert, slices = _complex_perturbed(leaves)
    pp = {k: v for k, v in pert.items() if not k.startswith("__")}
    o, hh, cc = np_rnn(mode, pp, x_np, lengths, pert["__h0"], pert.get("__c0"), L, D == 2)
    red = (o * g_out).reshape(o.shape[0], -1).sum(1) + (hh * g_h).reshape(hh.shape[0], -1).sum(1)
    if cc is not None:
        red = red + (cc * g_c).reshape(cc.shape[0], -1).sum(1)
    grads = red.imag / H_STEP
    named = dict(m.named_parameters())
    for k in params:
        np.testing.assert_allclose(named[k].grad.detach().numpy().reshape(-1), grads[slices[k]], rtol=0, atol=1e-10,
                                   err_msg=f"d loss / d {k}")
    np.testing.assert_allclose(h0.grad.detach().numpy().reshape(-1), grads[slices["__h0"]], rtol=0, atol=1e-10)
    if c0 is not None:
        np.testing.assert_allclose(c0.grad.detach().numpy().reshape(-1), grads[slices["__c0"]], rtol=0, atol=1e-10)
    # the input's gradient is zero beyond each sequence's length (packed) and finite everywhere
    gx = x.grad.detach().numpy()
    if m.batch_first:
        gx = gx.transpose(1, 0, 2)
    for b, n in enumerate(lengths):
        assert np.all(gx[n:, b] == 0)
        assert np.any(gx[:n, b] != 0)


@pytest.mark.parametrize("mode,kw", [CASES[0], CASES[2], CASES[5]], ids=["rnn", "lstm-bi", "gru-bi"])
def test_recurrent_layer_matches_numpy_f32(mode, kw, rng):
    m = _make(mode, kw, dtype=bp.float32)
    T, N = 6, 2
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    x_np = rng.standard_normal((T, N, 3)).astype(np.float32)
    x = bp.tensor(x_np.transpose(1, 0, 2) if m.batch_first else x_np)
    out, hn = m(x)  # no initial state: zeros
    if m.batch_first:
        out = out.transpose(0, 1)
    h_n = hn[0] if isinstance(hn, tuple) else hn
    params = {k: _np(v) for k, v in m.state_dict().items()}
    z = np.zeros((D * L, N, 4))
    ref_out, ref_h, _ = np_rnn(mode, params, x_np.astype(np.float64), [T] * N, z, z if mode == "LSTM" else None,
                               L, D == 2)
    assert out.dtype == bp.float32
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, rtol=0, atol=1e-5)


def test_unbatched_input_and_defaults(rng):
    m = nn.GRU(3, 4, num_layers=2, dtype=bp.float64)
    x = bp.tensor(rng.standard_normal((5, 3)))
    out, h = m(x)
    assert list(out.shape) == [5, 4] and list(h.shape) == [2, 4]
    out_b, h_b = m(x.unsqueeze(1))
    np.testing.assert_allclose(out.detach().numpy(), out_b.squeeze(1).detach().numpy(), atol=1e-14)
    np.testing.assert_allclose(h.detach().numpy(), h_b.squeeze(1).detach().numpy(), atol=1e-14)
    lstm = nn.LSTM(3, 4, proj_size=2)
    o, (h, c) = lstm(bp.randn(7, 2, 3))
    assert list(o.shape) == [7, 2, 2] and list(h.shape) == [1, 2, 2] and list(c.shape) == [1, 2, 4]


def test_dropout_between_layers_only_in_training():
    m = nn.LSTM(3, 8, num_layers=2, dropout=0.5, dtype=bp.float64)
    x = bp.randn(6, 2, 3, dtype=bp.float64)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    c, _ = m(x)
    assert np.abs(c.detach().numpy() - a.detach().numpy()).max() > 1e-6
    one = nn.LSTM(3, 8, num_layers=1, dropout=0.0, dtype=bp.float64)
    one.train()
    np.testing.assert_array_equal(one(x)[0].detach().numpy(), one(x)[0].detach().numpy())


def test_rnn_errors():
    with pytest.raises(ValueError):
        nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(RuntimeError, match="input_size"):
        nn.LSTM(3, 4)(bp.randn(5, 2, 7))
    with pytest.raises(RuntimeError, match="hidden size"):
        nn.GRU(3, 4)(bp.randn(5, 2, 3), bp.randn(1, 3, 4))


# ----------------------------------------------------------------------------------- state dicts

# The listings as PyTorch documents them (torch.nn.LSTM / GRU / RNN "Variables", torch.nn.LSTMCell),
# written out by hand: name, shape.
PT_LSTM_2L_BI_PROJ = [  # nn.LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5)
    ("weight_ih_l0", [80, 10]), ("weight_hh_l0", [80, 5]), ("bias_ih_l0", [80]), ("bias_hh_l0", [80]),
    ("weight_hr_l0", [5, 20]),
    ("weight_ih_l0_reverse", [80, 10]), ("weight_hh_l0_reverse", [80, 5]), ("bias_ih_l0_reverse", [80]),
    ("bias_hh_l0_reverse", [80]), ("weight_hr_l0_reverse", [5, 20]),
    ("weight_ih_l1", [80, 10]), ("weight_hh_l1", [80, 5]), ("bias_ih_l1", [80]), ("bias_hh_l1", [80]),
    ("weight_hr_l1", [5, 20]),
    ("weight_ih_l1_reverse", [80, 10]), ("weight_hh_l1_reverse", [80, 5]), ("bias_ih_l1_reverse", [80]),
    ("bias_hh_l1_reverse", [80]), ("weight_hr_l1_reverse", [5, 20]),
]
PT_GRU_2L = [  # nn.GRU(10, 20, num_layers=2)
    ("weight_ih_l0", [60, 10]), ("weight_hh_l0", [60, 20]), ("bias_ih_l0", [60]), ("bias_hh_l0", [60]),
    ("weight_ih_l1", [60, 20]), ("weight_hh_l1", [60, 20]), ("bias_ih_l1", [60]), ("bias_hh_l1", [60]),
]
PT_RNN_NOBIAS_BI = [  # nn.RNN(10, 20, bias=False, bidirectional=True)
    ("weight_ih_l0", [20, 10]), ("weight_hh_l0", [20, 20]),
    ("weight_ih_l0_reverse", [20, 10]), ("weight_hh_l0_reverse", [20, 20]),
]
PT_LSTMCELL = [("weight_ih", [80, 10]), ("weight_hh", [80, 20]), ("bias_ih", [80]), ("bias_hh", [80])]
PT_GRUCELL = [("weight_ih", [60, 10]), ("weight_hh", [60, 20]), ("bias_ih", [60]), ("bias_hh", [60])]
PT_MHA = [  # nn.MultiheadAttention(16, 4)
    ("in_proj_weight", [48, 16]), ("in_proj_bias", [48]), ("out_proj.weight", [16, 16]), ("out_proj.bias", [16]),
]
PT_MHA_KV = [  # nn.MultiheadAttention(16, 4, kdim=6, vdim=5, add_bias_kv=True)
    ("q_proj_weight", [16, 16]), ("k_proj_weight", [16, 6]), ("v_proj_weight", [16, 5]), ("in_proj_bias", [48]),
    ("bias_k", [1, 1, 16]), ("bias_v", [1, 1, 16]), ("out_proj.weight", [16, 16]), ("out_proj.bias", [16]),
]


def _enc(prefix, d, ff):
    return [(f"{prefix}self_attn.in_proj_weight", [3 * d, d]), (f"{prefix}self_attn.in_proj_bias", [3 * d]),
            (f"{prefix}self_attn.out_proj.weight", [d, d]), (f"{prefix}self_attn.out_proj.bias", [d]),
            (f"{prefix}linear1.weight", [ff, d]), (f"{prefix}linear1.bias", [ff]),
            (f"{prefix}linear2.weight", [d, ff]), (f"{prefix}linear2.bias", [d]),
            (f"{prefix}norm1.weight", [d]), (f"{prefix}norm1.bias", [d]),
            (f"{prefix}norm2.weight", [d]), (f"{prefix}norm2.bias", [d])]


def _dec(prefix, d, ff):
    return [(f"{prefix}self_attn.in_proj_weight", [3 * d, d]), (f"{prefix}self_attn.in_proj_bias", [3 * d]),
            (f"{prefix}self_attn.out_proj.weight", [d, d]), (f"{prefix}self_attn.out_proj.bias", [d]),
            (f"{prefix}multihead_attn.in_proj_weight", [3 * d, d]), (f"{prefix}multihead_attn.in_proj_bias", [3 * d]),
            (f"{prefix}multihead_attn.out_proj.weight", [d, d]), (f"{prefix}multihead_attn.out_proj.bias", [d]),
            (f"{prefix}linear1.weight", [ff, d]), (f"{prefix}linear1.bias", [ff]),
            (f"{prefix}linear2.weight", [d, ff]), (f"{prefix}linear2.bias", [d]),
            (f"{prefix}norm1.weight", [d]), (f"{prefix}norm1.bias", [d]),
            (f"{prefix}norm2.weight", [d]), (f"{prefix}norm2.bias", [d]),
            (f"{prefix}norm3.weight", [d]), (f"{prefix}norm3.bias", [d])]


# nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16)
PT_TRANSFORMER = (_enc("encoder.layers.0.", 8, 16) + _enc("encoder.layers.1.", 8, 16)
                  + [("encoder.norm.weight", [8]), ("encoder.norm.bias", [8])]
                  + _dec("decoder.layers.0.", 8, 16) + [("decoder.norm.weight", [8]), ("decoder.norm.bias", [8])])


@pytest.mark.parametrize("make,expected", [
    (lambda: nn.LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5), PT_LSTM_2L_BI_PROJ),
    (lambda: nn.GRU(10, 20, num_layers=2), PT_GRU_2L),
    (lambda: nn.RNN(10, 20, bias=False, bidirectional=True), PT_RNN_NOBIAS_BI),
    (lambda: nn.LSTMCell(10, 20), PT_LSTMCELL),
    (lambda: nn.GRUCell(10, 20), PT_GRUCELL),
    (lambda: nn.MultiheadAttention(16, 4), PT_MHA),
    (lambda: nn.MultiheadAttention(16, 4, kdim=6, vdim=5, add_bias_kv=True), PT_MHA_KV),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16), _enc("", 8, 16)),
    (lambda: nn.TransformerDecoderLayer(8, 2, 16), _dec("", 8, 16)),
    (lambda: nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16),
     PT_TRANSFORMER),
], ids=["lstm", "gru", "rnn", "lstmcell", "grucell", "mha", "mha-kv", "enc-layer", "dec-layer", "transformer"])
def test_state_dict_names_and_shapes_match_pytorch(make, expected):
    m = make()
    got = [(k, list(v.shape)) for k, v in m.state_dict().items()]
    if isinstance(m, nn.MultiheadAttention) and m.kdim != m.embed_dim:
        # PyTorch registers q/k/v_proj_weight, then in_proj_bias; bias_k/bias_v follow out_proj in its
        # listing only because they are assigned later; compare as sets of (name, shape) for this one
        assert sorted(got) == sorted(expected)
    else:
        assert [k for k, _ in got] == [k for k, _ in expected]
        assert got == expected
    # loading the listing's shapes back works (a PyTorch state dict of those shapes loads unchanged)
    m.load_state_dict({k: bp.zeros(*s) for k, s in expected})


def test_cloned_layers_are_independent():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    enc = nn.TransformerEncoder(layer, 2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and a is not layer.linear1.weight
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    with bp.no_grad():
        a.fill_(0.0)
    assert np.abs(b.detach().numpy()).sum() > 0
    assert len(list(enc.parameters())) == 2 * len(list(layer.parameters()))


# ----------------------------------------------------------------------------------- cells

@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_cells_match_numpy_and_gradcheck(kind, rng):
    cls = {"rnn_tanh": nn.RNNCell, "rnn_relu": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind]
    kw = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    cell = cls(3, 4, dtype=bp.float64, **kw)
    x_np, h_np, c_np = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    x, h, c = (bp.tensor(a, requires_grad=True) for a in (x_np, h_np, c_np))
    params = {k: _np(v) for k, v in cell.state_dict().items()}
    mode = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}[kind]
    ref_h, ref_c = np_cell(mode, x_np, h_np, c_np if kind == "lstm" else None, params, "")
    if kind == "lstm":
        got_h, got_c = cell(x, (h, c))
        np.testing.assert_allclose(got_c.detach().numpy(), ref_c, atol=1e-13)
        fn = lambda x, h, c, *w: _functional_cell(cell, w, x, (h, c))  # noqa: E731
        args = (x, h, c)
    else:
        got_h = cell(x, h)
        fn = lambda x, h, *w: _functional_cell(cell, w, x, h)  # noqa: E731
        args = (x, h)
    np.testing.assert_allclose(got_h.detach().numpy(), ref_h, atol=1e-13)
    weights = tuple(bp.tensor(params[k], requires_grad=True) for k in ("weight_ih", "weight_hh", "bias_ih",
                                                                       "bias_hh"))
    assert bp.autograd.gradcheck(fn, args + weights)
    assert bp.autograd.gradgradcheck(fn, args + weights)
    # unbatched: same numbers
    if kind == "lstm":
        u = cell(x[0], (h[0], c[0]))[0]
    else:
        u = cell(x[0], h[0])
    np.testing.assert_allclose(u.detach().numpy(), ref_h[0], atol=1e-13)


def _functional_cell(cell, weights, x, hx):
    """The cell's forward with the given weight tensors (so gradcheck can perturb them)."""
    from backprop_rs.nn import rnn as R

    w_ih, w_hh, b_ih, b_hh = weights
    xw = bp.nn.functional.linear(x, w_ih, b_ih)
    if isinstance(cell, nn.LSTMCell):
        return R._lstm_step(xw, hx[0], hx[1], w_hh, b_hh, None)
    if isinstance(cell, nn.GRUCell):
        return R._gru_step(xw, hx, w_hh, b_hh)
    return R._rnn_step(xw, hx, w_hh, b_hh, cell.nonlinearity == "relu")


def test_cell_without_state_and_bias():
    cell = nn.GRUCell(3, 5, bias=False)
    assert [k for k in cell.state_dict()] == ["weight_ih", "weight_hh"]
    h = cell(bp.randn(4, 3))
    assert list(h.shape) == [4, 5]
    h, c = nn.LSTMCell(3, 5)(bp.randn(3))
    assert list(h.shape) == [5] and list(c.shape) == [5]


# ----------------------------------------------------------------------------------- packing utilities

def test_pack_pad_roundtrip_and_layout(rng):
    seqs = [bp.tensor(rng.standard_normal((n, 2))) for n in (2, 5, 3)]
    p = rnn_utils.pack_sequence(seqs, enforce_sorted=False)
    assert p.batch_sizes.tolist() == [3, 3, 2, 1, 1]
    assert p.sorted_indices.tolist() == [1, 2, 0] and p.unsorted_indices.tolist() == [2, 0, 1]
    # time-major: step 0 holds the first row of the longest, the middle and the shortest sequence
    np.testing.assert_array_equal(p.data.detach().numpy()[:3], np.stack([seqs[1].detach().numpy()[0], seqs[2].detach().numpy()[0],
                                                                  seqs[0].detach().numpy()[0]]))
    padded, lengths = rnn_utils.pad_packed_sequence(p, batch_first=True, padding_value=-1.0)
    assert lengths.tolist() == [2, 5, 3] and list(padded.shape) == [3, 5, 2]
    for s, row, n in zip(seqs, padded.detach().numpy(), (2, 5, 3)):
        np.testing.assert_array_equal(row[:n], s.detach().numpy())
        assert np.all(row[n:] == -1.0)
    back = rnn_utils.unpack_sequence(p)
    for a, b in zip(back, seqs):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    with pytest.raises(RuntimeError, match="decreasing"):
        rnn_utils.pack_sequence(seqs)
    sorted_p = rnn_utils.pack_sequence(sorted(seqs, key=lambda s: -s.shape[0]))
    assert sorted_p.sorted_indices is None
    with pytest.raises(RuntimeError, match="greater than 0"):
        rnn_utils.pack_padded_sequence(bp.zeros(3, 2, 1), [3, 0])


def test_packed_gradients_flow_to_padded_input(rng):
    x = bp.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    p = rnn_utils.pack_padded_sequence(x, [4, 2])
    out, lengths = rnn_utils.pad_packed_sequence(p)
    (out * out).sum().backward()
    g = x.grad.detach().numpy()
    np.testing.assert_allclose(g[:, 0], 2 * x.detach().numpy()[:, 0])
    np.testing.assert_allclose(g[:2, 1], 2 * x.detach().numpy()[:2, 1])
    assert np.all(g[2:, 1] == 0)


# ----------------------------------------------------------------------------------- attention

def np_sdpa(q, k, v, mask=None, causal=False, scale=None):
    """PyTorch's documented reference, with fully masked rows giving zeros."""
    L, S = q.shape[-2], k.shape[-2]
    sf = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    bias = np.zeros((L, S))
    if causal:
        bias = np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf)
    if mask is not None:
        bias = np.where(mask, 0.0, -np.inf) if mask.dtype == bool else bias + mask
    s = q @ np.swapaxes(k, -1, -2) * sf + bias
    m = s.max(-1, keepdims=True)
    dead = ~np.isfinite(m)
    e = np.exp(s - np.where(dead, 0.0, m))
    w = np.where(dead, 0.0, e / np.where(dead, 1.0, e.sum(-1, keepdims=True)))
    return w @ v


def _t(a, dtype=bp.float64, grad=False):
    return bp.tensor(a, dtype=dtype, requires_grad=grad)


MASKS = ["none", "causal", "bool2d", "bool4d-broadcast", "float", "float-neginf", "bool-dead-rows", "scale"]


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_matches_numpy_and_gradcheck(kind, rng):
    B, H, L, S, E = 2, 3, 4, 5, 6
    q, k, v = rng.standard_normal((B, H, L, E)), rng.standard_normal((B, H, S, E)), rng.standard_normal((B, H, S, 3))
    mask, causal, scale = None, False, None
    if kind == "causal":
        causal, S = True, L
        k, v = k[:, :, :L], v[:, :, :L]
    elif kind == "bool2d":
        mask = rng.random((L, S)) > 0.4
        mask[:, 0] = True
    elif kind == "bool4d-broadcast":
        mask = rng.random((B, 1, L, S)) > 0.4
        mask[..., 1] = True
    elif kind == "float":
        mask = rng.standard_normal((1, H, L, S))
    elif kind == "float-neginf":
        mask = np.where(rng.random((L, S)) > 0.5, -np.inf, rng.standard_normal((L, S)))
        mask[:, 2] = 0.0
    elif kind == "bool-dead-rows":
        mask = rng.random((L, S)) > 0.5
        mask[1] = False  # row 1 attends to nothing: zeros, finite gradients
        mask[0, 0] = True
    elif kind == "scale":
        scale = 0.37
    ref = np_sdpa(q, k, v, mask, causal, scale)
    tm = None if mask is None else bp.tensor(mask) if mask.dtype == bool else _t(mask)
    got = F.scaled_dot_product_attention(_t(q), _t(k), _t(v), attn_mask=tm, is_causal=causal, scale=scale)
    np.testing.assert_allclose(got.detach().numpy(), ref, rtol=0, atol=1e-12)
    got32 = F.scaled_dot_product_attention(_t(q, bp.float32), _t(k, bp.float32), _t(v, bp.float32),
                                           attn_mask=None if tm is None else (tm if mask.dtype == bool
                                                                               else tm.float()),
                                           is_causal=causal, scale=scale)
    np.testing.assert_allclose(got32.detach().numpy(), ref, rtol=0, atol=1e-5)
    # gradients: small shapes for finite differences
    qs, ks, vs = (_t(a[:1, :2], grad=True) for a in (q, k, v))
    ms = None if tm is None else tm if tm.ndim == 2 else tm[:1, :] if tm.shape[1] == 1 else tm[:1, :2]
    fn = lambda q_, k_, v_: F.scaled_dot_product_attention(q_, k_, v_, attn_mask=ms, is_causal=causal,  # noqa: E731
                                                           scale=scale)
    assert bp.autograd.gradcheck(fn, (qs, ks, vs))
    assert bp.autograd.gradgradcheck(fn, (qs, ks, vs))
    if kind == "bool-dead-rows":
        out = fn(qs, ks, vs)
        assert np.all(out.detach().numpy()[:, :, 1] == 0)
        out.sum().backward()
        assert np.all(np.isfinite(qs.grad.detach().numpy())) and np.all(qs.grad.detach().numpy()[:, :, 1] == 0)


def test_sdpa_gqa_and_errors(rng):
    q = rng.standard_normal((2, 4, 3, 5))
    k, v = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((2, 2, 6, 4))
    got = F.scaled_dot_product_attention(_t(q), _t(k), _t(v), enable_gqa=True)
    ref = np_sdpa(q, np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1))
    np.testing.assert_allclose(got.detach().numpy(), ref, atol=1e-12)
    # unbatched 2-D and 3-D inputs broadcast like matmul
    np.testing.assert_allclose(F.scaled_dot_product_attention(_t(q[0, 0]), _t(k[0, 0]), _t(v[0, 0])).detach().numpy(),
                               np_sdpa(q[0, 0], k[0, 0], v[0, 0]), atol=1e-12)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(_t(q), _t(q), _t(q), attn_mask=bp.ones(3, 3).bool(), is_causal=True)
    with pytest.raises(ValueError):
        F.scaled_dot_product_attention(_t(q), _t(k[..., :4]), _t(v))


def test_sdpa_dropout_is_inverted_and_seeded():
    q = bp.randn(1, 1, 8, 4, dtype=bp.float64)
    v = bp.ones(1, 1, 8, 4, dtype=bp.float64)
    bp.manual_seed(3)
    a = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    bp.manual_seed(3)
    b = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert not np.allclose(a.detach().numpy(), 1.0)  # some weights dropped, the rest scaled by 2
    full = F.scaled_dot_product_attention(q, q, v, dropout_p=0.0)
    np.testing.assert_allclose(full.detach().numpy(), 1.0, atol=1e-12)


def np_mha(query, key, value, p, H, attn_mask=None, kpm=None, batch_first=False, average=True):
    """Sequence-first reference of nn.MultiheadAttention (bool masks: True = blocked)."""
    if batch_first:
        query, key, value = (np.swapaxes(a, 0, 1) for a in (query, key, value))
    L, N, E = query.shape
    S = key.shape[0]
    hd = E // H
    W, b = p["in_proj_weight"], p["in_proj_bias"]
    q = query @ W[:E].T + b[:E]
    k = key @ W[E:2 * E].T + b[E:2 * E]
    v = value @ W[2 * E:].T + b[2 * E:]
    q = q.reshape(L, N, H, hd).transpose(1, 2, 0, 3)
    k = k.reshape(S, N, H, hd).transpose(1, 2, 0, 3)
    v = v.reshape(S, N, H, hd).transpose(1, 2, 0, 3)
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if attn_mask is not None:
        s = s + (np.where(attn_mask, -np.inf, 0.0) if attn_mask.dtype == bool else attn_mask)
    if kpm is not None:
        s = s + np.where(kpm, -np.inf, 0.0)[:, None, None, :]
    w = np.exp(s - s.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    o = (w @ v).transpose(2, 0, 1, 3).reshape(L, N, E)
    o = o @ p["out_proj.weight"].T + p["out_proj.bias"]
    if batch_first:
        o = np.swapaxes(o, 0, 1)
    return o, (w.mean(1) if average else w)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", ["none", "bool", "float+kpm", "cross"])
def test_multihead_attention_matches_numpy(batch_first, masks, rng):
    E, H, L, S, N = 8, 2, 4, 5, 3
    m = nn.MultiheadAttention(E, H, batch_first=batch_first, dtype=bp.float64)
    with bp.no_grad():
        m.in_proj_bias.copy_(bp.tensor(rng.standard_normal(3 * E)))  # PyTorch initialises it to 0
    p = {k: _np(v) for k, v in m.state_dict().items()}
    shape = (lambda T: (N, T, E)) if batch_first else (lambda T: (T, N, E))
    x = rng.standard_normal(shape(L))
    if masks == "cross":
        kv = rng.standard_normal(shape(S))
        q_np, k_np, v_np = x, kv, kv
    else:
        q_np = k_np = v_np = x
    T_k = k_np.shape[1 if batch_first else 0]
    attn_mask = kpm = None
    if masks == "bool":
        attn_mask = np.triu(np.ones((L, T_k), dtype=bool), 1)
    elif masks in ("float+kpm", "cross"):
        attn_mask = rng.standard_normal((L, T_k))
        kpm = np.zeros((N, T_k), dtype=bool)
        kpm[0, -2:] = True
    tq = _t(q_np, grad=True)
    if masks == "cross":
        tk = _t(k_np, grad=True)
        tv = tk
    else:
        tk = tv = tq
    am = None if attn_mask is None else bp.tensor(attn_mask) if attn_mask.dtype == bool else _t(attn_mask)
    km = None if kpm is None else bp.tensor(kpm)
    out, w = m(tq, tk, tv, key_padding_mask=km, attn_mask=am)
    ref_o, ref_w = np_mha(q_np, k_np, v_np, p, H, attn_mask, kpm, batch_first)
    np.testing.assert_allclose(out.detach().numpy(), ref_o, atol=1e-12)
    np.testing.assert_allclose(w.detach().numpy(), ref_w, atol=1e-12)
    out2, w2 = m(tq, tk, tv, key_padding_mask=km, attn_mask=am, need_weights=False)
    assert w2 is None
    np.testing.assert_allclose(out2.detach().numpy(), ref_o, atol=1e-12)
    _, w_heads = m(tq, tk, tv, key_padding_mask=km, attn_mask=am, average_attn_weights=False)
    np.testing.assert_allclose(w_heads.detach().numpy(), np_mha(q_np, k_np, v_np, p, H, attn_mask, kpm, batch_first,
                                                       average=False)[1], atol=1e-12)
    # gradients w.r.t. the inputs by finite differences
    ins = (tq,) if masks != "cross" else (tq, tk)

    def fn(*a):
        qq = a[0]
        kk = vv = a[1] if len(a) > 1 else qq
        return m(qq, kk, vv, key_padding_mask=km, attn_mask=am, need_weights=False)[0]

    assert bp.autograd.gradcheck(fn, ins)


def _np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _np_gelu(x):
    from math import erf

    return 0.5 * x * (1 + np.vectorize(erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
def test_transformer_encoder_layer_matches_numpy(norm_first, activation, rng):
    d, H, ff, L, N = 8, 2, 16, 5, 2
    act = (lambda x: x.tanh()) if activation == "callable" else activation
    layer = nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, activation=act, norm_first=norm_first,
                                       batch_first=True, dtype=bp.float64)
    with bp.no_grad():
        for name, prm in layer.named_parameters():
            if name.endswith("bias") or name.startswith("norm"):
                prm.copy_(bp.tensor(rng.standard_normal(list(prm.shape)) * 0.3 + (1.0 if "weight" in name else 0)))
    p = {k: _np(v) for k, v in layer.state_dict().items()}
    sa = {k[len("self_attn."):]: v for k, v in p.items() if k.startswith("self_attn.")}
    f_act = {"relu": lambda x: np.maximum(x, 0), "gelu": _np_gelu, "callable": np.tanh}[activation]
    x = rng.standard_normal((N, L, d))
    kpm = np.zeros((N, L), dtype=bool)
    kpm[1, -1] = True
    causal = np.triu(np.ones((L, L), dtype=bool), 1)

    def sa_block(h):
        return np_mha(h, h, h, sa, H, causal, kpm, batch_first=True)[0]

    def ff_block(h):
        return f_act(h @ p["linear1.weight"].T + p["linear1.bias"]) @ p["linear2.weight"].T + p["linear2.bias"]

    n1 = lambda h: _np_layer_norm(h, p["norm1.weight"], p["norm1.bias"])  # noqa: E731
    n2 = lambda h: _np_layer_norm(h, p["norm2.weight"], p["norm2.bias"])  # noqa: E731
    if norm_first:
        ref = x + sa_block(n1(x))
        ref = ref + ff_block(n2(ref))
    else:
        ref = n1(x + sa_block(x))
        ref = n2(ref + ff_block(ref))
    got = layer(_t(x), src_mask=bp.tensor(causal), src_key_padding_mask=bp.tensor(kpm))
    np.testing.assert_allclose(got.detach().numpy(), ref, atol=1e-11)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d, dtype=bp.float64))
    out = enc(_t(x), mask=bp.tensor(causal), src_key_padding_mask=bp.tensor(kpm))
    assert list(out.shape) == [N, L, d] and np.all(np.isfinite(out.detach().numpy()))
    # two identical clones applied in turn = the layer applied twice, then the norm
    twice = layer(layer(_t(x), src_mask=bp.tensor(causal), src_key_padding_mask=bp.tensor(kpm)),
                  src_mask=bp.tensor(causal), src_key_padding_mask=bp.tensor(kpm))
    np.testing.assert_allclose(out.detach().numpy(), _np_layer_norm(twice.detach().numpy(), 1.0, 0.0), atol=1e-11)


def test_is_causal_hint_runs_the_fused_attention_with_the_same_numbers():
    """PyTorch reads ``is_causal=True`` next to a causal ``src_mask`` as "the mask is causal" and
    runs SDPA with ``is_causal`` and no mask (here the fused kernel); the mask path must agree,
    forward and gradients. With a key-padding mask the merged mask is used instead."""
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=True, dtype=bp.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(9, dtype=bp.float64)
    x = bp.randn(3, 9, 16, dtype=bp.float64)
    outs, grads = [], []
    for hint in (False, True):
        layer.zero_grad()
        out = layer(x, src_mask=mask, is_causal=hint)
        (out * out).sum().backward()
        outs.append(out.detach().numpy())
        grads.append([p.grad.numpy().copy() for p in layer.parameters()])
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-12)
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, atol=1e-11)
    kpm = bp.tensor(np.arange(9)[None, :] >= np.array([[9], [6], [4]]))
    hinted = layer(x, src_mask=mask, src_key_padding_mask=kpm, is_causal=True)
    plain = layer(x, src_mask=mask, src_key_padding_mask=kpm)
    np.testing.assert_allclose(hinted.detach().numpy(), plain.detach().numpy(), atol=1e-12)


def test_transformer_forward_backward_and_mask():
    m = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32,
                       dropout=0.0, batch_first=True, activation="gelu")
    src, tgt = bp.randn(2, 7, 16), bp.randn(2, 5, 16)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    expected = np.where(np.triu(np.ones((5, 5), dtype=bool), 1), -np.inf, 0.0)
    np.testing.assert_array_equal(mask.detach().numpy(), expected)
    out = m(src, tgt, tgt_mask=mask, tgt_is_causal=True)
    assert list(out.shape) == [2, 5, 16]
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    # causality of the decoder: changing a later target position leaves earlier outputs alone
    tgt2 = tgt.clone()
    tgt2[:, 4] = 0.0
    out2 = m(src, tgt2, tgt_mask=mask)
    np.testing.assert_allclose(out2.detach().numpy()[:, :4], out.detach().numpy()[:, :4], atol=1e-5)
    assert np.abs(out2.detach().numpy()[:, 4] - out.detach().numpy()[:, 4]).max() > 1e-4
    with pytest.raises(RuntimeError, match="attn_mask"):
        nn.MultiheadAttention(16, 4)(bp.randn(3, 2, 16), bp.randn(3, 2, 16), bp.randn(3, 2, 16), is_causal=True)


# ----------------------------------------------------------------------------------- GPU parity

def test_gpu_parity_lstm_and_attention(rng):
    gpu_or_skip()
    bp.manual_seed(0)
    lstm = nn.LSTM(3, 8, num_layers=2, bidirectional=True)
    x_np = rng.standard_normal((6, 2, 3)).astype(np.float32)
    out_c, (h_c, _) = lstm(bp.tensor(x_np))
    (out_c.sum() + h_c.sum()).backward()
    grads_c = {k: p.grad.detach().numpy().copy() for k, p in lstm.named_parameters()}
    lstm.zero_grad()
    lg = lstm.to("gpu")
    out_g, (h_g, _) = lg(bp.tensor(x_np).to("gpu"))
    (out_g.sum() + h_g.sum()).backward()
    np.testing.assert_allclose(out_g.cpu().detach().numpy(), out_c.detach().numpy(), atol=1e-5)
    for k, p in lg.named_parameters():
        np.testing.assert_allclose(p.grad.cpu().detach().numpy(), grads_c[k], atol=1e-4, err_msg=k)
    q = rng.standard_normal((2, 2, 8, 4)).astype(np.float32)
    ref = np_sdpa(q.astype(np.float64), q.astype(np.float64), q.astype(np.float64), causal=True)
    got = F.scaled_dot_product_attention(*(bp.tensor(q).to("gpu") for _ in range(3)), is_causal=True)
    np.testing.assert_allclose(got.cpu().detach().numpy(), ref, atol=1e-5)
    # a bool mask with a dead row (the GPU always takes the zero-row path, no readback)
    mask = rng.random((8, 8)) > 0.5
    mask[3] = False
    mask[:, 0] |= np.arange(8) != 3
    ref = np_sdpa(q.astype(np.float64), q.astype(np.float64), q.astype(np.float64), mask=mask)
    got = F.scaled_dot_product_attention(*(bp.tensor(q).to("gpu") for _ in range(3)),
                                         attn_mask=bp.tensor(mask).to("gpu"))
    np.testing.assert_allclose(got.cpu().detach().numpy(), ref, atol=1e-5)


def test_mha_3d_mask_is_per_batch_and_head(rng):
    E, H, L, N = 8, 2, 4, 3
    m = nn.MultiheadAttention(E, H, dtype=bp.float64)
    x = _t(rng.standard_normal((L, N, E)))
    m2 = rng.standard_normal((L, L))
    m3 = np.broadcast_to(m2, (N * H, L, L)).copy()
    a, wa = m(x, x, x, attn_mask=_t(m2))
    b, wb = m(x, x, x, attn_mask=_t(m3))
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-13)
    m3[H + 1] += 5.0 * rng.standard_normal((L, L))  # batch 1, head 1 only
    _, wc = m(x, x, x, attn_mask=_t(m3), average_attn_weights=False)
    _, wd = m(x, x, x, attn_mask=_t(m2), average_attn_weights=False)
    diff = np.abs(wc.detach().numpy() - wd.detach().numpy()).max(axis=(2, 3))
    assert diff[1, 1] > 1e-3 and np.all(np.delete(diff.reshape(-1), H + 1) < 1e-13)
    with pytest.raises(RuntimeError, match="3D attn_mask"):
        m(x, x, x, attn_mask=_t(np.zeros((N, L, L))))
