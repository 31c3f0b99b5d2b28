"""nn: Module mechanics, each layer's forward vs NumPy, gradchecks through layers, init."""

import math
from collections import OrderedDict

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn as nn
import backprop_rs.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)
        self.register_buffer("scale", bp.ones(3))
        self.plain = 5  # not registered

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in net.named_buffers()] == ["scale"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert len(list(net.modules())) == 4
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert set(net.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "scale"}
    assert net.plain == 5
    assert "fc1" in dir(net)


def test_train_eval_propagates():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(2)))
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_requires_grad():
    net = Net()
    net(bp.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    x = bp.randn(5, 4)
    assert not np.allclose(a(x).detach().numpy(), b(x).detach().numpy())
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    sd = a.state_dict()
    del sd["fc1.bias"]
    sd["extra"] = bp.ones(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "fc1.bias".*\n.*Unexpected key\(s\) in state_dict: "extra"'):
        b.load_state_dict(sd)
    res = b.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc1.bias"] and res.unexpected_keys == ["extra"]
    sd = a.state_dict()
    sd["fc2.weight"] = bp.ones(2, 2)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc2.weight: copying a param with shape \(2, 2\).*\(3, 8\)"):
        b.load_state_dict(sd)


def test_repr():
    r = repr(nn.Sequential(nn.Linear(4, 2), nn.ReLU()))
    assert r == "Sequential(\n  (0): Linear(in_features=4, out_features=2, bias=True)\n  (1): ReLU()\n)"
    assert repr(nn.Parameter(bp.zeros(2))).startswith("Parameter containing:\ntensor(")


def test_assigning_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_parameter_shares_memory_with_its_data():
    t = bp.zeros(3)
    p = nn.Parameter(t)
    t[0] = 7.0
    assert p[0].item() == 7.0 and p.requires_grad and p.is_leaf


def test_sequential_indexing_and_ordered_dict():
    s = nn.Sequential(OrderedDict([("a", nn.Linear(2, 3)), ("b", nn.Tanh())]))
    assert isinstance(s[0], nn.Linear) and isinstance(s[-1], nn.Tanh) and len(s) == 2
    assert [n for n, _ in s.named_parameters()] == ["a.weight", "a.bias"]
    assert isinstance(s[0:1], nn.Sequential)


# ------------------------------------------------------------------ layers vs NumPy

def test_linear_forward_and_default_init():
    bp.manual_seed(0)
    lin = nn.Linear(50, 20)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    bound = 1 / math.sqrt(50)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert w.std() > 0.8 * bound / math.sqrt(3)  # uniform(-b, b) has std b/sqrt(3)
    x = np.random.randn(7, 50).astype(np.float32)
    np.testing.assert_allclose(lin(bp.tensor(x)).detach().numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)


def test_layer_norm_forward():
    x = np.random.randn(4, 3, 5)
    ln = nn.LayerNorm([3, 5], dtype=bp.float64)
    with bp.no_grad():
        ln.weight.copy_(bp.tensor(np.random.rand(3, 5)))
        ln.bias.copy_(bp.tensor(np.random.rand(3, 5)))
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    want = (x - mu) / np.sqrt(var + 1e-5) * ln.weight.detach().numpy() + ln.bias.detach().numpy()
    np.testing.assert_allclose(ln(bp.tensor(x)).detach().numpy(), want, rtol=1e-10, atol=1e-12)


def test_batch_norm_train_eval_and_running_stats():
    x = np.random.randn(16, 3) * 2 + 1
    bn = nn.BatchNorm1d(3, dtype=bp.float64)
    y = bn(bp.tensor(x)).detach().numpy()
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-10)
    bn.eval()
    ye = bn(bp.tensor(x)).detach().numpy()
    want_e = (x - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(ye, want_e, rtol=1e-10)
    # 3-d input (N, C, L)
    x3 = np.random.randn(4, 3, 6)
    y3 = nn.BatchNorm1d(3, dtype=bp.float64)(bp.tensor(x3)).detach().numpy()
    np.testing.assert_allclose(y3, (x3 - x3.mean((0, 2), keepdims=True)) / np.sqrt(x3.var((0, 2), keepdims=True) + 1e-5), rtol=1e-9)


def test_embedding_and_activations():
    emb = nn.Embedding(10, 4)
    ids = bp.tensor([[1, 2], [9, 1]])
    out = emb(ids)
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out[1, 1].detach().numpy(), emb.weight[1].detach().numpy())
    x = bp.tensor([[-1.0, 0.5, 2.0]])
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).numpy(), [[-0.1, 0.5, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).sum(1).numpy(), [1.0], rtol=1e-6)
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(x).exp().sum(1).numpy(), [1.0], rtol=1e-6)
    assert nn.Flatten()(bp.zeros(2, 3, 4)).shape == (2, 12)
    assert nn.Identity()(x) is x
    d = nn.Dropout(0.5).eval()
    assert d(x) is x or np.array_equal(d(x).numpy(), x.numpy())
    np.testing.assert_allclose(nn.GELU()(x).numpy(), F.gelu(x).numpy())
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())), rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Linear(3, 2, dtype=bp.float64),
        lambda: nn.LayerNorm(3, dtype=bp.float64),
        lambda: nn.Sequential(nn.Linear(3, 4, dtype=bp.float64), nn.Tanh(), nn.Linear(4, 2, dtype=bp.float64)),
        lambda: nn.BatchNorm1d(3, dtype=bp.float64),
        lambda: nn.Sequential(nn.Linear(3, 3, dtype=bp.float64), nn.GELU(), nn.Softplus()),
    ],
)
def test_layer_gradcheck_wrt_input_and_parameters(make):
    bp.manual_seed(3)
    layer = make()
    x = bp.randn(5, 3, dtype=bp.float64, requires_grad=True)
    params = list(layer.parameters())

    assert bp.autograd.gradcheck(lambda x: layer(x), [x])
    # gradients w.r.t. parameters: compare the layer's grads with finite differences
    loss = (layer(x) ** 2).sum()
    grads = bp.autograd.grad(loss, params)
    for p, g in zip(params, grads):
        num = np.zeros(p.shape)
        base = p.detach().numpy().copy()
        flat = num.reshape(-1)
        for i in range(flat.size):
            for sgn in (1, -1):
                pert = base.copy().reshape(-1)
                pert[i] += sgn * 1e-6
                with bp.no_grad():
                    p.copy_(bp.tensor(pert.reshape(base.shape)))
                    flat[i] += sgn * (layer(x) ** 2).sum().item() / 2e-6
        with bp.no_grad():
            p.copy_(bp.tensor(base))
        np.testing.assert_allclose(g.numpy(), num, rtol=1e-4, atol=1e-6)


def test_init_functions_follow_formulas():
    bp.manual_seed(0)
    w = bp.empty(400, 300)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 300)
    a = w.numpy()
    assert np.abs(a).max() <= bound and abs(a.std() - bound / math.sqrt(3)) < 0.02 * bound
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 400)) < 0.02 * math.sqrt(2 / 400)
    nn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 700)
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2 * math.sqrt(2 / 700)) < 0.02 * 2 * math.sqrt(2 / 700)
    nn.init.zeros_(w)
    assert w.numpy().max() == 0
    nn.init.constant_(w, 0.5)
    assert np.all(w.numpy() == 0.5)
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))


def test_losses_as_modules():
    x = bp.randn(4, 5)
    t = bp.tensor([0, 1, 2, 3])
    assert nn.CrossEntropyLoss()(x, t).item() == pytest.approx(F.cross_entropy(x, t).item())
    ls = nn.CrossEntropyLoss(label_smoothing=0.1)(x, t).item()
    assert ls == pytest.approx(F.cross_entropy(x, t, label_smoothing=0.1).item())
    assert nn.NLLLoss(reduction="sum")(x.log_softmax(1), t).item() == pytest.approx(F.nll_loss(x.log_softmax(1), t, reduction="sum").item())
    y = bp.rand(4, 5)
    assert nn.MSELoss()(x, y).item() == pytest.approx(((x - y) ** 2).mean().item(), rel=1e-6)
    assert nn.L1Loss()(x, y).item() == pytest.approx((x - y).abs().mean().item(), rel=1e-6)
    pw = bp.full((5,), 2.0)
    got = nn.BCEWithLogitsLoss(pos_weight=pw)(x, y).item()
    xn, yn = x.numpy(), y.numpy()
    want = np.mean(-(2 * yn * np.log(1 / (1 + np.exp(-xn))) + (1 - yn) * np.log(1 - 1 / (1 + np.exp(-xn)))))
    assert got == pytest.approx(want, rel=1e-5)


def test_clip_grad_norm():
    a = nn.Parameter(bp.zeros(3))
    b = nn.Parameter(bp.zeros(4))
    a.grad = bp.tensor([3.0, 0.0, 0.0])
    b.grad = bp.tensor([0.0, 4.0, 0.0, 0.0])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0, 0.8, 0, 0], rtol=1e-5)
    total = nn.utils.clip_grad_norm_([a, b], max_norm=10.0, norm_type=float("inf"))
    assert total.item() == pytest.approx(0.8, rel=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0, 0.8, 0, 0], rtol=1e-5)  # under the limit: unchanged


def test_conv_layers_and_lenet():
    bp.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    fan_in = 3 * 9
    assert np.abs(conv.weight.detach().numpy()).max() <= 1 / math.sqrt(fan_in)
    assert conv(bp.randn(2, 3, 10, 10)).shape == (2, 8, 10, 10)
    assert nn.Conv2d(4, 4, 3, stride=2, groups=2)(bp.randn(1, 4, 9, 9)).shape == (1, 4, 4, 4)
    assert nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)(bp.randn(1, 4, 5, 5)).shape == (1, 2, 10, 10)
    out, idx = nn.MaxPool2d(2, return_indices=True)(bp.arange(16).float().reshape(1, 1, 4, 4))
    assert out.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]] and idx.tolist() == [[[[5, 7], [13, 15]]]]
    assert nn.AvgPool2d(2)(bp.ones(1, 1, 4, 4)).tolist() == [[[[1.0, 1.0], [1.0, 1.0]]]]
    # ceil_mode: 5x5 with window 2 -> 3x3, the last row/column of windows partial; indices still
    # point into the 5x5 input (the maxima of arange sit at each window's bottom-right element)
    out, idx = nn.MaxPool2d(2, return_indices=True, ceil_mode=True)(bp.arange(25).float().reshape(1, 1, 5, 5))
    assert idx.tolist() == [[[[6, 8, 9], [16, 18, 19], [21, 23, 24]]]]
    assert out.tolist() == [[[[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]]]
    # a partial window averages only what it covers; divisor_override replaces the count
    assert nn.AvgPool2d(2, ceil_mode=True)(bp.ones(1, 1, 3, 3)).tolist() == [[[[1.0, 1.0], [1.0, 1.0]]]]
    assert nn.AvgPool2d(2, divisor_override=2)(bp.ones(1, 1, 2, 2)).tolist() == [[[[2.0]]]]
    assert nn.AdaptiveAvgPool2d((1, 1))(bp.ones(2, 3, 5, 7)).shape == (2, 3, 1, 1)
    bn = nn.BatchNorm2d(3)
    y = bn(bp.randn(4, 3, 5, 5) * 3 + 2).detach().numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    d2 = nn.Dropout2d(0.5)
    z = d2(bp.ones(8, 16, 3, 3)).numpy()
    assert set(np.unique(z)) <= {0.0, 2.0} and all(len(set(z[i, j].ravel())) == 1 for i in range(8) for j in range(16))
    assert nn.Upsample(scale_factor=2)(bp.arange(4).float().reshape(1, 1, 2, 2)).tolist() == [[[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]]]
    from backprop_rs.models import LeNet5

    net = LeNet5()
    assert net(bp.rand(5, 64)).shape == (5, 10)
    assert "Conv2d(1, 6, kernel_size=(5, 5)" in repr(net)
