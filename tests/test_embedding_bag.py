"""nn.EmbeddingBag / F.embedding_bag against a NumPy reference written from PyTorch's documented
semantics (bags from 2-D rows or 1-D offsets, include_last_offset, padding_idx left out,
per_sample_weights, empty bags as zeros), forward and gradient (the reference's own gradient
loop), plus gradcheck and the argument errors."""

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn.functional as F


def ref_bags(ids, offsets, include_last_offset):
    ids = np.asarray(ids)
    if ids.ndim == 2:
        return [list(r) for r in ids], [list(range(k * ids.shape[1], (k + 1) * ids.shape[1]))
                                        for k in range(ids.shape[0])]
    offs = list(offsets)
    ends = offs[1:] if include_last_offset else offs[1:] + [len(ids)]
    starts = offs[:-1] if include_last_offset else offs
    return [list(ids[s:e]) for s, e in zip(starts, ends)], [list(range(s, e)) for s, e in zip(starts, ends)]


def ref_embedding_bag(w, ids, offsets, mode, psw=None, padding_idx=None, include_last_offset=False, grad_out=None):
    """Forward and, given grad_out, the gradients of weight and per_sample_weights."""
    bags, positions = ref_bags(ids, offsets, include_last_offset)
    flat_psw = None if psw is None else np.asarray(psw).reshape(-1)
    out = np.zeros((len(bags), w.shape[1]))
    gw, gp = np.zeros_like(w), None if psw is None else np.zeros(flat_psw.shape)
    for b, (bag, pos) in enumerate(zip(bags, positions)):
        kept = [(i, p) for i, p in zip(bag, pos) if i != padding_idx]
        if not kept:
            continue
        if mode == "max":
            for d in range(w.shape[1]):
                best = max(range(len(kept)), key=lambda k: (w[kept[k][0], d], -k))  # first of the maxima
                out[b, d] = w[kept[best][0], d]
                if grad_out is not None:
                    gw[kept[best][0], d] += grad_out[b, d]
            continue
        for i, p in kept:
            scale = 1.0 if flat_psw is None else flat_psw[p]
            if mode == "mean":
                scale /= len(kept)
            out[b] += scale * w[i]
            if grad_out is not None:
                gw[i] += scale * grad_out[b]
                if gp is not None:
                    gp[p] += w[i] @ grad_out[b]
    return out, gw, gp


CASES = [
    # ids, offsets, include_last_offset
    (np.array([[1, 2, 4], [4, 3, 0], [2, 2, 2]]), None, False),
    (np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 2, 2, 5]), False),  # bag 1 is empty
    (np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 3, 6, 8]), True),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 4])
def test_embedding_bag_matches_the_reference(case, mode, padding_idx):
    ids, offsets, last = CASES[case]
    rng = np.random.default_rng(case)
    w = rng.standard_normal((10, 3))
    g = rng.standard_normal((len(ref_bags(ids, offsets, last)[0]), 3))
    want, want_gw, _ = ref_embedding_bag(w, ids, offsets, mode, padding_idx=padding_idx, include_last_offset=last,
                                         grad_out=g)
    weight = bp.tensor(w, requires_grad=True)
    out = F.embedding_bag(bp.tensor(ids), weight, None if offsets is None else bp.tensor(offsets), mode=mode,
                          include_last_offset=last, padding_idx=padding_idx)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-13, atol=1e-15)
    out.backward(bp.tensor(g))
    np.testing.assert_allclose(weight.grad.numpy(), want_gw, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_per_sample_weights_in_sum_mode(case):
    ids, offsets, last = CASES[case]
    rng = np.random.default_rng(10 + case)
    w, psw = rng.standard_normal((10, 4)), rng.standard_normal(ids.shape)
    g = rng.standard_normal((len(ref_bags(ids, offsets, last)[0]), 4))
    want, want_gw, want_gp = ref_embedding_bag(w, ids, offsets, "sum", psw, include_last_offset=last, grad_out=g)
    weight, p = bp.tensor(w, requires_grad=True), bp.tensor(psw, requires_grad=True)
    off = None if offsets is None else bp.tensor(offsets)
    out = F.embedding_bag(bp.tensor(ids), weight, off, mode="sum", per_sample_weights=p, include_last_offset=last)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-13, atol=1e-15)
    out.backward(bp.tensor(g))
    np.testing.assert_allclose(weight.grad.numpy(), want_gw, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(p.grad.numpy(), want_gp.reshape(psw.shape), rtol=1e-13, atol=1e-15)
    assert bp.autograd.gradcheck(
        lambda a, b: F.embedding_bag(bp.tensor(ids), a, off, mode="sum", per_sample_weights=b,
                                     include_last_offset=last), (bp.tensor(w, requires_grad=True),
                                                                 bp.tensor(psw, requires_grad=True)))


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_gradcheck(mode):
    rng = np.random.default_rng(5)
    w = bp.tensor(rng.standard_normal((6, 2)), requires_grad=True)
    ids, offs = bp.tensor([0, 3, 3, 5, 1, 2]), bp.tensor([0, 1, 4])
    assert bp.autograd.gradcheck(lambda x: F.embedding_bag(ids, x, offs, mode=mode), (w,))


def test_module_names_init_and_from_pretrained():
    bp.manual_seed(0)
    m = bp.nn.EmbeddingBag(20, 5, mode="sum", padding_idx=-1)
    assert [n for n, _ in m.named_parameters()] == ["weight"] and tuple(m.weight.shape) == (20, 5)
    assert m.padding_idx == 19 and np.all(m.weight.detach().numpy()[19] == 0)
    w = m.weight.detach().numpy()
    assert 0.7 < w[:19].std() < 1.3  # N(0, 1)
    ids, offs = bp.tensor([1, 19, 3, 4]), bp.tensor([0, 2])
    np.testing.assert_allclose(m(ids, offs).detach().numpy(), [w[1], w[3] + w[4]], rtol=1e-6)
    assert "mode=sum" in repr(m)
    pre = bp.tensor(np.arange(12.0).reshape(4, 3))
    frozen = bp.nn.EmbeddingBag.from_pretrained(pre, mode="max")
    assert not frozen.weight.requires_grad and frozen.mode == "max"
    np.testing.assert_array_equal(frozen(bp.tensor([[0, 3], [1, 2]])).numpy(), [[9, 10, 11], [6, 7, 8]])
    assert bp.nn.EmbeddingBag.from_pretrained(pre, freeze=False).weight.requires_grad
    sd = m.state_dict()
    assert list(sd) == ["weight"]


def test_max_norm_renormalises_looked_up_rows():
    w = bp.tensor([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]])
    out = F.embedding_bag(bp.tensor([[0, 1]]), w, max_norm=1.0, mode="sum")
    np.testing.assert_allclose(out.numpy(), [[0.6 + 0.3, 0.8 + 0.4]], rtol=1e-5)
    np.testing.assert_allclose(w.numpy()[2], [6.0, 8.0])  # not looked up: untouched


@pytest.mark.parametrize("call", [
    lambda w: F.embedding_bag(bp.tensor([1, 2]), w),  # 1-D without offsets
    lambda w: F.embedding_bag(bp.tensor([[1, 2]]), w, bp.tensor([0])),  # 2-D with offsets
    lambda w: F.embedding_bag(bp.tensor([1, 2]), w, bp.tensor([1])),  # offsets[0] != 0
    lambda w: F.embedding_bag(bp.tensor([1, 2]), w, bp.tensor([0]), mode="mean",
                              per_sample_weights=bp.ones(2)),  # weights outside sum mode
    lambda w: F.embedding_bag(bp.tensor([1, 2]), w, bp.tensor([0]), mode="median"),
    lambda w: F.embedding_bag(bp.tensor([1, 2]), w, bp.tensor([0, 3])),  # offset past the end
])
def test_errors(call):
    with pytest.raises((ValueError, RuntimeError, NotImplementedError)):
        call(bp.ones(4, 2))
