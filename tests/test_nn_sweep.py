"""The second sweep of ``torch.nn`` layers: padding, fold/unfold, distances, 3-d norms, channel
shuffle, RReLU, LP pooling, max unpooling, lazy layers, SyncBatchNorm, multilabel margin loss —
each against NumPy or the layer's definition."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp

nn = bp.nn
F = nn.functional


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def test_padding_layers_against_numpy_pad(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    t = bp.tensor(x)
    pads = (1, 2, 2, 1)  # left, right, top, bottom
    np_pad = [(0, 0), (0, 0), (2, 1), (1, 2)]
    for layer, mode in [(nn.ReflectionPad2d, "reflect"), (nn.ReplicationPad2d, "edge"), (nn.CircularPad2d, "wrap"),
                        (nn.ZeroPad2d, "constant")]:
        np.testing.assert_array_equal(layer(pads)(t).numpy(), np.pad(x, np_pad, mode=mode), err_msg=mode)
    np.testing.assert_array_equal(nn.ConstantPad2d(pads, 2.5)(t).numpy(), np.pad(x, np_pad, constant_values=2.5))
    y = rng.normal(size=(2, 3, 6))
    np.testing.assert_array_equal(nn.ReflectionPad1d(2)(bp.tensor(y)).numpy(), np.pad(y, [(0, 0), (0, 0), (2, 2)],
                                                                                  mode="reflect"))
    z = rng.normal(size=(1, 2, 3, 4, 5))
    np.testing.assert_array_equal(nn.ReplicationPad3d(1)(bp.tensor(z)).numpy(),
                                  np.pad(z, [(0, 0), (0, 0), (1, 1), (1, 1), (1, 1)], mode="edge"))
    assert repr(nn.ZeroPad2d(1)) == "ZeroPad2d((1, 1, 1, 1))"


def test_fold_unfold_distances_and_channel_shuffle(rng):
    x = bp.tensor(rng.normal(size=(2, 3, 5, 6)))
    cols = nn.Unfold(2, padding=1, stride=2)(x)
    np.testing.assert_array_equal(cols.numpy(), F.unfold(x, 2, 1, 1, 2).numpy())
    back = nn.Fold((5, 6), 2, padding=1, stride=2)(cols)
    np.testing.assert_array_equal(back.numpy(), F.fold(cols, (5, 6), 2, 1, 1, 2).numpy())
    a, b = rng.normal(size=(4, 7)), rng.normal(size=(4, 7))
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-8)
    np.testing.assert_allclose(nn.CosineSimilarity()(bp.tensor(a), bp.tensor(b)).numpy(), cos, rtol=1e-10)
    np.testing.assert_allclose(nn.PairwiseDistance(p=3)(bp.tensor(a), bp.tensor(b)).numpy(),
                               (np.abs(a - b + 1e-6) ** 3).sum(1) ** (1 / 3), rtol=1e-10)
    pts = rng.normal(size=(5, 3))
    i, j = np.triu_indices(5, 1)
    np.testing.assert_allclose(F.pdist(bp.tensor(pts)).numpy(), np.linalg.norm(pts[i] - pts[j], axis=1), rtol=1e-10)
    c = rng.normal(size=(2, 6, 2, 2))
    want = c.reshape(2, 3, 2, 2, 2).transpose(0, 2, 1, 3, 4).reshape(2, 6, 2, 2)
    np.testing.assert_array_equal(nn.ChannelShuffle(3)(bp.tensor(c)).numpy(), want)
    with pytest.raises(RuntimeError, match="divisible"):
        F.channel_shuffle(bp.tensor(c), 4)


def test_three_d_norms(rng):
    x = rng.normal(size=(3, 2, 4, 3, 5))
    bn = nn.BatchNorm3d(2)
    mean = x.mean((0, 2, 3, 4), keepdims=True)
    var = x.var((0, 2, 3, 4), keepdims=True)
    np.testing.assert_allclose(bn(bp.tensor(x, dtype=bp.float32)).detach().numpy(), (x - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean.reshape(-1), rtol=1e-4, atol=1e-6)
    m = x.mean((2, 3, 4), keepdims=True)
    v = x.var((2, 3, 4), keepdims=True)
    np.testing.assert_allclose(nn.InstanceNorm3d(2)(bp.tensor(x, dtype=bp.float32)).numpy(), (x - m) / np.sqrt(v + 1e-5),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="5D"):
        bn(bp.randn(2, 2, 3))


def test_rrelu_lp_pool_and_unpool(rng):
    x = bp.tensor(rng.normal(size=(1000,)))
    r = nn.RReLU(0.1, 0.3)
    r.eval()
    np.testing.assert_allclose(r(x).numpy(), np.where(x.numpy() >= 0, x.numpy(), 0.2 * x.numpy()), rtol=1e-12)
    r.train()
    y = r(x).numpy()
    neg = x.numpy() < 0
    slopes = y[neg] / x.numpy()[neg]
    assert slopes.min() >= 0.1 - 1e-12 and slopes.max() <= 0.3 + 1e-12 and slopes.std() > 0.03
    np.testing.assert_array_equal(y[~neg], x.numpy()[~neg])
    p = np.abs(rng.normal(size=(1, 2, 4, 6)))
    want = (p.reshape(1, 2, 2, 2, 3, 2) ** 3).sum((3, 5)) ** (1 / 3)
    np.testing.assert_allclose(nn.LPPool2d(3, 2)(bp.tensor(p)).numpy(), want, rtol=1e-10)
    q = np.abs(rng.normal(size=(2, 3, 8)))
    np.testing.assert_allclose(nn.LPPool1d(2, 4, stride=2)(bp.tensor(q)).numpy(),
                               np.sqrt(np.stack([(q[..., s:s + 4] ** 2).sum(-1) for s in (0, 2, 4)], -1)), rtol=1e-10)
    img = bp.tensor(rng.normal(size=(2, 3, 4, 6)))
    pooled, idx = F.max_pool2d(img, 2, return_indices=True)
    up = nn.MaxUnpool2d(2)(pooled, idx).numpy()
    a = img.numpy()
    blocks = a.reshape(2, 3, 2, 2, 3, 2)
    keep = blocks == blocks.max((3, 5), keepdims=True)
    np.testing.assert_array_equal(up, np.where(keep, blocks, 0.0).reshape(2, 3, 4, 6))
    p1, i1 = F.max_pool1d(bp.tensor(q), 2, return_indices=True)
    u1 = nn.MaxUnpool1d(2)(p1, i1).numpy()
    assert u1.shape == q.shape and np.array_equal(u1.max(-1), q.max(-1))


def test_lazy_layers_materialise_on_first_call():
    bp.manual_seed(0)
    lin = nn.LazyLinear(3)
    assert lin.has_uninitialized_params()
    y = lin(bp.randn(4, 7))
    assert type(lin) is nn.Linear and lin.weight.shape == (3, 7) and y.shape == (4, 3)
    assert sorted(lin.state_dict()) == ["bias", "weight"]
    opt = bp.optim.SGD(lin.parameters(), lr=0.1)
    lin(bp.randn(2, 7)).sum().backward()
    before = lin.weight.detach().clone()
    opt.step()
    assert not bp.equal(before, lin.weight)
    net = nn.Sequential(nn.LazyConv2d(5, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU())
    out = net(bp.randn(2, 4, 6, 6))
    assert out.shape == (2, 5, 6, 6) and type(net[0]) is nn.Conv2d and net[0].weight.shape == (5, 4, 3, 3)
    assert type(net[1]) is nn.BatchNorm2d and net[1].running_mean.shape == (5,)


def test_sync_batchnorm_is_batchnorm_in_one_process():
    bp.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ref = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ref.load_state_dict(model.state_dict())
    weight = model[1].weight
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert type(model[1]) is nn.SyncBatchNorm and model[1].weight is weight
    x = bp.randn(6, 3)
    np.testing.assert_allclose(model(x).detach().numpy(), ref(x).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(model[1].running_var.numpy(), ref[1].running_var.numpy(), rtol=1e-6)


def _np_multilabel_margin(x, y):
    out = []
    for row, tgt in zip(x, y):
        targets = []
        for v in tgt:
            if v < 0:
                break
            targets.append(v)
        others = [i for i in range(len(row)) if i not in targets]
        out.append(sum(max(0.0, 1 - (row[j] - row[i])) for j in targets for i in others) / len(row))
    return np.array(out)


def test_multilabel_margin_loss(rng):
    assert F.multilabel_margin_loss(bp.tensor([[0.1, 0.2, 0.4, 0.8]]), bp.tensor([[3, 0, -1, 1]])).item() == \
        pytest.approx(0.85)  # PyTorch's documented example
    x = rng.normal(size=(5, 6))
    y = np.array([[1, 4, -1, 0, 0, 0], [0, -1, 2, 2, 2, 2], [5, 4, 3, 2, 1, 0], [-1, 1, 1, 1, 1, 1], [2, 2, -1, 3, 3, 3]])
    got = nn.MultiLabelMarginLoss(reduction="none")(bp.tensor(x), bp.tensor(y)).numpy()
    np.testing.assert_allclose(got, _np_multilabel_margin(x, y), rtol=1e-10)
    xt = bp.tensor(x, requires_grad=True)
    assert bp.autograd.gradcheck(lambda a: F.multilabel_margin_loss(a, bp.tensor(y)), (xt,))


def test_in_place_activations():
    x = bp.randn(5)
    want_silu, want_mish = F.silu(x), F.mish(x)
    a, b = x.clone(), x.clone()
    assert F.silu_(a) is a and F.mish_(b) is b
    np.testing.assert_array_equal(a.numpy(), want_silu.numpy())
    np.testing.assert_array_equal(b.numpy(), want_mish.numpy())


def test_conv_transpose3d_and_adaptive_max_pool3d_layers():
    bp.manual_seed(0)
    up = nn.ConvTranspose3d(4, 2, 3, stride=2, padding=1)
    x = bp.randn(2, 4, 3, 3, 3)
    assert up(x).shape == (2, 2, 5, 5, 5)
    assert up(x, output_size=(6, 6, 6)).shape == (2, 2, 6, 6, 6)
    # the transposed convolution is the adjoint of the convolution with the same weight
    y = bp.randn(2, 2, 5, 5, 5)
    lhs = (up(x) - up.bias.reshape(1, -1, 1, 1, 1)).mul(y).sum().item()
    rhs = (F.conv3d(y, up.weight, None, stride=2, padding=1) * x).sum().item()
    assert abs(lhs - rhs) < 1e-3 * max(1.0, abs(lhs))
    pool = nn.AdaptiveMaxPool3d((1, 2, None))
    assert pool(x).shape == (2, 4, 1, 2, 3)
    np.testing.assert_array_equal(nn.AdaptiveMaxPool3d(1)(x).flatten(1).numpy(), x.numpy().max((2, 3, 4)))
