"""The everyday nn surface: activations, functional ops, layers and nn.utils, each against an
independent NumPy implementation of PyTorch's documented formula (forward), with gradients by
``bp.autograd.gradcheck`` (central f64 finite differences) on float64 inputs kept away from kinks.

Tolerances: float64 forwards rtol 1e-10 unless stated; gradcheck with its defaults
(eps 1e-6, atol 1e-5, rtol 1e-3)."""

import math

import backprop_rs as bp
import backprop_rs.nn.functional as F
import numpy as np
import pytest
from backprop_rs import nn

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def t64(a, requires_grad=False):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=bp.float64, requires_grad=requires_grad)


def away_from(rng, shape, kinks, low=-4.0, high=4.0, gap=1e-2):
    """Uniform samples at least ``gap`` from every kink (finite differences straddling a kink fail)."""
    x = rng.uniform(low, high, size=shape)
    for k in kinks:
        close = np.abs(x - k) < gap
        x[close] = k + np.where(x[close] >= k, gap, -gap) * 3
    return x


def np_softplus(x):
    return np.logaddexp(0.0, x)


# name, module factory, functional call, NumPy reference, kinks
ACTIVATIONS = [
    ("relu", lambda: nn.ReLU(), lambda x: F.relu(x), lambda x: np.maximum(x, 0), [0]),
    ("relu6", lambda: nn.ReLU6(), lambda x: F.relu6(x), lambda x: np.minimum(np.maximum(x, 0), 6), [0, 6]),
    ("leaky_relu", lambda: nn.LeakyReLU(0.1), lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
     [0]),
    ("elu", lambda: nn.ELU(0.7), lambda x: F.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), [0]),
    ("selu", lambda: nn.SELU(), lambda x: F.selu(x),
     lambda x: SELU_SCALE * (np.maximum(0, x) + np.minimum(0, SELU_ALPHA * np.expm1(x))), [0]),
    ("celu", lambda: nn.CELU(0.5), lambda x: F.celu(x, 0.5),
     lambda x: np.maximum(0, x) + np.minimum(0, 0.5 * np.expm1(x / 0.5)), [0]),
    ("silu", lambda: nn.SiLU(), lambda x: F.silu(x), lambda x: x / (1 + np.exp(-x)), []),
    ("mish", lambda: nn.Mish(), lambda x: F.mish(x), lambda x: x * np.tanh(np_softplus(x)), []),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 1.5), lambda x: F.hardtanh(x, -0.5, 1.5), lambda x: np.clip(x, -0.5, 1.5),
     [-0.5, 1.5]),
    ("hardswish", lambda: nn.Hardswish(), lambda x: F.hardswish(x), lambda x: x * np.clip(x + 3, 0, 6) / 6, [-3, 3]),
    ("hardsigmoid", lambda: nn.Hardsigmoid(), lambda x: F.hardsigmoid(x), lambda x: np.clip(x + 3, 0, 6) / 6, [-3, 3]),
    ("softsign", lambda: nn.Softsign(), lambda x: F.softsign(x), lambda x: x / (1 + np.abs(x)), []),
    ("tanhshrink", lambda: nn.Tanhshrink(), lambda x: F.tanhshrink(x), lambda x: x - np.tanh(x), []),
    ("threshold", lambda: nn.Threshold(0.5, -2.0), lambda x: F.threshold(x, 0.5, -2.0),
     lambda x: np.where(x > 0.5, x, -2.0), [0.5]),
    ("logsigmoid", lambda: nn.LogSigmoid(), lambda x: F.logsigmoid(x), lambda x: -np_softplus(-x), []),
    ("hardshrink", lambda: nn.Hardshrink(0.7), lambda x: F.hardshrink(x, 0.7),
     lambda x: np.where(np.abs(x) > 0.7, x, 0.0), [-0.7, 0.7]),
    ("softshrink", lambda: nn.Softshrink(0.7), lambda x: F.softshrink(x, 0.7),
     lambda x: np.where(x > 0.7, x - 0.7, np.where(x < -0.7, x + 0.7, 0.0)), [-0.7, 0.7]),
    ("gelu_tanh", lambda: nn.GELU("tanh"), lambda x: F.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))), []),
    ("softmin", lambda: nn.Softmin(1), lambda x: F.softmin(x, 1),
     lambda x: np.exp(-x) / np.exp(-x).sum(1, keepdims=True), []),
    ("glu", lambda: nn.GLU(), lambda x: F.glu(x), lambda x: x[:, :2] / (1 + np.exp(-x[:, 2:])), []),
]


@pytest.mark.parametrize("name,make,func,ref,kinks", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_forward_and_gradient(name, make, func, ref, kinks, rng):
    x = away_from(rng, (3, 4), kinks)
    x[0, 0] = 30.0  # large values: no overflow in the unselected branch (exp of min(x, 0))
    x[0, 1] = -30.0
    want = ref(x)
    np.testing.assert_allclose(func(t64(x)).numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(make()(t64(x)).numpy(), want, rtol=1e-10, atol=1e-12)
    xs = t64(x[1:], requires_grad=True)  # gradcheck away from the extreme entries
    assert bp.autograd.gradcheck(func, [xs])
    # float32 keeps the same values to single precision
    np.testing.assert_allclose(func(bp.tensor(x.astype(np.float32))).numpy(), want, rtol=2e-6, atol=2e-6)


def test_gradients_at_the_kinks_are_pytorchs():
    """PyTorch's subgradients at the boundaries (read from its backward formulas)."""
    def grad(f, v):
        x = t64([v], requires_grad=True)
        f(x).sum().backward()
        return x.grad.item()

    assert grad(F.relu6, 0.0) == 0.0 and grad(F.relu6, 6.0) == 0.0  # hardtanh_backward: 0 at the bounds
    assert grad(lambda x: F.hardtanh(x), 1.0) == 0.0
    assert grad(F.hardsigmoid, 3.0) == 0.0 and grad(F.hardsigmoid, -3.0) == 0.0
    assert grad(F.hardswish, -3.0) == pytest.approx(-0.5) and grad(F.hardswish, 3.0) == pytest.approx(1.5)
    assert grad(lambda x: F.leaky_relu(x, 0.2), 0.0) == pytest.approx(0.2)
    assert grad(lambda x: F.elu(x, 0.7), 0.0) == pytest.approx(0.7)
    assert grad(lambda x: F.threshold(x, 1.0, 5.0), 1.0) == 0.0


def test_prelu_per_channel_weight_and_gradients(rng):
    m = nn.PReLU(3, init=0.2, dtype=bp.float64)
    assert [n for n, _ in m.named_parameters()] == ["weight"] and m.weight.shape == (3,)
    np.testing.assert_array_equal(m.weight.detach().numpy(), [0.2] * 3)
    x = away_from(rng, (2, 3, 4), [0])
    w = np.array([0.1, -0.3, 0.5])
    with bp.no_grad():
        m.weight.copy_(t64(w))
    want = np.where(x > 0, x, w[None, :, None] * x)
    np.testing.assert_allclose(m(t64(x)).detach().numpy(), want, rtol=1e-12)
    xs, ws = t64(x, True), t64(w, True)
    assert bp.autograd.gradcheck(lambda a, b: F.prelu(a, b), [xs, ws])
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
        F.prelu(t64(x), t64([0.1, 0.2]))
    assert nn.PReLU()(t64(x)).shape == x.shape  # one shared slope


def test_glu_needs_an_even_dim_and_softmin_default_dim():
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(bp.randn(2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin"):
        y = F.softmin(t64([[1.0, 2.0], [3.0, 5.0]]))
    np.testing.assert_allclose(y.numpy().sum(1), [1.0, 1.0], rtol=1e-12)  # dim 1 for a 2-d input


INPLACE = [
    ("relu", lambda ip: nn.ReLU(inplace=ip)),
    ("relu6", lambda ip: nn.ReLU6(inplace=ip)),
    ("leaky_relu", lambda ip: nn.LeakyReLU(0.1, inplace=ip)),
    ("elu", lambda ip: nn.ELU(0.8, inplace=ip)),
    ("selu", lambda ip: nn.SELU(inplace=ip)),
    ("celu", lambda ip: nn.CELU(0.6, inplace=ip)),
    ("silu", lambda ip: nn.SiLU(inplace=ip)),
    ("mish", lambda ip: nn.Mish(inplace=ip)),
    ("hardtanh", lambda ip: nn.Hardtanh(-0.3, 0.4, inplace=ip)),
    ("hardswish", lambda ip: nn.Hardswish(inplace=ip)),
    ("hardsigmoid", lambda ip: nn.Hardsigmoid(inplace=ip)),
    ("threshold", lambda ip: nn.Threshold(0.1, -0.5, inplace=ip)),
    ("dropout_eval", lambda ip: nn.Dropout(0.3, inplace=ip).eval()),
]


@pytest.mark.parametrize("name,make", INPLACE, ids=[a[0] for a in INPLACE])
def test_inplace_activation_trains_like_out_of_place(name, make):
    """The same small model trained 5 SGD steps with inplace=True and inplace=False: parameters
    agree to 1e-10 (float64); the in-place module returns its input object, modified."""
    results = []
    for ip in (False, True):
        bp.manual_seed(7)
        model = nn.Sequential(nn.Linear(3, 6, dtype=bp.float64), make(ip), nn.Linear(6, 2, dtype=bp.float64))
        init = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
        opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
        x = bp.tensor(np.linspace(-2, 2, 24).reshape(8, 3) * 1.5, dtype=bp.float64)
        y = bp.tensor(np.cos(np.arange(16.0)).reshape(8, 2), dtype=bp.float64)
        for _ in range(5):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
        results.append(np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-10, atol=1e-12)
    assert np.abs(results[0] - init).max() > 1e-3  # training moved the weights, so the comparison means something
    h = bp.randn(4, 5, dtype=bp.float64) * 2
    out_of_place = make(False)(h).numpy()
    assert make(True)(h) is h
    np.testing.assert_allclose(h.numpy(), out_of_place, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fn", [
    lambda x: F.relu(x, inplace=True), lambda x: F.leaky_relu(x, inplace=True), lambda x: F.elu(x, inplace=True),
    lambda x: F.hardtanh(x, inplace=True), lambda x: F.silu(x, inplace=True), lambda x: F.hardsigmoid(x, inplace=True),
    lambda x: F.threshold(x, 0.0, 1.0, inplace=True), lambda x: F.dropout(x, 0.5, True, inplace=True),
])
def test_inplace_on_a_leaf_that_requires_grad_raises(fn):
    x = bp.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        fn(x)
    with bp.no_grad():  # allowed without grad recording, as in PyTorch
        fn(x)


def test_inplace_gradients_match_out_of_place_on_a_non_leaf(rng):
    x0 = away_from(rng, (10,), [0, -3, 3])
    for inplace_fn, ref_fn in [(lambda y: F.elu(y, 1.3, inplace=True), lambda y: F.elu(y, 1.3)),
                               (lambda y: F.mish(y, inplace=True), F.mish),
                               (lambda y: F.hardswish(y, inplace=True), F.hardswish),
                               (lambda y: F.leaky_relu(y, 0.2, inplace=True), lambda y: F.leaky_relu(y, 0.2))]:
        grads = []
        for f in (inplace_fn, ref_fn):
            x = t64(x0, True)
            y = x * 1.5
            z = f(y)
            (z * z).sum().backward()
            grads.append(x.grad.numpy())
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)


# ------------------------------------------------------------------ functional helpers


def test_one_hot():
    t = bp.tensor([[0, 3], [2, 1]])
    out = F.one_hot(t)
    assert out.dtype == bp.int64 and out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.numpy(), np.eye(4, dtype=np.int64)[t.numpy()])
    assert F.one_hot(bp.tensor([1]), num_classes=5).tolist() == [[0, 1, 0, 0, 0]]
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(bp.tensor([5]), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(bp.tensor([-1]))
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(bp.tensor([1.0]))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_normalize(p, rng):
    x = rng.standard_normal((3, 4, 2))
    if p == math.inf:
        norm = np.max(np.abs(x), axis=1, keepdims=True)
    else:
        norm = (np.abs(x) ** p).sum(1, keepdims=True) ** (1 / p)
    np.testing.assert_allclose(F.normalize(t64(x), p=p).numpy(), x / np.maximum(norm, 1e-12), rtol=1e-10)
    assert bp.autograd.gradcheck(lambda a: F.normalize(a, p=p, dim=-1), [t64(x, True)])


def test_normalize_of_a_zero_vector_has_zero_gradient():
    x = bp.zeros(2, 3, dtype=bp.float64, requires_grad=True)
    y = F.normalize(x)
    assert np.all(y.detach().numpy() == 0)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_cosine_similarity_and_pairwise_distance(rng):
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    cos = (a * b).sum(1) / (np.maximum(np.linalg.norm(a, axis=1), 1e-8) * np.maximum(np.linalg.norm(b, axis=1), 1e-8))
    np.testing.assert_allclose(F.cosine_similarity(t64(a), t64(b)).numpy(), cos, rtol=1e-10)
    # broadcasting a single row against the batch
    np.testing.assert_allclose(F.cosine_similarity(t64(a[:1]), t64(b)).numpy(),
                               (a[:1] * b).sum(1) / np.linalg.norm(a[0]) / np.linalg.norm(b, axis=1), rtol=1e-10)
    for p in (1.0, 2.0, 3.0):
        want = (np.abs(a - b + 1e-6) ** p).sum(-1) ** (1 / p)
        np.testing.assert_allclose(F.pairwise_distance(t64(a), t64(b), p=p).numpy(), want, rtol=1e-10)
    assert F.pairwise_distance(t64(a), t64(b), keepdim=True).shape == (5, 1)
    assert bp.autograd.gradcheck(lambda x, y: F.cosine_similarity(x, y), [t64(a, True), t64(b, True)])
    assert bp.autograd.gradcheck(lambda x, y: F.pairwise_distance(x, y, 3.0), [t64(a, True), t64(b, True)])


def test_embedding_padding_idx_max_norm_and_scale_grad_by_freq(rng):
    emb = nn.Embedding(6, 3, padding_idx=-1, dtype=bp.float64)
    assert emb.padding_idx == 5 and np.all(emb.weight.detach().numpy()[5] == 0)
    ids = bp.tensor([[5, 1, 1], [2, 5, 0]])
    emb(ids).sum().backward()
    g = emb.weight.grad.numpy()
    np.testing.assert_array_equal(g[:, 0], [1, 2, 1, 0, 0, 0])  # counts, padding row 0
    # scale_grad_by_freq: each row's gradient divided by its count in the batch
    w = t64(rng.standard_normal((6, 3)), True)
    F.embedding(ids, w, scale_grad_by_freq=True).sum().backward()
    np.testing.assert_allclose(w.grad.numpy()[:, 0], [1, 1, 1, 0, 0, 1], rtol=1e-12)
    # max_norm: looked-up rows renormalised in place to max_norm / (norm + 1e-7), the rest untouched
    w0 = rng.standard_normal((6, 3)) * 3
    w = t64(w0)
    out = F.embedding(bp.tensor([0, 2]), w, max_norm=1.0)
    want = w0.copy()
    for r in (0, 2):
        n = np.linalg.norm(w0[r])
        if n > 1.0:
            want[r] = w0[r] * (1.0 / (n + 1e-7))
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(out.numpy(), want[[0, 2]], rtol=1e-12)
    pre = bp.tensor(rng.standard_normal((4, 2)))
    frozen = nn.Embedding.from_pretrained(pre)
    assert not frozen.weight.requires_grad and frozen(bp.tensor([3])).tolist() == [pre[3].tolist()]
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(3, 2, sparse=True)


def test_dropout_variants_statistics():
    bp.manual_seed(1)
    x = bp.ones(400, 8, 5)
    y = F.dropout1d(x, 0.25).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    per_channel = y[:, :, 0]
    assert np.all(y == per_channel[:, :, None])  # whole channels
    assert abs((per_channel == 0).mean() - 0.25) < 0.03
    assert F.dropout1d(x, 0.25, training=False) is x
    z = F.dropout3d(bp.ones(200, 4, 2, 2, 2), 0.5).numpy()
    assert np.all(z == z[:, :, :1, :1, :1]) and abs((z[:, :, 0, 0, 0] == 0).mean() - 0.5) < 0.06
    # alpha dropout keeps a standard normal's mean and variance (its defining property)
    a = bp.randn(200000)
    ya = F.alpha_dropout(a, 0.3, training=True).numpy()
    assert abs(ya.mean()) < 0.01 and abs(ya.std() - 1) < 0.01
    dropped = -SELU_ALPHA * SELU_SCALE
    aa = ((1 - 0.3) * (1 + 0.3 * dropped ** 2)) ** -0.5
    assert np.isclose(ya, aa * dropped + (-aa * dropped * 0.3), rtol=1e-5).mean() == pytest.approx(0.3, abs=0.01)
    assert F.alpha_dropout(a, 0.3) is a  # training=False by default, as PyTorch's functional
    m = nn.AlphaDropout(0.2)
    assert m(a).shape == a.shape and m.eval()(a) is a
    yi = bp.ones(1000) * 1
    assert F.dropout(yi, 0.4, inplace=True) is yi and set(np.unique(yi.numpy())) <= {0.0, np.float32(1 / 0.6)}
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout1d(1.5)


# ------------------------------------------------------------------ pooling and resampling


def np_pool1d(x, k, s, p, d=1, op="max", ceil=False, count_include_pad=True):
    n, c, length = x.shape
    span = d * (k - 1) + 1
    num = length + 2 * p - span
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= length + p:
        out -= 1
    res = np.zeros((n, c, out))
    idx = np.zeros((n, c, out), dtype=np.int64)
    for o in range(out):
        pos = [o * s - p + j * d for j in range(k)]
        valid = [q for q in pos if 0 <= q < length]
        if op == "max":
            win = x[:, :, valid]
            res[:, :, o] = win.max(-1)
            idx[:, :, o] = np.array(valid)[win.argmax(-1)]
        else:
            hi = min(o * s - p + k, length + p)
            div = (hi - (o * s - p)) if count_include_pad else len(valid)
            res[:, :, o] = x[:, :, valid].sum(-1) / div
    return res, idx


@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, False),
                                          (2, 2, 0, 1, True), (4, 3, 2, 1, True)])
def test_max_and_avg_pool1d(k, s, p, d, ceil, rng):
    x = rng.standard_normal((2, 3, 11))
    out, idx = F.max_pool1d(t64(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
    want, want_idx = np_pool1d(x, k, s, p, d, "max", ceil)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    assert bp.autograd.gradcheck(lambda a: F.max_pool1d(a, k, s, p, d, ceil_mode=ceil), [t64(x, True)])
    if d == 1:
        for cip in (True, False):
            got = nn.AvgPool1d(k, s, p, ceil_mode=ceil, count_include_pad=cip)(t64(x)).numpy()
            np.testing.assert_allclose(got, np_pool1d(x, k, s, p, 1, "avg", ceil, cip)[0], rtol=1e-12)
    assert nn.MaxPool1d(k, s, p, d, ceil_mode=ceil)(t64(x[0])).shape == want.shape[1:]  # unbatched (C, L)


def np_adaptive_windows(size, out):
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((3, 5, 5), (5, 2)), ((1, 2, 6, 6), (3, 3)),
                                       ((1, 1, 4, 5), (6, 7))])
def test_adaptive_max_pool2d(shape, out, rng):
    x = rng.standard_normal(shape)
    x.reshape(-1)[:4] = 1.5  # ties: the first maximum (row-major) wins, as PyTorch's scan
    vals, idx = F.adaptive_max_pool2d(t64(x), out, return_indices=True)
    h, w = shape[-2:]
    want = np.zeros(shape[:-2] + out)
    want_idx = np.zeros(shape[:-2] + out, dtype=np.int64)
    for i, (h0, h1) in enumerate(np_adaptive_windows(h, out[0])):
        for j, (w0, w1) in enumerate(np_adaptive_windows(w, out[1])):
            win = x[..., h0:h1, w0:w1].reshape(*shape[:-2], -1)
            want[..., i, j] = win.max(-1)
            k = win.argmax(-1)
            want_idx[..., i, j] = (h0 + k // (w1 - w0)) * w + w0 + k % (w1 - w0)
    np.testing.assert_allclose(vals.numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    xg = t64(x, True)
    F.adaptive_max_pool2d(xg, out).sum().backward()
    g = np.zeros(x.size)
    lead = int(np.prod(shape[:-2]))
    for b in range(lead):  # the gradient goes to each window's chosen maximum
        np.add.at(g[b * h * w:(b + 1) * h * w], want_idx.reshape(lead, -1)[b], 1.0)
    np.testing.assert_allclose(xg.grad.numpy().reshape(-1), g)
    assert nn.AdaptiveMaxPool2d((None, 2))(t64(x)).shape == shape[:-1] + (2,)


def test_adaptive_pools_1d(rng):
    x = rng.standard_normal((2, 3, 10))
    for out in (3, 4, 10):
        wins = np_adaptive_windows(10, out)
        np.testing.assert_allclose(F.adaptive_avg_pool1d(t64(x), out).numpy(),
                                   np.stack([x[..., a:b].mean(-1) for a, b in wins], -1), rtol=1e-12)
        v, i = nn.AdaptiveMaxPool1d(out, return_indices=True)(t64(x))
        np.testing.assert_allclose(v.numpy(), np.stack([x[..., a:b].max(-1) for a, b in wins], -1), rtol=1e-12)
        np.testing.assert_array_equal(i.numpy(), np.stack([a + x[..., a:b].argmax(-1) for a, b in wins], -1))
    assert bp.autograd.gradcheck(lambda a: F.adaptive_avg_pool1d(a, 4), [t64(x, True)])
    assert bp.autograd.gradcheck(lambda a: F.adaptive_max_pool1d(a, 4), [t64(x, True)])


def np_bilinear(x, oh, ow, align_corners, scale=None):
    """Per output pixel, PyTorch's documented source coordinates and 4-neighbour weights."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))

    def src(i, o, size, sc):
        if align_corners:
            return i * (size - 1) / (o - 1) if o > 1 else 0.0
        r = (1 / sc) if sc else size / o
        return max((i + 0.5) * r - 0.5, 0.0)

    for i in range(oh):
        sy = src(i, oh, h, scale and scale[0])
        y0 = min(math.floor(sy), h - 1)
        y1, ly = min(y0 + 1, h - 1), sy - y0
        for j in range(ow):
            sx = src(j, ow, w, scale and scale[1])
            x0 = min(math.floor(sx), w - 1)
            x1, lx = min(x0 + 1, w - 1), sx - x0
            out[..., i, j] = ((1 - ly) * ((1 - lx) * x[..., y0, x0] + lx * x[..., y0, x1])
                              + ly * ((1 - lx) * x[..., y1, x0] + lx * x[..., y1, x1]))
    return out


@pytest.mark.parametrize("size,align", [((7, 5), False), ((7, 5), True), ((3, 2), False), ((3, 2), True),
                                        ((1, 1), True), ((4, 6), False)])
def test_interpolate_bilinear(size, align, rng):
    x = rng.standard_normal((2, 3, 4, 6))
    got = F.interpolate(t64(x), size=size, mode="bilinear", align_corners=align).numpy()
    np.testing.assert_allclose(got, np_bilinear(x, *size, align), rtol=1e-10, atol=1e-12)
    assert bp.autograd.gradcheck(lambda a: F.interpolate(a, size=size, mode="bilinear", align_corners=align),
                                 [t64(x[:1, :1], True)])


def test_interpolate_scale_factor_linear_and_ramps(rng):
    x = rng.standard_normal((1, 2, 5, 4))
    got = F.interpolate(t64(x), scale_factor=1.5, mode="bilinear").numpy()
    np.testing.assert_allclose(got, np_bilinear(x, 7, 6, False, scale=(1.5, 1.5)), rtol=1e-10)
    # align_corners=True reproduces a linear ramp exactly, endpoints included
    ramp = np.linspace(0.0, 1.0, 5)
    up = F.interpolate(t64(ramp.reshape(1, 1, 5)), size=9, mode="linear", align_corners=True).numpy().ravel()
    np.testing.assert_allclose(up, np.linspace(0.0, 1.0, 9), rtol=1e-12, atol=1e-15)
    assert nn.Upsample(scale_factor=2, mode="bilinear")(t64(x)).shape == (1, 2, 10, 8)
    assert nn.UpsamplingBilinear2d(size=(3, 3))(t64(x)).numpy()[0, 0, 0, 0] == pytest.approx(x[0, 0, 0, 0])


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_interpolate_nearest(mode, rng):
    x = rng.standard_normal((2, 1, 5, 3))
    for size in [(10, 6), (3, 7), (5, 3), (2, 1)]:
        got = F.interpolate(t64(x), size=size, mode=mode).numpy()
        off = 0.5 if mode == "nearest-exact" else 0.0
        rows = [min(math.floor((i + off) * 5 / size[0]), 4) for i in range(size[0])]
        cols = [min(math.floor((j + off) * 3 / size[1]), 2) for j in range(size[1])]
        np.testing.assert_array_equal(got, x[:, :, rows][:, :, :, cols])
    xg = t64(x, True)
    F.interpolate(xg, scale_factor=2, mode=mode).sum().backward()
    np.testing.assert_allclose(xg.grad.numpy(), 4.0)  # each pixel copied into a 2x2 block
    np.testing.assert_array_equal(nn.Upsample(scale_factor=(2, 3))(t64(x)).numpy(),
                                  x.repeat(2, axis=2).repeat(3, axis=3))
    x1 = rng.standard_normal((1, 2, 4))
    np.testing.assert_array_equal(F.interpolate(t64(x1), size=8).numpy(), x1.repeat(2, axis=2))


def _bicubic_reference(x: np.ndarray, oh: int, ow: int, align: bool) -> np.ndarray:
    """PyTorch's upsample_bicubic2d, pixel by pixel: 4x4 clamped taps, Keys' A = -0.75."""
    a = -0.75

    def w(t):
        near = lambda v: ((a + 2) * v - (a + 3)) * v * v + 1  # noqa: E731
        far = lambda v: ((a * v - 5 * a) * v + 8 * a) * v - 4 * a  # noqa: E731
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]

    def src(o, n_in, n_out):
        if align:
            return o * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        return (o + 0.5) * n_in / n_out - 0.5

    n, c, h, wd = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        sy = src(i, h, oh)
        y0 = min(math.floor(sy), h - 1)
        wy = w(min(max(sy - y0, 0), 1))
        for j in range(ow):
            sx = src(j, wd, ow)
            x0 = min(math.floor(sx), wd - 1)
            wx = w(min(max(sx - x0, 0), 1))
            for q in range(4):
                for p_ in range(4):
                    yy, xx = min(max(y0 - 1 + q, 0), h - 1), min(max(x0 - 1 + p_, 0), wd - 1)
                    out[:, :, i, j] += x[:, :, yy, xx] * wy[q] * wx[p_]
    return out


@pytest.mark.parametrize("align", [False, True])
def test_interpolate_bicubic_matches_the_reference(align):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 5, 4))
    for size in [(10, 8), (3, 7), (5, 4), (1, 2)]:
        got = F.interpolate(bp.tensor(x), size=size, mode="bicubic", align_corners=align).numpy()
        np.testing.assert_allclose(got, _bicubic_reference(x, *size, align), atol=1e-12)
    if align:  # an interpolating kernel: the same size gives the input back
        np.testing.assert_allclose(F.interpolate(bp.tensor(x), size=(5, 4), mode="bicubic", align_corners=True)
                                   .numpy(), x, atol=1e-12)
    xg = bp.tensor(x[:1, :1], requires_grad=True)
    assert bp.autograd.gradcheck(lambda t: F.interpolate(t, scale_factor=1.5, mode="bicubic", align_corners=align),
                                 (xg,))
    assert nn.Upsample(scale_factor=2, mode="bicubic")(bp.tensor(x)).shape == (2, 3, 10, 8)


def test_interpolate_errors():
    x = bp.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, size=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="needs 4D input"):
        F.interpolate(bp.randn(1, 1, 4), size=2, mode="bicubic")
    with pytest.raises(NotImplementedError, match="needs 4D input"):
        F.interpolate(bp.randn(1, 1, 4), size=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="antialias"):
        F.interpolate(x, size=2, mode="bilinear", antialias=True)


def test_pixel_shuffle_round_trip(rng):
    x = rng.standard_normal((2, 8, 3, 4))
    y = F.pixel_shuffle(t64(x), 2).numpy()
    # PyTorch's definition: out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]
    want = np.zeros((2, 2, 6, 8))
    for c in range(2):
        for i in range(2):
            for j in range(2):
                want[:, c, i::2, j::2] = x[:, c * 4 + i * 2 + j]
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(nn.PixelUnshuffle(2)(t64(y)).numpy(), x)
    assert nn.PixelShuffle(2)(t64(x[0])).shape == (2, 6, 8)
    with pytest.raises(RuntimeError, match="divisible by the square"):
        F.pixel_shuffle(t64(x), 3)


# ------------------------------------------------------------------ layers


def np_conv1d(x, w, b, stride, padding, dilation, groups):
    n, _, length = x.shape
    cout, cpg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    out_len = (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((n, cout, out_len))
    opg = cout // groups
    for o in range(cout):
        g = o // opg
        for t in range(out_len):
            seg = xp[:, g * cpg:(g + 1) * cpg, t * stride: t * stride + dilation * (k - 1) + 1: dilation]
            y[:, o, t] = (seg * w[o]).sum((1, 2))
    return y + (b[None, :, None] if b is not None else 0)


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (3, 1, 1, 4)])
def test_conv1d_against_numpy(stride, padding, dilation, groups, rng):
    bp.manual_seed(0)
    conv = nn.Conv1d(4, 8, 3, stride, padding, dilation, groups, dtype=bp.float64)
    assert conv.weight.shape == (8, 4 // groups, 3) and conv.bias.shape == (8,)
    bound = 1 / math.sqrt(4 // groups * 3)
    assert np.abs(conv.weight.detach().numpy()).max() <= bound and np.abs(conv.bias.detach().numpy()).max() <= bound
    x = rng.standard_normal((2, 4, 11))
    want = np_conv1d(x, conv.weight.detach().numpy(), conv.bias.detach().numpy(), stride, padding, dilation, groups)
    np.testing.assert_allclose(conv(t64(x)).detach().numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv(t64(x[1])).detach().numpy(), want[1], rtol=1e-10, atol=1e-12)  # unbatched
    w = t64(conv.weight.detach().numpy(), True)
    assert bp.autograd.gradcheck(lambda a, ww: F.conv1d(a, ww, None, stride, padding, dilation, groups),
                                 [t64(x[:1], True), w])


def test_conv1d_padding_modes_and_same(rng):
    x = rng.standard_normal((1, 2, 7))
    for mode, np_mode in [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")]:
        conv = nn.Conv1d(2, 3, 3, padding=2, padding_mode=mode, dtype=bp.float64)
        xp = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode=np_mode)
        want = np_conv1d(xp, conv.weight.detach().numpy(), conv.bias.detach().numpy(), 1, 0, 1, 1)
        np.testing.assert_allclose(conv(t64(x)).detach().numpy(), want, rtol=1e-10)
    same = nn.Conv1d(2, 3, 4, padding="same", dilation=2, bias=False, dtype=bp.float64)
    xp = np.pad(x, ((0, 0), (0, 0), (3, 3)))  # total 2*(4-1) = 6, split 3/3
    np.testing.assert_allclose(same(t64(x)).detach().numpy(),
                               np_conv1d(xp, same.weight.detach().numpy(), None, 1, 0, 2, 1), rtol=1e-10)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv1d(2, 3, 3, padding_mode="mirror")
    c2 = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", dtype=bp.float64)
    x2 = rng.standard_normal((1, 2, 4, 5))
    ref = F.conv2d(t64(np.pad(x2, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="wrap")), c2.weight, c2.bias)
    np.testing.assert_allclose(c2(t64(x2)).detach().numpy(), ref.detach().numpy(), rtol=1e-12)


def np_conv_transpose1d(x, w, b, stride, padding, output_padding, groups, dilation):
    n, cin, length = x.shape
    _, opg, k = w.shape
    ipg = cin // groups
    full = (length - 1) * stride + dilation * (k - 1) + 1 + output_padding
    y = np.zeros((n, opg * groups, full + padding))
    for ci in range(cin):
        g = ci // ipg
        for i in range(length):
            for kk in range(k):
                y[:, g * opg:(g + 1) * opg, i * stride + kk * dilation] += x[:, ci, i][:, None] * w[ci, :, kk]
    out_len = (length - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    y = y[:, :, padding:padding + out_len]
    return y + (b[None, :, None] if b is not None else 0)


@pytest.mark.parametrize("stride,padding,output_padding,groups,dilation", [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1),
                                                                           (3, 2, 0, 2, 2)])
def test_conv_transpose1d_against_numpy(stride, padding, output_padding, groups, dilation, rng):
    m = nn.ConvTranspose1d(4, 6, 3, stride, padding, output_padding, groups, dilation=dilation, dtype=bp.float64)
    assert m.weight.shape == (4, 6 // groups, 3)
    x = rng.standard_normal((2, 4, 5))
    want = np_conv_transpose1d(x, m.weight.detach().numpy(), m.bias.detach().numpy(), stride, padding,
                               output_padding, groups, dilation)
    np.testing.assert_allclose(m(t64(x)).detach().numpy(), want, rtol=1e-10, atol=1e-12)
    # output_size picks the output_padding
    base = (5 - 1) * stride - 2 * padding + dilation * 2 + 1
    assert m(t64(x), output_size=[base + stride - 1]).shape[-1] == base + stride - 1
    with pytest.raises(ValueError, match="valid sizes range"):
        m(t64(x), output_size=[base + stride])


def test_group_norm(rng):
    gn = nn.GroupNorm(3, 6, dtype=bp.float64)
    assert [n for n, _ in gn.named_parameters()] == ["weight", "bias"] and gn.weight.shape == (6,)
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    with bp.no_grad():
        gn.weight.copy_(t64(w))
        gn.bias.copy_(t64(b))
    x = rng.standard_normal((2, 6, 4, 3))
    xg = x.reshape(2, 3, -1)
    want = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    want = want * w[None, :, None, None] + b[None, :, None, None]
    np.testing.assert_allclose(gn(t64(x)).detach().numpy(), want, rtol=1e-10, atol=1e-12)
    assert bp.autograd.gradcheck(lambda a, ww, bb: F.group_norm(a, 2, ww, bb), [t64(x[:1, :, :2], True),
                                                                                t64(w, True), t64(b, True)])
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)
    assert nn.GroupNorm(2, 4, affine=False).weight is None


def test_instance_norm_running_stats_and_eval(rng):
    m = nn.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=bp.float64)
    assert set(m.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    x = rng.standard_normal((4, 3, 5, 2)) * 2 + 1
    y = m(t64(x)).detach().numpy()
    xf = x.reshape(4, 3, -1)
    want = (xf - xf.mean(-1, keepdims=True)) / np.sqrt(xf.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.reshape(4, 3, -1), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.running_mean.numpy(), 0.1 * xf.mean(-1).mean(0), rtol=1e-10)
    np.testing.assert_allclose(m.running_var.numpy(), 0.9 + 0.1 * xf.var(-1, ddof=1).mean(0), rtol=1e-10)
    m.eval()
    ye = m(t64(x)).detach().numpy()
    rm, rv = m.running_mean.numpy(), m.running_var.numpy()
    np.testing.assert_allclose(ye, (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5),
                               rtol=1e-10)
    plain = nn.InstanceNorm1d(3)
    assert list(plain.state_dict()) == [] and plain.weight is None
    x1 = rng.standard_normal((3, 7))  # unbatched (C, L)
    np.testing.assert_allclose(plain(t64(x1)).numpy(), (x1 - x1.mean(-1, keepdims=True)) /
                               np.sqrt(x1.var(-1, keepdims=True) + 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match="expected 3D or 4D input"):
        m(bp.randn(3, 5))
    with pytest.raises(ValueError, match="match num_features"):
        nn.InstanceNorm1d(4, affine=True)(bp.randn(2, 3, 5))
    assert bp.autograd.gradcheck(lambda a: F.instance_norm(a), [t64(x[:2, :2, :2], True)])


def test_batch_norm_tracks_batches_like_pytorch(rng):
    bn = nn.BatchNorm1d(3, momentum=None, dtype=bp.float64)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    xs = [rng.standard_normal((8, 3)) for _ in range(3)]
    for x in xs:
        bn(t64(x))
    assert bn.num_batches_tracked.item() == 3 and bn.num_batches_tracked.dtype == bp.int64
    # momentum=None: the cumulative average of the batch statistics
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0), rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean([x.var(0, ddof=1) for x in xs], 0), rtol=1e-10)
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        bn(bp.randn(2, 3, 4, 5))
    # a checkpoint without num_batches_tracked (older ones) still loads strictly; the count stays
    old = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    fresh = nn.BatchNorm1d(3, dtype=bp.float64)
    assert fresh.load_state_dict(old).missing_keys == [] and fresh.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(fresh.running_mean.numpy(), bn.running_mean.numpy())


def test_rms_norm_and_layer_norm_without_bias(rng):
    m = nn.RMSNorm([3, 4], dtype=bp.float64)
    w = rng.standard_normal((3, 4))
    with bp.no_grad():
        m.weight.copy_(t64(w))
    x = rng.standard_normal((2, 3, 4))
    eps = np.finfo(np.float64).eps
    want = x / np.sqrt((x ** 2).mean((1, 2), keepdims=True) + eps) * w
    np.testing.assert_allclose(m(t64(x)).detach().numpy(), want, rtol=1e-10)
    m2 = nn.RMSNorm(4, eps=0.5, elementwise_affine=False)
    np.testing.assert_allclose(m2(t64(x)).numpy(), x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 0.5), rtol=1e-10)
    assert bp.autograd.gradcheck(lambda a, ww: F.rms_norm(a, [4], ww, 1e-3), [t64(x, True), t64(w[0], True)])
    with pytest.raises(RuntimeError, match="normalized_shape"):
        m(bp.randn(2, 4, 3))
    ln = nn.LayerNorm(4, bias=False)
    assert [n for n, _ in ln.named_parameters()] == ["weight"] and ln.bias is None


def test_bilinear_layer(rng):
    bp.manual_seed(0)
    m = nn.Bilinear(3, 4, 5, dtype=bp.float64)
    assert m.weight.shape == (5, 3, 4) and m.bias.shape == (5,)
    assert np.abs(m.weight.detach().numpy()).max() <= 1 / math.sqrt(3)
    x1, x2 = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 4))
    want = np.einsum("...i,kij,...j->...k", x1, m.weight.detach().numpy(), x2) + m.bias.detach().numpy()
    np.testing.assert_allclose(m(t64(x1), t64(x2)).detach().numpy(), want, rtol=1e-10)
    assert bp.autograd.gradcheck(lambda a, b, w: F.bilinear(a, b, w), [t64(x1[0, :2], True), t64(x2[0, :2], True),
                                                                       t64(m.weight.detach().numpy(), True)])


def test_unflatten_identity_and_state_dict_names():
    assert nn.Unflatten(1, (2, -1))(bp.zeros(3, 8, 5)).shape == (3, 2, 4, 5)
    assert nn.Identity(54, unused="x")(bp.zeros(1)).shape == (1,)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.GroupNorm(2, 4), nn.PReLU(), nn.Flatten(), nn.Bilinear(2, 2, 1))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "4.weight", "4.bias"]
    # a state dict with PyTorch's layout loads
    sd = {k: bp.zeros(*v.shape) for k, v in model.state_dict().items()}
    assert model.load_state_dict(sd).missing_keys == []


# ------------------------------------------------------------------ nn.utils


def test_clip_grad_norm_matches_pytorchs_formula(rng):
    grads = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    for norm_type in (2.0, 1.0, 3.0, math.inf):
        ps = [nn.Parameter(t64(np.zeros_like(g))) for g in grads]
        for p, g in zip(ps, grads):
            p.grad = t64(g)
        flat = np.concatenate([g.ravel() for g in grads])
        total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
        for error_if_nonfinite in (False, True):
            for p, g in zip(ps, grads):
                p.grad = t64(g)
            got = nn.utils.clip_grad_norm_(ps, 0.5, norm_type, error_if_nonfinite=error_if_nonfinite, foreach=True)
            assert got.item() == pytest.approx(total, rel=1e-10)
            coef = min(1.0, 0.5 / (total + 1e-6))
            for p, g in zip(ps, grads):
                np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-10)
    p = nn.Parameter(bp.zeros(2))
    p.grad = bp.tensor([1.0, float("inf")])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert p.grad.tolist() == [1.0, float("inf")]  # untouched when it raises
    assert nn.utils.clip_grad_norm_([nn.Parameter(bp.zeros(2))], 1.0).item() == 0.0  # no gradients


def test_clip_grad_value_and_vector_conversion():
    a, b = nn.Parameter(bp.zeros(2, 2)), nn.Parameter(bp.zeros(3))
    a.grad = bp.tensor([[-3.0, 0.5], [0.1, 2.0]])
    b.grad = bp.tensor([0.0, -0.2, 9.0])
    nn.utils.clip_grad_value_([a, b], 1.0)
    np.testing.assert_array_equal(a.grad.numpy(), np.float32([[-1.0, 0.5], [0.1, 1.0]]))
    np.testing.assert_allclose(b.grad.numpy(), [0.0, -0.2, 1.0])
    with bp.no_grad():
        a.copy_(bp.tensor([[1.0, 2.0], [3.0, 4.0]]))
        b.copy_(bp.tensor([5.0, 6.0, 7.0]))
    vec = nn.utils.parameters_to_vector([a, b])
    assert vec.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    nn.utils.vector_to_parameters(bp.arange(7).float() * 10, [a, b])
    assert a.tolist() == [[0.0, 10.0], [20.0, 30.0]] and b.tolist() == [40.0, 50.0, 60.0]
    assert a.requires_grad and isinstance(a, nn.Parameter)
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        nn.utils.vector_to_parameters([1.0], [a])


def test_pad_sequence():
    seqs = [bp.tensor([[1.0, 1.0]]), bp.tensor([[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]), bp.tensor([[5.0, 5.0]] * 2)]
    out = nn.utils.rnn.pad_sequence(seqs)
    assert out.shape == (3, 3, 2)
    assert out[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and out[:, 2, 0].tolist() == [5.0, 5.0, 0.0]
    bf = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=-1.0, padding_side="left")
    assert bf.shape == (3, 3, 2) and bf[0, :, 0].tolist() == [-1.0, -1.0, 1.0]
    back = nn.utils.rnn.unpad_sequence(out, [1, 3, 2])
    assert [s.shape for s in back] == [(1, 2), (3, 2), (2, 2)] and back[1].tolist() == seqs[1].tolist()
    ints = nn.utils.rnn.pad_sequence([bp.tensor([1, 2]), bp.tensor([3])], batch_first=True)
    assert ints.dtype == bp.int64 and ints.tolist() == [[1, 2], [3, 0]]
    xs = [bp.randn(2, dtype=bp.float64, requires_grad=True), bp.randn(3, dtype=bp.float64, requires_grad=True)]
    (nn.utils.rnn.pad_sequence(xs) * 2).sum().backward()
    assert xs[0].grad.tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="padding_side"):
        nn.utils.rnn.pad_sequence(seqs, padding_side="middle")


# ------------------------------------------------------------------ GPU parity of the compositions

GPU_CASES = {
    "elu_inplace": lambda t: F.elu(t * 1.0, inplace=True),
    "mish": F.mish,
    "hardswish": F.hardswish,
    "leaky_inplace": lambda t: F.leaky_relu(t * 1.0, 0.1, inplace=True),
    "glu": lambda t: F.glu(t, 1),
    "group_norm": lambda t: F.group_norm(t, 2),
    "instance_norm": lambda t: F.instance_norm(t),
    "bilinear_resize": lambda t: F.interpolate(t, size=(7, 5), mode="bilinear"),
    "nearest_resize": lambda t: F.interpolate(t, size=(9, 4)),
    "adaptive_max": lambda t: F.adaptive_max_pool2d(t, (4, 5)),
    "pixel_shuffle": lambda t: F.pixel_shuffle(t, 2),
    "max_pool1d": lambda t: F.max_pool1d(t.flatten(2), 3, 2),
    "circular_pad": lambda t: F.pad(t, (1, 2, 2, 1), "circular"),
    "cosine_sim": lambda t: F.cosine_similarity(t, t * 0.5 + 1.0),
    "triplet": lambda t: F.triplet_margin_loss(t.flatten(1), t.flatten(1) * 0.5, t.flatten(1) + 1.0),
    "multilabel_soft_margin": lambda t: F.multilabel_soft_margin_loss(t.flatten(1), (t.flatten(1) > 0).float()),
}


@pytest.mark.parametrize("name", list(GPU_CASES))
def test_gpu_matches_cpu(name):
    if not bp.gpu.is_available():
        pytest.skip("no GPU adapter")
    fn = GPU_CASES[name]
    x = np.random.default_rng(5).standard_normal((2, 4, 6, 6)).astype(np.float32)
    outs, grads = [], []
    for dev in ("cpu", "gpu"):
        t = bp.tensor(x, device=dev, requires_grad=True)
        y = fn(t)
        assert y.device == bp.device(dev)
        (y * y).sum().backward()
        outs.append(y.detach().to("cpu").numpy())
        grads.append(t.grad.to("cpu").numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-3, atol=1e-3)
