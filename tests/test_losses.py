"""Losses (functional and Module forms) against NumPy implementations of PyTorch's documented
formulas, for every reduction; gradients by gradcheck on float64 inputs kept away from kinks.

Tolerances: float64 values rtol 1e-10; gradcheck with its defaults (eps 1e-6, atol 1e-5, rtol 1e-3)."""

import math

import backprop_rs as bp
import backprop_rs.nn.functional as F
import numpy as np
import pytest
from backprop_rs import nn


def t64(a, requires_grad=False):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=bp.float64, requires_grad=requires_grad)


def np_logsigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_log_softmax(x, axis=1):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def _data(rng):
    """Inputs for every loss; values are bounded away from the hinge/threshold points."""
    x = rng.uniform(-2, 2, (4, 5))
    y = x + rng.choice([-1, 1], (4, 5)) * rng.uniform(0.1, 1.6, (4, 5))  # |x - y| avoids 0 and the beta/delta knots
    sign = rng.choice([-1.0, 1.0], 4)
    return dict(
        x=x, y=y, sign=sign,
        p=rng.uniform(0.05, 0.95, (4, 5)), q=rng.uniform(0.0, 1.0, (4, 5)), w=rng.uniform(0.5, 2.0, 5),
        logp=np_log_softmax(rng.standard_normal((4, 5))), prob=np.exp(np_log_softmax(rng.standard_normal((4, 5)))),
        rate=rng.uniform(0.1, 4.0, (4, 5)), counts=rng.integers(0, 6, (4, 5)).astype(np.float64),
        var=rng.uniform(0.2, 2.0, (4, 5)), a=rng.standard_normal((4, 6)), b=rng.standard_normal((4, 6)),
        n=rng.standard_normal((4, 6)), cls=np.array([0, 3, 4, 1]), labels=(rng.uniform(size=(4, 5)) > 0.5) * 1.0,
    )


def ref_smooth_l1(d, beta):
    a = np.abs(d["x"] - d["y"])
    return np.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


def ref_huber(d, delta):
    a = np.abs(d["x"] - d["y"])
    return np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))


def ref_bce(d):
    return -d["w"] * (d["q"] * np.maximum(np.log(d["p"]), -100) + (1 - d["q"]) * np.maximum(np.log(1 - d["p"]), -100))


def ref_kl(d, log_target):
    if log_target:
        lt = np.log(d["prob"])
        return np.exp(lt) * (lt - d["logp"])
    t = d["prob"].copy()
    t[0, 0] = 0.0  # a zero target contributes 0 (0 * log 0 := 0)
    return np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * d["logp"]


def ref_poisson(d, log_input, full):
    x, t = (d["x"], d["counts"]) if log_input else (d["rate"], d["counts"])
    loss = np.exp(x) - t * x if log_input else x - t * np.log(x + 1e-8)
    if full:
        safe = np.where(t > 1, t, 1)
        loss = loss + np.where(t > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0)
    return loss


def ref_gaussian(d, full):
    v = np.maximum(d["var"], 1e-6)
    return 0.5 * (np.log(v) + (d["x"] - d["y"]) ** 2 / v) + (0.5 * math.log(2 * math.pi) if full else 0)


def ref_margin_ranking(d, margin):
    return np.maximum(0, -d["sign"] * (d["a"][:, 0] - d["b"][:, 0]) + margin)


def ref_hinge(d, margin):
    t = np.tile(d["sign"][:, None], (1, 5))
    return np.where(t == 1, d["x"], np.maximum(0, margin - d["x"]))


def ref_cosine_emb(d, margin):
    a, b = d["a"], d["b"]
    cos = (a * b).sum(1) / np.sqrt(((a * a).sum(1) + 1e-12) * ((b * b).sum(1) + 1e-12))
    return np.where(d["sign"] == 1, 1 - cos, np.maximum(0, cos - margin))


def ref_triplet(d, margin, p, swap):
    def dist(u, v):
        return (np.abs(u - v + 1e-6) ** p).sum(-1) ** (1 / p)

    dp, dn = dist(d["a"], d["b"]), dist(d["a"], d["n"])
    if swap:
        dn = np.minimum(dn, dist(d["b"], d["n"]))
    return np.maximum(dp - dn + margin, 0)


def ref_multi_margin(d, p, margin, weighted):
    x, y = d["x"], d["cls"]
    out = np.zeros(len(y))
    for n in range(len(y)):
        for i in range(x.shape[1]):
            if i != y[n]:
                z = max(0.0, margin - x[n, y[n]] + x[n, i]) ** p
                out[n] += z * (d["w"][y[n]] if weighted else 1.0)
    return out / x.shape[1]


def ref_soft_margin(d):
    t = np.where(d["labels"] > 0, 1.0, -1.0)
    return np.logaddexp(0.0, -t * d["x"])


def ref_multilabel_soft_margin(d, weighted):
    x, t = d["x"], d["labels"]
    loss = -(t * np_logsigmoid(x) + (1 - t) * np_logsigmoid(-x))
    if weighted:
        loss = loss * d["w"]
    return loss.mean(1)


# name, call(F-or-module-kwargs) -> loss; reference per-element loss; differentiable input names
LOSSES = [
    ("smooth_l1", lambda T, r: F.smooth_l1_loss(T["x"], T["y"], reduction=r, beta=0.8),
     lambda T, r: nn.SmoothL1Loss(reduction=r, beta=0.8)(T["x"], T["y"]), lambda d: ref_smooth_l1(d, 0.8), "xy"),
    ("smooth_l1_beta0", lambda T, r: F.smooth_l1_loss(T["x"], T["y"], reduction=r, beta=0.0), None,
     lambda d: np.abs(d["x"] - d["y"]), "xy"),
    ("huber", lambda T, r: F.huber_loss(T["x"], T["y"], reduction=r, delta=0.7),
     lambda T, r: nn.HuberLoss(reduction=r, delta=0.7)(T["x"], T["y"]), lambda d: ref_huber(d, 0.7), "xy"),
    ("bce", lambda T, r: F.binary_cross_entropy(T["p"], T["q"], T["w"], reduction=r),
     lambda T, r: nn.BCELoss(T["w"], reduction=r)(T["p"], T["q"]), ref_bce, "pq"),
    ("kl_div", lambda T, r: F.kl_div(T["logp"], T["prob0"], reduction=r),
     lambda T, r: nn.KLDivLoss(reduction=r)(T["logp"], T["prob0"]), lambda d: ref_kl(d, False), ["logp"]),
    ("kl_div_log_target", lambda T, r: F.kl_div(T["logp"], T["prob"].log(), reduction=r, log_target=True),
     lambda T, r: nn.KLDivLoss(reduction=r, log_target=True)(T["logp"], T["prob"].log()),
     lambda d: ref_kl(d, True), ["logp", "prob"]),
    ("poisson", lambda T, r: F.poisson_nll_loss(T["x"], T["counts"], reduction=r),
     lambda T, r: nn.PoissonNLLLoss(reduction=r)(T["x"], T["counts"]), lambda d: ref_poisson(d, True, False), "x"),
    ("poisson_rate_full", lambda T, r: F.poisson_nll_loss(T["rate"], T["counts"], log_input=False, full=True,
                                                          reduction=r),
     lambda T, r: nn.PoissonNLLLoss(log_input=False, full=True, reduction=r)(T["rate"], T["counts"]),
     lambda d: ref_poisson(d, False, True), ["rate"]),
    ("gaussian_nll", lambda T, r: F.gaussian_nll_loss(T["x"], T["y"], T["var"], reduction=r),
     lambda T, r: nn.GaussianNLLLoss(reduction=r)(T["x"], T["y"], T["var"]), lambda d: ref_gaussian(d, False),
     ["x", "y", "var"]),
    ("gaussian_nll_full", lambda T, r: F.gaussian_nll_loss(T["x"], T["y"], T["var"], full=True, reduction=r),
     lambda T, r: nn.GaussianNLLLoss(full=True, reduction=r)(T["x"], T["y"], T["var"]),
     lambda d: ref_gaussian(d, True), ["var"]),
    ("margin_ranking", lambda T, r: F.margin_ranking_loss(T["a"][:, 0], T["b"][:, 0], T["sign"], 0.3, reduction=r),
     lambda T, r: nn.MarginRankingLoss(0.3, reduction=r)(T["a"][:, 0], T["b"][:, 0], T["sign"]),
     lambda d: ref_margin_ranking(d, 0.3), "ab"),
    ("hinge_embedding", lambda T, r: F.hinge_embedding_loss(T["x"], T["sign"].unsqueeze(1).expand(4, 5), 1.2,
                                                            reduction=r),
     lambda T, r: nn.HingeEmbeddingLoss(1.2, reduction=r)(T["x"], T["sign"].unsqueeze(1).expand(4, 5)),
     lambda d: ref_hinge(d, 1.2), "x"),
    ("cosine_embedding", lambda T, r: F.cosine_embedding_loss(T["a"], T["b"], T["sign"], 0.1, reduction=r),
     lambda T, r: nn.CosineEmbeddingLoss(0.1, reduction=r)(T["a"], T["b"], T["sign"]),
     lambda d: ref_cosine_emb(d, 0.1), "ab"),
    ("triplet", lambda T, r: F.triplet_margin_loss(T["a"], T["b"], T["n"], margin=3.0, reduction=r),
     lambda T, r: nn.TripletMarginLoss(margin=3.0, reduction=r)(T["a"], T["b"], T["n"]),
     lambda d: ref_triplet(d, 3.0, 2, False), "abn"),
    ("triplet_p1_swap", lambda T, r: F.triplet_margin_loss(T["a"], T["b"], T["n"], margin=5.0, p=1, swap=True,
                                                           reduction=r),
     lambda T, r: nn.TripletMarginLoss(margin=5.0, p=1, swap=True, reduction=r)(T["a"], T["b"], T["n"]),
     lambda d: ref_triplet(d, 5.0, 1, True), "abn"),
    ("triplet_with_distance", lambda T, r: F.triplet_margin_with_distance_loss(T["a"], T["b"], T["n"], margin=3.0,
                                                                               reduction=r),
     lambda T, r: nn.TripletMarginWithDistanceLoss(margin=3.0, reduction=r)(T["a"], T["b"], T["n"]),
     lambda d: ref_triplet(d, 3.0, 2, False), "abn"),
    ("multi_margin", lambda T, r: F.multi_margin_loss(T["x"], T["cls"], reduction=r),
     lambda T, r: nn.MultiMarginLoss(reduction=r)(T["x"], T["cls"]), lambda d: ref_multi_margin(d, 1, 1.0, False),
     "x"),
    ("multi_margin_p2_weight", lambda T, r: F.multi_margin_loss(T["x"], T["cls"], p=2, margin=0.5, weight=T["w"],
                                                                reduction=r),
     lambda T, r: nn.MultiMarginLoss(p=2, margin=0.5, weight=T["w"], reduction=r)(T["x"], T["cls"]),
     lambda d: ref_multi_margin(d, 2, 0.5, True), "x"),
    ("soft_margin", lambda T, r: F.soft_margin_loss(T["x"], T["pm"], reduction=r),
     lambda T, r: nn.SoftMarginLoss(reduction=r)(T["x"], T["pm"]), ref_soft_margin, "x"),
    ("multilabel_soft_margin", lambda T, r: F.multilabel_soft_margin_loss(T["x"], T["labels"], T["w"], reduction=r),
     lambda T, r: nn.MultiLabelSoftMarginLoss(T["w"], reduction=r)(T["x"], T["labels"]),
     lambda d: ref_multilabel_soft_margin(d, True), "x"),
]


def _tensors(d, grad_names=()):
    T = {k: (bp.tensor(v) if k == "cls" else t64(v, k in grad_names)) for k, v in d.items()}
    prob0 = d["prob"].copy()
    prob0[0, 0] = 0.0
    T["prob0"] = t64(prob0, "prob0" in grad_names)
    T["pm"] = t64(np.where(d["labels"] > 0, 1.0, -1.0))
    return T


def _avoid_kinks(name, d):
    """Keep finite differences off the hinges: nudge inputs whose margin term sits near 0."""
    if name.startswith("multi_margin"):
        x = d["x"]
        for n, y in enumerate(d["cls"]):
            z = (0.5 if "p2" in name else 1.0) - x[n, y] + x[n]
            x[n] += np.where(np.abs(z) < 0.05, 0.1, 0.0) * (np.arange(5) != y)
    if name.startswith("hinge"):
        d["x"] = np.where(np.abs(1.2 - d["x"]) < 0.05, d["x"] + 0.1, d["x"])


@pytest.mark.parametrize("name,func,module,ref,grads", LOSSES, ids=[row[0] for row in LOSSES])
def test_loss_values_for_every_reduction(name, func, module, ref, grads, rng):
    d = _data(rng)
    _avoid_kinks(name, d)
    T = _tensors(d)
    want = ref(d)
    np.testing.assert_allclose(func(T, "none").numpy(), want, rtol=1e-10, atol=1e-12)
    assert func(T, "sum").item() == pytest.approx(want.sum(), rel=1e-10)
    with pytest.warns(UserWarning, match="batchmean") if "kl_div" in name else _nothing():
        got = func(T, "mean").item()
    assert got == pytest.approx(want.mean(), rel=1e-10)
    if module is not None:
        for r in ("none", "sum"):
            np.testing.assert_allclose(module(T, r).numpy(), func(T, r).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        func(T, "average")


@pytest.mark.parametrize("name,func,module,ref,grads", LOSSES, ids=[row[0] for row in LOSSES])
def test_loss_gradients(name, func, module, ref, grads, rng):
    d = _data(rng)
    _avoid_kinks(name, d)
    names = list(grads)
    T = _tensors(d, names)

    def f(*xs):
        U = dict(T)
        U.update(zip(names, xs))
        return func(U, "sum")

    assert bp.autograd.gradcheck(f, [T[k] for k in names])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_kl_div_batchmean_is_the_kl_divergence(rng):
    p = np.exp(np_log_softmax(rng.standard_normal((3, 4))))
    q = np.exp(np_log_softmax(rng.standard_normal((3, 4))))
    kl = (p * np.log(p / q)).sum() / 3
    assert F.kl_div(t64(np.log(q)), t64(p), reduction="batchmean").item() == pytest.approx(kl, rel=1e-10)
    assert nn.KLDivLoss(reduction="batchmean")(t64(np.log(q)), t64(p)).item() == pytest.approx(kl, rel=1e-10)


def np_cross_entropy(x, t, w=None, ignore=-100, red="mean", ls=0.0):
    """PyTorch's documented formula for class-index targets (N, C, d...), incl. weights, ignore_index
    and label smoothing: the smoothed part is weighted per class and the mean divides by the
    summed target weights of the kept samples."""
    c = x.shape[1]
    lp = np_log_softmax(x, 1)
    w = np.ones(c) if w is None else w
    keep = t != ignore
    tt = np.where(keep, t, 0)
    picked = np.take_along_axis(lp, tt[:, None], 1)[:, 0]
    nll = -picked * w[tt] * keep
    smooth = -(lp * w.reshape([1, c] + [1] * (x.ndim - 2))).sum(1) * keep
    loss = (1 - ls) * nll + ls / c * smooth
    if red == "none":
        return loss
    if red == "sum":
        return loss.sum()
    return loss.sum() / (w[tt] * keep).sum()


@pytest.mark.parametrize("weighted,ls,red", [(False, 0.0, "mean"), (True, 0.0, "mean"), (True, 0.2, "mean"),
                                             (False, 0.1, "sum"), (True, 0.3, "none"), (True, 0.0, "sum")])
def test_cross_entropy_and_nll_with_every_option(weighted, ls, red, rng):
    x = rng.standard_normal((6, 4, 3))  # (N, C, d1)
    t = rng.integers(0, 4, (6, 3))
    t[0, 1] = t[3, 2] = -100
    w = rng.uniform(0.5, 2.0, 4) if weighted else None
    want = np_cross_entropy(x, t, w, -100, red, ls)
    wt = t64(w) if weighted else None
    got = F.cross_entropy(t64(x), bp.tensor(t), wt, ignore_index=-100, reduction=red, label_smoothing=ls)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    m = nn.CrossEntropyLoss(wt, ignore_index=-100, reduction=red, label_smoothing=ls)
    np.testing.assert_allclose(m(t64(x), bp.tensor(t)).numpy(), want, rtol=1e-10)
    if ls == 0.0:
        got_nll = nn.NLLLoss(wt, reduction=red)(t64(np_log_softmax(x, 1)), bp.tensor(t))
        np.testing.assert_allclose(got_nll.numpy(), want, rtol=1e-10)
    # another ignore_index value
    t2 = np.where(t == -100, 2, t)
    np.testing.assert_allclose(F.cross_entropy(t64(x), bp.tensor(t2), wt, ignore_index=2, reduction=red,
                                               label_smoothing=ls).numpy(),
                               np_cross_entropy(x, t2, w, 2, red, ls), rtol=1e-10)
    xs = t64(x[:2, :, :2], True)
    assert bp.autograd.gradcheck(lambda a: F.cross_entropy(a, bp.tensor(t[:2, :2]), wt, reduction=red,
                                                           label_smoothing=ls), [xs])


@pytest.mark.parametrize("ls", [0.0, 0.25])
def test_cross_entropy_with_class_probabilities(ls, rng):
    x = rng.standard_normal((5, 4))
    p = np.exp(np_log_softmax(rng.standard_normal((5, 4))))
    w = rng.uniform(0.5, 2.0, 4)
    ps = p * (1 - ls) + ls / 4
    per = -(ps * np_log_softmax(x) * w).sum(1)
    np.testing.assert_allclose(F.cross_entropy(t64(x), t64(p), t64(w), label_smoothing=ls, reduction="none").numpy(),
                               per, rtol=1e-10)
    # mean over samples (not over weights) for probability targets, as PyTorch documents
    assert F.cross_entropy(t64(x), t64(p), t64(w), label_smoothing=ls).item() == pytest.approx(per.mean(), rel=1e-10)
    assert bp.autograd.gradcheck(lambda a, b: F.cross_entropy(a, b, label_smoothing=ls), [t64(x, True), t64(p, True)])


def test_legacy_size_average_and_reduce(rng):
    x, y = t64(rng.standard_normal(6)), t64(rng.standard_normal(6))
    diff = (x.numpy() - y.numpy()) ** 2
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert F.mse_loss(x, y, size_average=False).item() == pytest.approx(diff.sum(), rel=1e-12)
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(F.mse_loss(x, y, reduce=False).numpy(), diff, rtol=1e-12)
    with pytest.warns(UserWarning):
        assert nn.L1Loss(size_average=False).reduction == "sum"
    assert nn.CrossEntropyLoss(None, None, 3).ignore_index == 3  # PyTorch's positional order


def test_loss_argument_errors(rng):
    p = t64(rng.uniform(0.1, 0.9, 4))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(p * 2, p)
    with pytest.raises(ValueError, match="different to the input size"):
        F.binary_cross_entropy(p, p[:3])
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(t64(np.zeros((4, 3))), t64(np.zeros((4, 3))), t64(np.ones((2, 3))))
    with pytest.raises(ValueError, match="var has negative"):
        F.gaussian_nll_loss(p, p, -p)
    with pytest.raises(ValueError, match="only p == 1 and p == 2"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="margin to be greater than 0"):
        nn.TripletMarginLoss(margin=0.0)
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(p, p, beta=-1.0)


def test_gaussian_nll_var_shapes_and_clamped_gradient(rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    v = rng.uniform(0.5, 1.5, 4)
    want = 0.5 * (np.log(v[:, None]) + (x - y) ** 2 / v[:, None])
    for var in (t64(v), t64(v[:, None])):  # one fewer dim, or a last dim of 1
        np.testing.assert_allclose(F.gaussian_nll_loss(t64(x), t64(y), var, reduction="none").numpy(), want,
                                   rtol=1e-10)
    assert F.gaussian_nll_loss(t64(x), t64(y), 2.0).item() == pytest.approx(
        (0.5 * (np.log(2.0) + (x - y) ** 2 / 2.0)).mean(), rel=1e-10)
    # a variance below eps is clamped in value, but the gradient passes as if unclamped (PyTorch's no_grad clamp)
    var = t64([1e-9], True)
    F.gaussian_nll_loss(t64([0.5]), t64([0.0]), var, reduction="sum").backward()
    eps = 1e-6
    assert var.grad.item() == pytest.approx(0.5 * (1 / eps - 0.25 / eps ** 2), rel=1e-8)


def test_multi_margin_1d_input_and_weight_buffer(rng):
    x = rng.standard_normal(5)
    m = nn.MultiMarginLoss(weight=bp.ones(5, dtype=bp.float64))
    assert "weight" in dict(m.named_buffers())
    want = sum(max(0, 1 - x[2] + x[i]) for i in range(5) if i != 2) / 5
    assert m(t64(x), bp.tensor(2)).item() == pytest.approx(want, rel=1e-10)
