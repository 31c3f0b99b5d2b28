"""``nn.utils.parametrize``, ``parametrizations.weight_norm/spectral_norm`` and the hook-based
``weight_norm`` / ``spectral_norm``: values and gradients against NumPy formulas, singular
values against NumPy's SVD, PyTorch's state-dict names."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.nn.utils import parametrizations as P
from backprop_rs.nn.utils import parametrize


@pytest.fixture(autouse=True)
def _seed():
    bp.manual_seed(0)


def test_weight_norm_value_gradients_and_state_dict():
    lin = bp.nn.Linear(4, 3)
    w0 = lin.weight.detach().numpy().copy()
    P.weight_norm(lin)
    assert type(lin).__name__ == "ParametrizedLinear"
    assert sorted(lin.state_dict()) == ["bias", "parametrizations.weight.original0", "parametrizations.weight.original1"]
    np.testing.assert_allclose(lin.weight.detach().numpy(), w0, rtol=1e-6)
    x = bp.randn(5, 4)
    (lin(x) * bp.tensor([1.0, -2.0, 0.5])).sum().backward()
    g = lin.parametrizations.weight.original0.detach().numpy()
    v = lin.parametrizations.weight.original1.detach().numpy()
    G = np.outer([1.0, -2.0, 0.5], x.numpy().sum(0))  # dL/dW
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    dg = (G * v).sum(1, keepdims=True) / norm
    dv = g / norm * (G - (G * v).sum(1, keepdims=True) * v / norm ** 2)
    np.testing.assert_allclose(lin.parametrizations.weight.original0.grad.numpy(), dg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.parametrizations.weight.original1.grad.numpy(), dv, rtol=1e-5, atol=1e-6)
    # assigning goes through right_inverse
    target = bp.randn(3, 4)
    lin.weight = target
    np.testing.assert_allclose(lin.weight.detach().numpy(), target.numpy(), rtol=1e-6)


def test_spectral_norm_bounds_the_largest_singular_value_and_keeps_the_parameter_object():
    lin = bp.nn.Linear(6, 5)
    param = lin.weight
    opt = bp.optim.SGD(lin.parameters(), lr=0.1)
    P.spectral_norm(lin)
    assert lin.parametrizations.weight.original is param  # an optimizer built before still holds it
    assert sorted(lin.state_dict()) == ["bias", "parametrizations.weight.0._u", "parametrizations.weight.0._v",
                                        "parametrizations.weight.original"]
    for _ in range(5):
        lin(bp.randn(2, 6))
    sigma = np.linalg.svd(lin.weight.detach().numpy(), compute_uv=False)[0]
    assert abs(sigma - 1.0) < 1e-4
    w_orig = param.detach().numpy()
    np.testing.assert_allclose(lin.weight.detach().numpy(),
                               w_orig / np.linalg.svd(w_orig, compute_uv=False)[0], rtol=1e-4)
    lin(bp.randn(3, 6)).sum().backward()
    before = param.detach().clone()
    opt.step()
    assert not bp.equal(before, param)
    lin.eval()
    u = lin.parametrizations.weight[0]._u.clone()
    lin(bp.randn(1, 6))
    assert bp.equal(u, lin.parametrizations.weight[0]._u)  # no power iteration in eval mode


def test_parametrize_chain_cache_and_removal():
    class Symmetric(bp.nn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).transpose(0, 1)

    class Scale(bp.nn.Module):
        def forward(self, x):
            return 2 * x

    m = bp.nn.Linear(3, 3)
    parametrize.register_parametrization(m, "weight", Symmetric())
    parametrize.register_parametrization(m, "weight", Scale())
    w = m.weight.detach().numpy()
    o = m.parametrizations.weight.original.detach().numpy()
    np.testing.assert_allclose(w, 2 * (np.triu(o) + np.triu(o, 1).T), rtol=1e-6)
    assert parametrize.is_parametrized(m) and parametrize.is_parametrized(m, "weight")
    assert not parametrize.is_parametrized(m, "bias")
    with parametrize.cached():
        assert m.weight is m.weight
    assert m.weight is not m.weight
    assert parametrize.type_before_parametrizations(m) is bp.nn.Linear
    parametrize.remove_parametrizations(m, "weight")
    assert type(m) is bp.nn.Linear and sorted(m.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(m.weight.detach().numpy(), w, rtol=1e-6)
    with pytest.raises(ValueError, match="does not have"):
        parametrize.register_parametrization(m, "nothing", Scale())


def test_hook_based_weight_norm_and_spectral_norm():
    lin = bp.nn.Linear(4, 3)
    w0 = lin.weight.detach().numpy().copy()
    bp.nn.utils.weight_norm(lin)
    assert sorted(lin.state_dict()) == ["bias", "weight_g", "weight_v"]
    x = bp.randn(2, 4)
    np.testing.assert_allclose(lin(x).detach().numpy(), x.numpy() @ w0.T + lin.bias.detach().numpy(), rtol=1e-5)
    with bp.no_grad():
        lin.weight_g.mul_(2.0)
    np.testing.assert_allclose(lin(x).detach().numpy(), x.numpy() @ (2 * w0).T + lin.bias.detach().numpy(),
                               rtol=1e-5)  # the hook recomputes the weight
    bp.nn.utils.remove_weight_norm(lin)
    assert sorted(lin.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(lin.weight.detach().numpy(), 2 * w0, rtol=1e-5)
    sn = bp.nn.utils.spectral_norm(bp.nn.Linear(6, 5))
    assert sorted(sn.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    for _ in range(20):
        sn(bp.randn(2, 6))
    assert abs(np.linalg.svd(sn.weight.detach().numpy(), compute_uv=False)[0] - 1.0) < 1e-4
    bp.nn.utils.remove_spectral_norm(sn)
    assert sorted(sn.state_dict()) == ["bias", "weight"]
