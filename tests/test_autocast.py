"""Autocast (``bp.autocast("cpu")``) and ``GradScaler`` against their definitions.

References: an op under autocast must give exactly what the same op gives on inputs cast by
hand as PyTorch's CPU lists say (bit-equal), the hand-cast ops themselves being checked against
NumPy in test_storage_dtypes.py; an MLP's forward is also checked against an independent NumPy
emulation of the policy (inputs rounded to bfloat16, products in float64, results rounded),
within one bfloat16 rounding. GradScaler is checked against a NumPy re-implementation of
PyTorch's documented algorithm (``_amp_update_scale_``).
"""

from __future__ import annotations

import pickle
import threading
import warnings

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn as nn
import backprop_rs.nn.functional as F

LOWER = (bp.bfloat16, bp.float16)


def same(a, b):
    """Bit-equal values and equal dtypes."""
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    np.testing.assert_array_equal(a.float().detach().numpy(), b.float().detach().numpy())


def bf16_round(a):
    """float32 -> bfloat16 -> float32 in NumPy (round to nearest even on the top 16 bits)."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


@pytest.fixture(autouse=True)
def _seed():
    bp.manual_seed(0)


# ------------------------------------------------------------------ lower-precision list


LOWER_OPS = {
    "matmul": (lambda a, b, c: a @ b, [(4, 6), (6, 3), None]),
    "mm": (lambda a, b, c: bp.mm(a, b), [(4, 6), (6, 3), None]),
    "bmm": (lambda a, b, c: bp.bmm(a, b), [(2, 4, 6), (2, 6, 3), None]),
    "addmm": (lambda a, b, c: bp.addmm(c, a, b, beta=0.5, alpha=2.0), [(4, 6), (6, 3), (4, 3)]),
    "baddbmm": (lambda a, b, c: bp.baddbmm(c, a, b), [(2, 4, 6), (2, 6, 3), (2, 4, 3)]),
    "linear": (lambda a, b, c: F.linear(a, b, c), [(4, 6), (3, 6), (3,)]),
    "conv1d": (lambda a, b, c: F.conv1d(a, b, c, padding=1), [(2, 3, 9), (4, 3, 3), (4,)]),
    "conv2d": (lambda a, b, c: F.conv2d(a, b, c, stride=2), [(2, 3, 7, 7), (4, 3, 3, 3), (4,)]),
    "conv_transpose2d": (lambda a, b, c: F.conv_transpose2d(a, b, c), [(1, 3, 4, 4), (3, 2, 3, 3), (2,)]),
    "prelu": (lambda a, b, c: F.prelu(a, b), [(2, 3, 4), (3,), None]),
    "sdpa_mask": (lambda a, b, c: F.scaled_dot_product_attention(a, b, b, attn_mask=c),
                  [(1, 2, 4, 8), (1, 2, 5, 8), (4, 5)]),
    "sdpa_causal": (lambda a, b, c: F.scaled_dot_product_attention(a, b, b, is_causal=True),
                    [(1, 2, 4, 8), (1, 2, 4, 8), None]),
}


@pytest.mark.parametrize("dtype", LOWER, ids=str)
@pytest.mark.parametrize("name", sorted(LOWER_OPS))
def test_lower_precision_ops_equal_the_op_on_inputs_cast_by_hand(name, dtype):
    fn, shapes = LOWER_OPS[name]
    args = [None if s is None else bp.randn(*s) for s in shapes]
    with bp.autocast("cpu", dtype=dtype):
        got = fn(*args)
    want = fn(*[None if a is None else a.to(dtype) for a in args])
    assert got.dtype == dtype
    same(got, want)


def test_the_lstm_layer_runs_in_lower_precision():
    lstm = nn.LSTM(5, 4, num_layers=2)
    x = bp.randn(6, 3, 5)
    with bp.autocast("cpu"):
        out, (h, c) = lstm(x)
    assert out.dtype == h.dtype == c.dtype == bp.bfloat16
    ref = nn.LSTM(5, 4, num_layers=2)
    ref.load_state_dict(lstm.state_dict())
    ref_out, _ = ref(x)
    # one bfloat16 rounding per gate product, compounding over 6 steps: loose, but a float32 run
    # (no autocast) would give dtype float32 above
    np.testing.assert_allclose(out.float().detach().numpy(), ref_out.detach().numpy(), atol=0.05)


# ------------------------------------------------------------------ float32 list


FP32_OPS = {
    "mse_loss": lambda a, b: F.mse_loss(a, b),
    "l1_loss": lambda a, b: F.l1_loss(a, b),
    "smooth_l1_loss": lambda a, b: F.smooth_l1_loss(a, b, beta=0.5),
    "huber_loss": lambda a, b: F.huber_loss(a, b),
    "kl_div": lambda a, b: F.kl_div(a, b, reduction="batchmean"),
    "bce_with_logits": lambda a, b: F.binary_cross_entropy_with_logits(a, b),
    "binary_cross_entropy": lambda a, b: F.binary_cross_entropy(b, b.flip(0)),
    "soft_margin_loss": lambda a, b: F.soft_margin_loss(a, b.sign()),
    "margin_ranking_loss": lambda a, b: F.margin_ranking_loss(a, b, b.sign()),
    "cosine_embedding_loss": lambda a, b: F.cosine_embedding_loss(a, b, bp.tensor([1.0, -1.0, 1.0, 1.0])),
    "triplet_margin_loss": lambda a, b: F.triplet_margin_loss(a, b, a.flip(0)),
    "hinge_embedding_loss": lambda a, b: F.hinge_embedding_loss(a, b.sign()),
    "poisson_nll_loss": lambda a, b: F.poisson_nll_loss(a, b),
    "cdist": lambda a, b: bp.cdist(a, b),
    "trace": lambda a, b: a[:, :4].trace(),
    "reflect_pad": lambda a, b: F.pad(a.unsqueeze(0), (2, 1), mode="reflect"),
}


@pytest.mark.parametrize("name", sorted(FP32_OPS))
def test_float32_ops_run_in_float32_on_lower_precision_inputs(name):
    # b in (0, 1), so that every loss is defined on it; only exact ops inside the lambdas
    a, b = bp.randn(4, 6).bfloat16(), bp.rand(4, 6).mul(0.9).add(0.05).bfloat16()
    with bp.autocast("cpu"):
        got = FP32_OPS[name](a, b)
    want = FP32_OPS[name](a.float(), b.float())
    assert got.dtype == bp.float32
    same(got, want)


def test_class_losses_cast_logits_and_class_weights():
    logits = bp.randn(5, 4).bfloat16()
    target = bp.tensor([0, 3, 1, 1, 2])
    w = bp.rand(4).bfloat16()
    with bp.autocast("cpu"):
        ce = F.cross_entropy(logits, target, weight=w, label_smoothing=0.1)
        nll = F.nll_loss(logits.log_softmax(1), target, weight=w)
    assert ce.dtype == bp.float32 and nll.dtype == bp.float32
    same(ce, F.cross_entropy(logits.float(), target, weight=w.float(), label_smoothing=0.1))
    # log_softmax is not on the CPU lists: it runs in bfloat16, the loss in float32
    same(nll, F.nll_loss(logits.log_softmax(1).float(), target, weight=w.float()))


# ------------------------------------------------------------------ everything else


def test_unlisted_ops_keep_their_dtypes_and_float64_is_never_cast():
    x = bp.randn(3, 4)
    h = x.bfloat16()
    with bp.autocast("cpu"):
        assert (x + 1).dtype == bp.float32
        assert h.relu().dtype == bp.bfloat16 and h.softmax(-1).dtype == bp.bfloat16
        assert (h + x).dtype == bp.float32  # ordinary promotion
        d = x.double()
        assert (d @ d.T).dtype == bp.float64
        assert F.mse_loss(d, d).dtype == bp.float64
        i = bp.arange(12).reshape(3, 4)
        assert (i @ i.T).dtype == bp.int64


def test_layer_and_batch_norm_of_half_inputs_with_float32_weights_keep_the_input_dtype():
    # PyTorch's mixed-type rule (with or without autocast): normalised in float32, rounded once.
    x = bp.randn(4, 6).bfloat16()
    ln = nn.LayerNorm(6)
    with bp.no_grad():
        ln.weight.copy_(bp.randn(6))
        ln.bias.copy_(bp.randn(6))
    same(ln(x), ln(x.float()).bfloat16())
    bn = nn.BatchNorm1d(6)
    got = bn(x)
    mean_after = bn.running_mean.clone()
    bn2 = nn.BatchNorm1d(6)
    same(got, bn2(x.float()).bfloat16())
    np.testing.assert_array_equal(mean_after.numpy(), bn2.running_mean.numpy())
    assert bn.running_mean.dtype == bp.float32


def test_an_mlp_forward_matches_a_numpy_emulation_of_the_policy():
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    x = bp.randn(16, 20)
    with bp.autocast("cpu"):
        out = model(x)
    assert out.dtype == bp.bfloat16
    p = [t.detach().numpy() for t in model.parameters()]
    r = lambda a: bf16_round(np.asarray(a, np.float32)).astype(np.float64)  # noqa: E731
    h = r(r(r(x.numpy()) @ r(p[0]).T) + r(p[1]))  # matmul rounded, bias add rounded
    h = np.maximum(h, 0)
    want = r(r(h @ r(p[2]).T) + r(p[3]))
    got = out.float().detach().numpy()
    # accumulation order may move a result across one bfloat16 rounding boundary
    np.testing.assert_allclose(got, want, rtol=2 ** -7, atol=1e-6)
    assert np.mean(got == want) > 0.9


# ------------------------------------------------------------------ gradients and the cache


def test_gradients_reach_float32_parameters_in_float32_and_equal_the_hand_cast_graph():
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = bp.randn(5, 6), bp.tensor([0, 2, 1, 1, 0])
    with bp.autocast("cpu"):
        loss = F.cross_entropy(model(x), y)
        loss.backward()  # inside the region: the backward still runs in the forward's dtypes
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    w1, b1, w2, b2 = [p.bfloat16() for p in model.parameters()]
    h = F.linear(x.bfloat16(), w1, b1).tanh()
    F.cross_entropy(F.linear(h, w2, b2).float(), y).backward()
    for g, p in zip(grads, model.parameters()):
        assert g.dtype == bp.float32
        same(g, p.grad)


def test_a_weight_used_twice_is_cast_once_and_the_cache_ends_with_the_region():
    lin = nn.Linear(4, 4)
    x = bp.randn(2, 4)
    with bp.autocast("cpu"):
        lin(lin(x))
        assert bp._core._autocast_cached_casts() == 2  # weight and bias, once each
        with bp.autocast("cpu"):
            lin(x)
        assert bp._core._autocast_cached_casts() == 2  # an inner region does not clear it
    assert bp._core._autocast_cached_casts() == 0
    with bp.autocast("cpu", cache_enabled=False):
        lin(x)
        assert bp._core._autocast_cached_casts() == 0
    with bp.no_grad(), bp.autocast("cpu"):
        lin(x)
        assert bp._core._autocast_cached_casts() == 0  # a cast made here would carry no gradient


def test_a_parameter_changed_in_place_inside_the_region_is_cast_again():
    lin = nn.Linear(3, 2, bias=False)
    x = bp.ones(1, 3)
    with bp.autocast("cpu"):
        before = lin(x)
        with bp.no_grad():
            lin.weight.add_(1.0)
        after = lin(x)
    same(after, F.linear(x.bfloat16(), lin.weight.bfloat16()))
    assert not np.array_equal(before.float().detach().numpy(), after.float().detach().numpy())


# ------------------------------------------------------------------ the switches


def test_state_is_restored_nested_disabled_and_after_an_exception():
    x = bp.randn(2, 2)
    assert not bp.is_autocast_enabled("cpu")
    with bp.autocast("cpu", dtype=bp.float16):
        assert bp.is_autocast_enabled("cpu") and bp.get_autocast_dtype("cpu") == bp.float16
        with bp.autocast("cpu", enabled=False):
            assert (x @ x).dtype == bp.float32 and not bp.is_autocast_enabled("cpu")
        assert (x @ x).dtype == bp.float16
    assert bp.get_autocast_dtype("cpu") == bp.bfloat16 and not bp.is_autocast_enabled("cpu")
    with pytest.raises(ZeroDivisionError):
        with bp.autocast("cpu"):
            1 / 0
    assert not bp.is_autocast_enabled("cpu") and (x @ x).dtype == bp.float32
    assert not bp.is_autocast_enabled()  # no argument means "cuda", as in PyTorch


def test_decorator_and_the_torch_cpu_amp_spelling():
    @bp.autocast("cpu")
    def f(a):
        return a @ a

    x = bp.randn(3, 3)
    assert f(x).dtype == bp.bfloat16 and (x @ x).dtype == bp.float32
    with bp.cpu.amp.autocast():
        assert (x @ x).dtype == bp.bfloat16
    bp.set_autocast_enabled("cpu", True)
    try:
        assert (x @ x).dtype == bp.bfloat16
    finally:
        bp.set_autocast_enabled("cpu", False)


def test_autocast_is_per_thread():
    seen = []
    x = bp.randn(2, 2)
    with bp.autocast("cpu"):
        t = threading.Thread(target=lambda: seen.append((x @ x).dtype))
        t.start()
        t.join()
    assert seen == [bp.float32]


def test_refusals_and_warnings():
    x = bp.randn(2, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bp.autocast("cuda"):
            assert (x @ x).dtype == bp.float32
        with bp.autocast("gpu"):
            pass
        with bp.autocast("cpu", dtype=bp.float32):
            assert (x @ x).dtype == bp.float32
    text = " ".join(str(w.message) for w in caught)
    assert "CUDA is not available" in text and "no float16 kernels" in text
    assert "target dtype is not supported" in text
    with pytest.raises(RuntimeError, match="unsupported autocast device_type"):
        bp.autocast("xpu")
    with pytest.raises(RuntimeError, match="shader-f16"):
        bp.set_autocast_enabled("gpu", True)


def test_custom_fwd_casts_inputs_and_custom_bwd_restores_the_forward_state():
    seen = {}

    class Square(bp.autograd.Function):
        @staticmethod
        @bp.amp.custom_fwd(device_type="cpu", cast_inputs=bp.float32)
        def forward(ctx, a):
            seen["fwd"] = (a.dtype, bp.is_autocast_enabled("cpu"))
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        @bp.amp.custom_bwd(device_type="cpu")
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            seen["bwd"] = bp.is_autocast_enabled("cpu")
            return 2 * a * g

    x = bp.randn(3).bfloat16().requires_grad_()
    with bp.autocast("cpu"):
        y = Square.apply(x)
    y.sum().backward()
    assert seen["fwd"] == (bp.float32, False) and seen["bwd"] is False
    assert y.dtype == bp.float32 and x.grad.dtype == bp.bfloat16


# ------------------------------------------------------------------ GradScaler


class NumpyScaler:
    """PyTorch's documented dynamic loss scaling, independently in plain Python."""

    def __init__(self, init, growth, backoff, interval):
        self.scale, self.tracker = np.float32(init), 0
        self.growth, self.backoff, self.interval = growth, backoff, interval

    def update(self, found_inf):
        if found_inf:
            self.scale = np.float32(self.scale * np.float32(self.backoff))
            self.tracker = 0
        else:
            self.tracker += 1
            if self.tracker == self.interval:
                grown = np.float32(self.scale * np.float32(self.growth))
                if np.isfinite(grown):
                    self.scale = grown
                self.tracker = 0


def test_grad_scaler_follows_the_reference_algorithm_and_skips_overflowing_steps():
    model = nn.Linear(3, 2)
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    scaler = bp.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    ref = NumpyScaler(2.0 ** 10, 2.0, 0.5, 3)
    x, y = bp.randn(4, 3), bp.randn(4, 2)
    bad_steps = {2, 3, 7}
    for i in range(10):
        opt.zero_grad()
        with bp.autocast("cpu"):
            loss = F.mse_loss(model(x), y)
        assert loss.dtype == bp.float32
        scaler.scale(loss).backward()
        if i in bad_steps:
            with bp.no_grad():
                model.bias.grad[0] = float("nan") if i == 3 else float("inf")
        scaler.unscale_(opt)
        # the unscaled gradient is the true one (the scale is a power of two: exact)
        if i not in bad_steps:
            model2 = nn.Linear(3, 2)
            model2.load_state_dict(model.state_dict())
            with bp.autocast("cpu"):
                F.mse_loss(model2(x), y).backward()
            same(model.weight.grad, model2.weight.grad)
        before = [p.detach().clone() for p in model.parameters()]
        scaler.step(opt)
        changed = any(not bp.equal(a, b) for a, b in zip(before, model.parameters()))
        assert changed == (i not in bad_steps)
        scaler.update()
        ref.update(i in bad_steps)
        assert scaler.get_scale() == float(ref.scale) and scaler._get_growth_tracker() == ref.tracker


def test_grad_scaler_stage_errors_state_dict_and_pickling():
    model = nn.Linear(2, 1)
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    scaler = bp.amp.GradScaler("cpu", growth_interval=5)
    assert scaler.get_scale() == 2.0 ** 16
    with pytest.raises(AssertionError, match="_scale is None"):
        scaler.step(opt)
    scaler.scale(model(bp.ones(1, 2)).sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(opt, closure=lambda: 0.0)
    scaler.update()
    sd = scaler.state_dict()
    assert sd == {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 5,
                  "_growth_tracker": 1}
    other = bp.amp.GradScaler("cpu")
    other.load_state_dict(sd)
    assert other.state_dict() == sd
    assert pickle.loads(pickle.dumps(scaler)).state_dict() == sd
    with pytest.raises(RuntimeError, match="empty"):
        other.load_state_dict({})
    scaler.update(1024.0)
    assert scaler.get_scale() == 1024.0
    empty = bp.optim.SGD([bp.zeros(1, requires_grad=True)], lr=0.1)
    scaler.scale(bp.ones(()))
    with pytest.raises(AssertionError, match="No inf checks"):
        scaler.step(empty)


def test_grad_scaler_refuses_float16_gradients_and_disabled_passes_through():
    p = bp.zeros(2, dtype=bp.float16, requires_grad=True)
    opt = bp.optim.SGD([p], lr=1.0)
    scaler = bp.amp.GradScaler("cpu")
    scaler.scale((p.float() * 2).sum()).backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.unscale_(opt)
    off = bp.amp.GradScaler("cpu", enabled=False)
    loss = bp.ones(())
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}


def test_a_mixed_precision_training_loop_learns():
    bp.manual_seed(1)
    x = bp.randn(64, 4)
    y = (x @ bp.tensor([[1.0], [-2.0], [0.5], [3.0]])).squeeze(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = bp.optim.Adam(model.parameters(), lr=0.02)
    scaler = bp.amp.GradScaler("cpu")
    losses = []
    for _ in range(150):
        opt.zero_grad()
        with bp.autocast("cpu"):
            loss = F.mse_loss(model(x).squeeze(1), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert all(p.dtype == bp.float32 for p in model.parameters())
    assert losses[-1] < 0.05 * losses[0]
