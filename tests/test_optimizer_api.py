"""The Optimizer base class's PyTorch interface: add_param_group rules, state_dict layout and exact
resume (continuing training vs resuming from a saved and reloaded state), dtype casting on load,
zero_grad, and step hooks."""

import warnings

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import optim
from backprop_rs.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook, required


def params(*shapes, dtype=bp.float64):
    rng = np.random.default_rng(sum(map(sum, shapes)))
    return [bp.nn.Parameter(bp.tensor(rng.standard_normal(s), dtype=dtype)) for s in shapes]


def loss(ps):
    # a smooth loss with a different curvature per parameter
    return sum(((p * p * (i + 1)).sum() + p.sin().sum()) for i, p in enumerate(ps))


def train(opt, ps, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss(ps).backward()
        opt.step()


def test_add_param_group_follows_pytorch():
    a, b, c = params((2,), (3,), (1,))
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    group = {"params": b, "lr": 0.5}
    opt.add_param_group(group)
    assert opt.param_groups[1] is group and group["params"] == [b]  # the dict itself, params made a list
    assert group["momentum"] == 0.9 and group["lr"] == 0.5 and group["nesterov"] is False  # defaults fill in
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([c])
    with pytest.raises(TypeError, match="ordered collections"):
        opt.add_param_group({"params": {c}})
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the params is int"):
        opt.add_param_group({"params": [3]})
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        opt.add_param_group({"params": [c * 2]})
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [c, a]})
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt.add_param_group({"params": [c, c]})
    with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts, but got"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.Adam([])

    class NeedsLR(optim.Optimizer):
        def __init__(self, ps, lr=required):
            super().__init__(ps, dict(lr=lr))

    with pytest.raises(ValueError, match="didn't specify a value of required optimization parameter lr"):
        NeedsLR([a])
    assert NeedsLR([{"params": [a], "lr": 1.0}]).param_groups[0]["lr"] == 1.0


def test_a_group_added_later_is_optimized_by_every_optimizer():
    for make in (lambda p: optim.SGD(p, lr=0.1, momentum=0.5), lambda p: optim.Adam(p, lr=0.1),
                 lambda p: optim.RMSprop(p, lr=0.1), lambda p: optim.Adagrad(p, lr=0.1)):
        a, b = params((2,), (2,))
        opt = make([a])
        opt.add_param_group({"params": [b], "lr": 0.0})
        before = b.detach().numpy().copy()
        train(opt, [a, b], 2)
        np.testing.assert_array_equal(b.detach().numpy(), before)  # lr 0: unchanged, but stepped without error
        opt.param_groups[1]["lr"] = 0.1
        train(opt, [a, b], 1)
        assert not np.allclose(b.detach().numpy(), before)


def test_state_dict_layout():
    a, b, c = params((2,), (3,), (1,))
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.01, "betas": (0.8, 0.9)}], lr=0.1)
    train(opt, [a, b, c], 3)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]  # numbered in group order
    assert sd["param_groups"][1]["lr"] == 0.01 and sd["param_groups"][1]["betas"] == (0.8, 0.9)
    assert sorted(sd["state"]) == [0, 1, 2] and sd["state"][2]["step"] == 3
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"][1]["exp_avg"].shape == (3,)


OPTIMIZERS = {
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam_amsgrad": lambda p: optim.Adam(p, lr=0.05, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.05, betas=(0.85, 0.99)),
    "rmsprop_centered": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_saved_and_reloaded_state_resumes_exactly(name, tmp_path):
    make = OPTIMIZERS[name]
    ref = params((3, 2), (4,))
    opt = make([{"params": [ref[0]]}, {"params": [ref[1]], "lr": 0.02}])
    train(opt, ref, 4)
    opt.param_groups[0]["lr"] *= 0.5  # a hyper-parameter changed during training must come back too
    path = tmp_path / "opt.safetensors"
    bp.save({"params": [p.detach().clone() for p in ref], "optim": opt.state_dict()}, str(path))
    train(opt, ref, 5)  # the reference: training simply continues

    ck = bp.load(str(path))
    ps = [bp.nn.Parameter(t) for t in ck["params"]]
    opt2 = make([{"params": [ps[0]]}, {"params": [ps[1]]}])
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] and opt2.param_groups[1]["lr"] == 0.02
    assert opt2.param_groups[0]["params"][0] is ps[0]
    train(opt2, ps, 5)
    for p, q in zip(ref, ps):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        assert s1["state"][k].keys() == s2["state"][k].keys()
        if "step" in s1["state"][k]:  # SGD keeps none, as in PyTorch
            assert int(s1["state"][k]["step"]) == int(s2["state"][k]["step"]) == 9


def test_load_state_dict_casts_copies_and_checks_sizes():
    a = params((3,))[0]
    opt = optim.Adam([a], lr=0.1)
    train(opt, [a], 2)
    sd = opt.state_dict()
    b = bp.nn.Parameter(bp.zeros(3, dtype=bp.float32))
    opt32 = optim.Adam([b], lr=0.1)
    opt32.load_state_dict(sd)
    st = opt32.state[b]
    assert st["exp_avg"].dtype == bp.float32 and st["step"] == 2  # cast to the parameter's dtype; step kept
    np.testing.assert_allclose(st["exp_avg"].numpy(), opt.state[a]["exp_avg"].numpy(), rtol=1e-6)
    # loaded buffers are copies: stepping one optimizer never moves the other's state
    c = bp.nn.Parameter(a.detach().clone())
    opt_c = optim.Adam([c], lr=0.1)
    opt_c.load_state_dict(opt.state_dict())
    before = opt.state[a]["exp_avg"].numpy().copy()
    train(opt_c, [c], 1)
    np.testing.assert_array_equal(opt.state[a]["exp_avg"].numpy(), before)
    with pytest.raises(ValueError, match="loaded state dict has a different number of parameter groups"):
        optim.Adam([{"params": [b]}, {"params": [c]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="loaded state dict contains a parameter group that doesn't match the size"):
        optim.Adam([b, c]).load_state_dict(sd)
    # saved hyper-parameters replace the current ones
    opt3 = optim.Adam([bp.nn.Parameter(bp.zeros(3))], lr=0.5, betas=(0.1, 0.2))
    opt3.load_state_dict(sd)
    assert opt3.param_groups[0]["lr"] == 0.1 and opt3.param_groups[0]["betas"] == (0.9, 0.999)


def test_zero_grad_set_to_none_or_zero():
    a, b = params((2,), (2,))
    opt = optim.SGD([a, b], lr=0.1)
    loss([a, b]).backward()
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and a.grad.tolist() == [0.0, 0.0] and not a.grad.requires_grad
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_hooks():
    a = params((2,))[0]
    opt = optim.SGD([a], lr=0.1)
    calls = []

    def pre(o, args, kwargs):
        calls.append(("pre", o is opt, args, dict(kwargs)))

    def post(o, args, kwargs):
        calls.append(("post", o is opt, args, dict(kwargs)))

    h1 = opt.register_step_pre_hook(pre)
    h2 = opt.register_step_post_hook(post)
    loss([a]).backward()
    opt.step()
    assert calls == [("pre", True, (), {}), ("post", True, (), {})]
    h1.remove()
    h2.remove()
    opt.step()
    assert len(calls) == 2

    # a pre-hook may replace the arguments: here it supplies the closure
    def add_closure(o, args, kwargs):
        return (), {"closure": lambda: 42.0}

    with opt.register_step_pre_hook(add_closure):
        assert opt.step() == 42.0
    assert opt.step() is None

    g = []
    hg1 = register_optimizer_step_pre_hook(lambda o, a_, k: g.append("gpre"))
    hg2 = register_optimizer_step_post_hook(lambda o, a_, k: g.append("gpost"))
    try:
        optim.Adam([a], lr=0.1).step()
    finally:
        hg1.remove()
        hg2.remove()
    assert g == ["gpre", "gpost"]

    class Wrapped(optim.SGD):
        def step(self, closure=None):
            return super().step(closure)

    w = Wrapped([a], lr=0.1)
    seen = []
    w.register_step_post_hook(lambda o, a_, k: seen.append(1))
    w.step()
    assert seen == [1]  # once, although two step methods ran


def test_repr_matches_pytorchs_layout():
    a = params((1,))[0]
    r = repr(optim.SGD([a], lr=0.1))
    assert r.startswith("SGD (\nParameter Group 0\n    dampening: 0.0\n") and r.endswith("    weight_decay: 0.0\n)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optim.SGD([a], lr=0.1).step()
