"""Optimisers: 20-step trajectories against NumPy implementations of each published update rule;
schedulers against their formulas; state_dict round trips."""

import math

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import optim
from backprop_rs.optim import lr_scheduler as sched

C = np.array([0.5, 1.5, -2.0, 3.0, 0.25, -1.0])
D = np.array([1.0, -0.5, 0.2, 0.0, 2.0, -3.0])


def loss_and_grad_np(p):
    # loss = sum(C * p^2 / 2 + D * sin(p)); grad = C * p + D * cos(p)
    return C * p + D * np.cos(p)


def run_bp(make_opt, steps=20, dtype=bp.float64):
    p = bp.nn.Parameter(bp.tensor(np.linspace(-1, 1, 6), dtype=dtype))
    c, d = bp.tensor(C, dtype=dtype), bp.tensor(D, dtype=dtype)
    opt = make_opt([p])
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (c * p * p / 2 + d * p.sin()).sum()
        loss.backward()
        opt.step()
        traj.append(p.detach().numpy().copy())
    return np.array(traj)


def ref_sgd(lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False, maximize=False, steps=20):
    p = np.linspace(-1, 1, 6)
    buf = None
    out = []
    for _ in range(steps):
        g = loss_and_grad_np(p)
        g = -g if maximize else g
        g = g + wd * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p.copy())
    return np.array(out)


def ref_adam(lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False, amsgrad=False, steps=20):
    p = np.linspace(-1, 1, 6)
    m = v = np.zeros(6)
    vmax = np.zeros(6)
    out = []
    for t in range(1, steps + 1):
        g = loss_and_grad_np(p)
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        if amsgrad:
            vmax = np.maximum(vmax, v)
            denom = np.sqrt(vmax) / math.sqrt(bc2) + eps
        else:
            denom = np.sqrt(v) / math.sqrt(bc2) + eps
        p = p - lr / bc1 * m / denom
        out.append(p.copy())
    return np.array(out)


def ref_rmsprop(lr, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.0, centered=False, steps=20):
    p = np.linspace(-1, 1, 6)
    sq = np.zeros(6)
    buf = np.zeros(6)
    ga = np.zeros(6)
    out = []
    for _ in range(steps):
        g = loss_and_grad_np(p) + wd * p
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum > 0:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
        out.append(p.copy())
    return np.array(out)


def ref_adagrad(lr, lr_decay=0.0, wd=0.0, init=0.0, eps=1e-10, steps=20):
    p = np.linspace(-1, 1, 6)
    s = np.full(6, init)
    out = []
    for t in range(1, steps + 1):
        g = loss_and_grad_np(p) + wd * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
        out.append(p.copy())
    return np.array(out)


CASES = [
    ("sgd", lambda ps: optim.SGD(ps, lr=0.1), lambda: ref_sgd(0.1)),
    ("sgd-momentum", lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9), lambda: ref_sgd(0.05, 0.9)),
    ("sgd-dampening-wd", lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), lambda: ref_sgd(0.05, 0.8, 0.3, 0.01)),
    ("sgd-nesterov", lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), lambda: ref_sgd(0.05, 0.9, nesterov=True)),
    ("sgd-maximize", lambda ps: optim.SGD(ps, lr=0.01, maximize=True), lambda: ref_sgd(0.01, maximize=True)),
    ("adam", lambda ps: optim.Adam(ps, lr=0.05), lambda: ref_adam(0.05)),
    ("adam-wd-amsgrad", lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.1, amsgrad=True, betas=(0.8, 0.99)), lambda: ref_adam(0.05, 0.8, 0.99, wd=0.1, amsgrad=True)),
    ("adamw", lambda ps: optim.AdamW(ps, lr=0.05), lambda: ref_adam(0.05, wd=0.01, decoupled=True)),
    ("rmsprop", lambda ps: optim.RMSprop(ps, lr=0.01), lambda: ref_rmsprop(0.01)),
    ("rmsprop-centered-momentum", lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True, weight_decay=0.01), lambda: ref_rmsprop(0.01, momentum=0.9, centered=True, wd=0.01)),
    ("adagrad", lambda ps: optim.Adagrad(ps, lr=0.1), lambda: ref_adagrad(0.1)),
    ("adagrad-decay", lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1), lambda: ref_adagrad(0.1, 0.05, 0.01, 0.1)),
]


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_trajectory_matches_reference_f64(name, make, ref):
    np.testing.assert_allclose(run_bp(make), ref(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_trajectory_f32_fused_kernel(name, make, ref):
    # float32 params take the fused CPU kernel with f32 arithmetic
    np.testing.assert_allclose(run_bp(make, dtype=bp.float32), ref(), rtol=2e-4, atol=2e-5)


def test_strided_parameters_take_the_composite_path_and_agree():
    base = bp.tensor(np.linspace(-1, 1, 6).reshape(2, 3).T.copy(), dtype=bp.float64)  # [3, 2]
    p = bp.nn.Parameter(base)
    opt = optim.Adam([p], lr=0.05)
    c, d = bp.tensor(C.reshape(2, 3).T.copy()), bp.tensor(D.reshape(2, 3).T.copy())
    for _ in range(20):
        opt.zero_grad()
        (c * p * p / 2 + d * p.sin()).sum().backward()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy().T.reshape(-1), ref_adam(0.05)[-1], rtol=1e-10)


def test_param_groups_and_zero_grad():
    a = bp.nn.Parameter(bp.ones(2))
    b = bp.nn.Parameter(bp.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    (a.sum() + b.sum()).backward()
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [0.9, 0.9])
    np.testing.assert_allclose(b.detach().numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert a.grad is None
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def test_state_dict_resume_gives_identical_next_step():
    def make():
        bp.manual_seed(0)
        return bp.nn.Sequential(bp.nn.Linear(4, 5), bp.nn.Tanh(), bp.nn.Linear(5, 2))

    x, y = bp.randn(8, 4), bp.randint(0, 2, (8,))
    m1 = make()
    o1 = optim.Adam(m1.parameters(), lr=0.01)
    for _ in range(5):
        o1.zero_grad()
        bp.nn.functional.cross_entropy(m1(x), y).backward()
        o1.step()
    m2 = make()
    o2 = optim.Adam(m2.parameters(), lr=0.01)
    m2.load_state_dict(m1.state_dict())
    o2.load_state_dict(o1.state_dict())
    for m, o in ((m1, o1), (m2, o2)):
        o.zero_grad()
        bp.nn.functional.cross_entropy(m(x), y).backward()
        o.step()
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())
    sd = o1.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3] and sd["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert sd["state"][0]["step"] == 6


# ------------------------------------------------------------------ schedulers

def _opt(lr=0.1, **kw):
    return optim.SGD([bp.nn.Parameter(bp.zeros(1))], lr=lr, **kw)


def _lrs(s, n):
    out = []
    for _ in range(n):
        out.append(s.get_last_lr()[0])
        s.optimizer.step()
        s.step()
    return out


def test_step_exponential_cosine_linear_formulas():
    np.testing.assert_allclose(_lrs(sched.StepLR(_opt(), step_size=3, gamma=0.5), 9), [0.1 * 0.5 ** (e // 3) for e in range(9)])
    np.testing.assert_allclose(_lrs(sched.ExponentialLR(_opt(), gamma=0.9), 6), [0.1 * 0.9**e for e in range(6)])
    np.testing.assert_allclose(_lrs(sched.CosineAnnealingLR(_opt(), T_max=10, eta_min=0.01), 11),
                               [0.01 + 0.09 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(11)], rtol=1e-12)
    np.testing.assert_allclose(_lrs(sched.LinearLR(_opt(), start_factor=0.25, total_iters=4), 7),
                               [0.1 * (0.25 + 0.75 * min(e, 4) / 4) for e in range(7)], rtol=1e-12)


def test_one_cycle_formula():
    total, max_lr = 20, 1.0
    s = sched.OneCycleLR(_opt(momentum=0.9), max_lr=max_lr, total_steps=total, pct_start=0.3)
    got = _lrs(s, total)
    init, minlr = max_lr / 25, max_lr / 25 / 1e4
    up_end = 0.3 * total - 1

    def cos(a, b, pct):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * pct))

    want = [cos(init, max_lr, t / up_end) if t <= up_end else cos(max_lr, minlr, (t - up_end) / (total - 1 - up_end)) for t in range(total)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    s2 = sched.OneCycleLR(_opt(momentum=0.9), max_lr=max_lr, total_steps=total, pct_start=0.3)
    assert s2.optimizer.param_groups[0]["momentum"] == pytest.approx(0.95)  # starts at max momentum
    for _ in range(int(up_end)):
        s2.step()
    assert s2.optimizer.param_groups[0]["momentum"] == pytest.approx(0.85)  # lowest at the lr peak
    for _ in range(total - 1 - int(up_end)):
        s2.step()
    assert s2.optimizer.param_groups[0]["momentum"] == pytest.approx(0.95)  # back at max at the last step


def test_reduce_on_plateau():
    o = _opt(lr=1.0)
    s = sched.ReduceLROnPlateau(o, patience=2, factor=0.5)
    for metric in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        s.step(metric)
    # improvements at 1 and 2; bad epochs 3,4,5 -> reduce after the third (patience 2), again 3 later
    assert o.param_groups[0]["lr"] == pytest.approx(0.25)


def test_scheduler_state_dict_round_trip():
    s = sched.StepLR(_opt(), step_size=2, gamma=0.5)
    for _ in range(3):
        s.step()
    s2 = sched.StepLR(_opt(), step_size=2, gamma=0.5)
    s2.load_state_dict(s.state_dict())
    assert s2.last_epoch == 3
