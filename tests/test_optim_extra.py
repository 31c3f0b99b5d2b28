"""Adadelta, Adamax, NAdam, RAdam, ASGD and LBFGS: 20-step trajectories against NumPy
re-implementations of the algorithm pseudocode in PyTorch's documentation (ASGD and LBFGS, which
have none there, against NumPy transcriptions of PyTorch's algorithm); state names, group keys,
state_dict resumption; the implementation keywords SGD and Adam accept.

Tolerances: float64 trajectories rtol 1e-10 (atol 1e-12)."""

import math

import backprop_rs as bp
import numpy as np
import pytest
from backprop_rs import optim

C = np.array([0.5, 1.5, -2.0, 3.0, 0.25, -1.0])
D = np.array([1.0, -0.5, 0.2, 0.0, 2.0, -3.0])
P0 = np.linspace(-1, 1, 6)


def grad_np(p):
    # loss = sum(C * p^2 / 2 + D * sin(p))
    return C * p + D * np.cos(p)


def run_bp(make_opt, steps=20, stop_at=None):
    p = bp.nn.Parameter(bp.tensor(P0, dtype=bp.float64))
    c, d = bp.tensor(C, dtype=bp.float64), bp.tensor(D, dtype=bp.float64)
    opt = make_opt([p])
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        (c * p * p / 2 + d * p.sin()).sum().backward()
        opt.step()
        traj.append(p.detach().numpy().copy())
    return np.array(traj), opt, p


def ref_adadelta(lr=1.0, rho=0.9, eps=1e-6, wd=0.0, maximize=False, steps=20):
    p, v, u, out = P0.copy(), np.zeros(6), np.zeros(6), []
    for _ in range(steps):
        g = -grad_np(p) if maximize else grad_np(p)
        g = g + wd * p
        v = v * rho + g * g * (1 - rho)
        dx = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = u * rho + dx * dx * (1 - rho)
        p = p - lr * dx
        out.append(p)
    return np.array(out)


def ref_adamax(lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, maximize=False, steps=20):
    p, m, u, out = P0.copy(), np.zeros(6), np.zeros(6), []
    for t in range(1, steps + 1):
        g = -grad_np(p) if maximize else grad_np(p)
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr * m / ((1 - b1 ** t) * u)
        out.append(p)
    return np.array(out)


def ref_nadam(lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, psi=4e-3, decoupled=False, maximize=False, steps=20):
    p, m, v, out = P0.copy(), np.zeros(6), np.zeros(6), []
    mu_prod = 1.0
    for t in range(1, steps + 1):
        g = -grad_np(p) if maximize else grad_np(p)
        if wd:
            if decoupled:
                p = p - lr * wd * p
            else:
                g = g + wd * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mu_prod_t = mu_prod * mu
        m_hat = mu_next * m / (1 - mu_prod_t * mu_next) + (1 - mu) * g / (1 - mu_prod_t)
        mu_prod = mu_prod_t
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return np.array(out)


def ref_radam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False, maximize=False, steps=20):
    p, m, v, out = P0.copy(), np.zeros(6), np.zeros(6), []
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, steps + 1):
        g = -grad_np(p) if maximize else grad_np(p)
        if wd:
            if decoupled:
                p = p - lr * wd * p
            else:
                g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho_t > 5:
            lt = np.sqrt(1 - b2 ** t) / (np.sqrt(v) + eps)
            rt = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            p = p - lr * m_hat * rt * lt
        else:
            p = p - lr * m_hat
        out.append(p)
    return np.array(out)


def ref_asgd(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, wd=0.0, maximize=False, steps=20):
    p, ax, eta, mu, out, axs = P0.copy(), np.zeros(6), lr, 1.0, [], []
    for t in range(1, steps + 1):
        g = -grad_np(p) if maximize else grad_np(p)
        g = g + wd * p
        p = p * (1 - lambd * eta) - eta * g
        ax = ax + mu * (p - ax) if mu != 1 else p.copy()
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)
        out.append(p)
        axs.append(ax)
    return np.array(out), np.array(axs)


def ref_rprop(lr=1e-2, etas=(0.5, 1.2), sizes=(1e-6, 50), maximize=False, steps=20):
    # PyTorch's documented algorithm: the step size follows the sign of g_t * g_{t-1}
    p, prev, size, out = P0.copy(), np.zeros(6), np.full(6, lr), []
    for _ in range(steps):
        g = -grad_np(p) if maximize else grad_np(p)
        s = np.sign(g * prev)
        size = np.clip(size * np.where(s > 0, etas[1], np.where(s < 0, etas[0], 1.0)), *sizes)
        g = np.where(s < 0, 0.0, g)
        p = p - np.sign(g) * size
        prev = g
        out.append(p)
    return np.array(out)


CASES = [
    ("rprop", lambda ps: optim.Rprop(ps, lr=0.05), lambda: ref_rprop(0.05)),
    ("rprop_etas_max", lambda ps: optim.Rprop(ps, lr=0.1, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True),
     lambda: ref_rprop(0.1, (0.3, 1.5), (1e-3, 0.2), True)),
    ("adadelta", lambda ps: optim.Adadelta(ps), lambda: ref_adadelta()),
    ("adadelta_wd_max", lambda ps: optim.Adadelta(ps, lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True),
     lambda: ref_adadelta(0.5, 0.8, 1e-5, 0.1, True)),
    ("adamax", lambda ps: optim.Adamax(ps, lr=0.05), lambda: ref_adamax(0.05)),
    ("adamax_wd_max", lambda ps: optim.Adamax(ps, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1, maximize=True),
     lambda: ref_adamax(0.05, 0.8, 0.99, wd=0.1, maximize=True)),
    ("nadam", lambda ps: optim.NAdam(ps, lr=0.05), lambda: ref_nadam(0.05)),
    ("nadam_wd_psi", lambda ps: optim.NAdam(ps, lr=0.05, weight_decay=0.1, momentum_decay=0.02),
     lambda: ref_nadam(0.05, wd=0.1, psi=0.02)),
    ("nadamw", lambda ps: optim.NAdam(ps, lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
     lambda: ref_nadam(0.05, wd=0.1, decoupled=True, maximize=True)),
    ("radam", lambda ps: optim.RAdam(ps, lr=0.05), lambda: ref_radam(0.05)),
    ("radam_wd", lambda ps: optim.RAdam(ps, lr=0.05, betas=(0.9, 0.9), weight_decay=0.1),
     lambda: ref_radam(0.05, b2=0.9, wd=0.1)),
    ("radamw", lambda ps: optim.RAdam(ps, lr=0.05, betas=(0.9, 0.9), weight_decay=0.1, decoupled_weight_decay=True),
     lambda: ref_radam(0.05, b2=0.9, wd=0.1, decoupled=True)),
    ("asgd", lambda ps: optim.ASGD(ps, lr=0.05), lambda: ref_asgd(0.05)[0]),
    ("asgd_averaging", lambda ps: optim.ASGD(ps, lr=0.05, lambd=0.01, alpha=0.6, t0=5, weight_decay=0.1),
     lambda: ref_asgd(0.05, 0.01, 0.6, 5, 0.1)[0]),
]


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_trajectory_matches_the_documented_algorithm(name, make, ref):
    got, _, _ = run_bp(make)
    want = ref()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.abs(want[-1] - P0).max() > 1e-3  # it moved: the comparison is not vacuous


def test_asgd_average():
    _, opt, p = run_bp(lambda ps: optim.ASGD(ps, lr=0.05, lambd=0.01, alpha=0.6, t0=5))
    _, axs = ref_asgd(0.05, 0.01, 0.6, 5)
    np.testing.assert_allclose(opt.state[p]["ax"].numpy(), axs[-1], rtol=1e-10)
    assert opt.state[p]["eta"] == pytest.approx(0.05 / (1 + 0.01 * 0.05 * 20) ** 0.6, rel=1e-12)
    assert opt.state[p]["mu"] == pytest.approx(1 / 15)


STATE = [
    (lambda ps: optim.Rprop(ps), {"step", "prev", "step_size"},
     {"lr", "etas", "step_sizes", "foreach", "maximize", "differentiable", "capturable"}),
    (lambda ps: optim.Adadelta(ps), {"step", "square_avg", "acc_delta"},
     {"lr", "rho", "eps", "weight_decay", "foreach", "capturable", "maximize", "differentiable"}),
    (lambda ps: optim.Adamax(ps), {"step", "exp_avg", "exp_inf"},
     {"lr", "betas", "eps", "weight_decay", "foreach", "maximize", "differentiable", "capturable"}),
    (lambda ps: optim.NAdam(ps), {"step", "mu_product", "exp_avg", "exp_avg_sq"},
     {"lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "foreach", "maximize",
      "capturable", "differentiable"}),
    (lambda ps: optim.RAdam(ps), {"step", "exp_avg", "exp_avg_sq"},
     {"lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "foreach", "maximize", "capturable",
      "differentiable"}),
    (lambda ps: optim.ASGD(ps), {"step", "eta", "mu", "ax"},
     {"lr", "lambd", "alpha", "t0", "weight_decay", "foreach", "maximize", "differentiable", "capturable"}),
]


@pytest.mark.parametrize("make,state_keys,group_keys", STATE)
def test_state_names_group_keys_and_resuming_from_a_state_dict(make, state_keys, group_keys):
    full, _, _ = run_bp(make, steps=20)
    first, opt, _ = run_bp(make, steps=10)
    sd = opt.state_dict()
    assert set(sd["state"][0]) == state_keys and sd["state"][0]["step"] == 10
    assert set(sd["param_groups"][0]) == group_keys | {"params"}
    # a fresh optimizer on a fresh parameter at the 10-step point, loaded, continues identically
    q = bp.nn.Parameter(bp.tensor(first[-1], dtype=bp.float64))
    opt2 = make([q])
    opt2.load_state_dict(sd)
    c, d = bp.tensor(C, dtype=bp.float64), bp.tensor(D, dtype=bp.float64)
    for _ in range(10):
        opt2.zero_grad()
        (c * q * q / 2 + d * q.sin()).sum().backward()
        opt2.step()
    np.testing.assert_allclose(q.detach().numpy(), full[-1], rtol=1e-10)


@pytest.mark.parametrize("cls", [optim.Adadelta, optim.Adamax, optim.NAdam, optim.RAdam, optim.ASGD])
def test_argument_checks_and_switches(cls):
    p = bp.nn.Parameter(bp.zeros(2))
    with pytest.raises(ValueError, match="Invalid learning rate"):
        cls([p], lr=-1.0)
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        cls([p], differentiable=True)
    opt = cls([p], foreach=True, capturable=True)  # accepted: one code path here
    assert opt.param_groups[0]["foreach"] is True
    if cls in (optim.Adamax, optim.NAdam, optim.RAdam):
        with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
            cls([p], betas=(0.9, 1.0))
    p.grad = bp.ones(2)
    opt.step()  # a step with the switches on works


def test_sgd_and_adam_accept_pytorchs_keywords():
    p = bp.nn.Parameter(bp.zeros(2))
    sgd = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=True, maximize=True,
                    foreach=None, differentiable=False, fused=True)
    assert {"nesterov", "dampening", "weight_decay", "maximize", "foreach", "fused", "differentiable"} <= set(
        sgd.param_groups[0])
    adam = optim.Adam([p], amsgrad=True, maximize=True, foreach=False, capturable=True, differentiable=False,
                      fused=True)
    assert adam.param_groups[0]["amsgrad"] and adam.param_groups[0]["capturable"]
    with pytest.raises(NotImplementedError, match="differentiable"):
        optim.SGD([p], lr=0.1, differentiable=True)
    with pytest.raises(NotImplementedError, match="differentiable"):
        optim.AdamW([p], differentiable=True)
    with pytest.raises(TypeError, match="fused"):
        optim.NAdam([p], fused=True)  # no such keyword in PyTorch's NAdam either
    # Adam(decoupled_weight_decay=True) is AdamW
    a, _, _ = run_bp(lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.1, decoupled_weight_decay=True))
    w, _, _ = run_bp(lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.1))
    np.testing.assert_array_equal(a, w)
    plain, _, _ = run_bp(lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.1))
    assert not np.allclose(plain, w)


# ------------------------------------------------------------------ LBFGS


def rosen(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def rosen_grad(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


def ref_lbfgs(x0, lr, max_iter, history_size, calls, tol_grad=1e-7, tol_change=1e-9):
    """NumPy transcription of PyTorch's LBFGS without line search (two-loop recursion, curvature
    pairs kept when y.s > 1e-10, first step min(1, 1/|g|_1) * lr), over several ``step`` calls."""
    x = np.array(x0, dtype=np.float64)
    st = dict(n_iter=0, d=None, t=None, dirs=[], stps=[], ro=[], H=1.0, prev_g=None, prev_loss=None)
    max_eval = max_iter * 5 // 4
    for _ in range(calls):
        loss, g = rosen(x), rosen_grad(x)
        evals = 1
        if np.abs(g).max() <= tol_grad:
            continue
        n = 0
        while n < max_iter:
            n += 1
            st["n_iter"] += 1
            if st["n_iter"] == 1:
                d = -g
                st["dirs"], st["stps"], st["ro"], st["H"] = [], [], [], 1.0
            else:
                y, s = g - st["prev_g"], st["d"] * st["t"]
                ys = y @ s
                if ys > 1e-10:
                    if len(st["dirs"]) == history_size:
                        for k in ("dirs", "stps", "ro"):
                            st[k].pop(0)
                    st["dirs"].append(y)
                    st["stps"].append(s)
                    st["ro"].append(1 / ys)
                    st["H"] = ys / (y @ y)
                q = -g.copy()
                al = [0.0] * len(st["dirs"])
                for i in range(len(st["dirs"]) - 1, -1, -1):
                    al[i] = (st["stps"][i] @ q) * st["ro"][i]
                    q = q - al[i] * st["dirs"][i]
                r = q * st["H"]
                for i in range(len(st["dirs"])):
                    be = (st["dirs"][i] @ r) * st["ro"][i]
                    r = r + (al[i] - be) * st["stps"][i]
                d = r
            st["prev_g"], st["prev_loss"] = g.copy(), loss
            t = min(1.0, 1.0 / np.abs(g).sum()) * lr if st["n_iter"] == 1 else lr
            st["d"], st["t"] = d, t
            if g @ d > -tol_change:
                break
            x = x + t * d
            opt_cond = False
            if n != max_iter:
                loss, g = rosen(x), rosen_grad(x)
                evals += 1
                opt_cond = np.abs(g).max() <= tol_grad
            if n == max_iter or evals >= max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= tol_change or abs(loss - st["prev_loss"]) < tol_change:
                break
    return x


def _lbfgs_run(x0, calls, **kw):
    x = bp.nn.Parameter(bp.tensor(x0, dtype=bp.float64))
    opt = optim.LBFGS([x], **kw)
    evals = []

    def closure():
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        evals.append(1)
        return loss

    losses = [opt.step(closure).item() for _ in range(calls)]
    return x.detach().numpy(), opt, losses, len(evals)


@pytest.mark.parametrize("lr,max_iter,history,calls", [(0.1, 20, 100, 3), (0.5, 5, 3, 4), (1.0, 10, 2, 2)])
def test_lbfgs_matches_numpy_transcription(lr, max_iter, history, calls):
    x0 = [-1.2, 1.0]
    got, opt, losses, _ = _lbfgs_run(x0, calls, lr=lr, max_iter=max_iter, history_size=history)
    want = ref_lbfgs(x0, lr, max_iter, history, calls)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.abs(want - np.array(x0)).max() > 1e-3
    assert losses[0] == pytest.approx(rosen(np.array(x0)))  # step returns the closure's first loss
    st = opt.state[opt.param_groups[0]["params"][0]]
    assert {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
            "prev_loss"} <= set(st)
    assert len(st["old_dirs"]) <= history


def test_lbfgs_strong_wolfe_minimises_rosenbrock():
    # with the default tolerance_change=1e-9 the run stops once the loss changes by less than
    # that (near 1e-9); a tighter one lets it finish
    x, opt, _, evals = _lbfgs_run([-1.2, 1.0], 1, lr=1.0, max_iter=100, line_search_fn="strong_wolfe",
                                       tolerance_change=1e-14)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-6)
    st = opt.state[opt.param_groups[0]["params"][0]]
    assert st["n_iter"] < 60 and st["func_evals"] == evals  # a line search worth its name: few iterations
    assert rosen(x) < 1e-12
    # after 20 iterations the line search is well ahead of fixed unit steps
    ls20, *_ = _lbfgs_run([-1.2, 1.0], 1, lr=1.0, max_iter=20, line_search_fn="strong_wolfe")
    fixed20, *_ = _lbfgs_run([-1.2, 1.0], 1, lr=1.0, max_iter=20)
    assert rosen(ls20) < 0.5 * rosen(fixed20)


def test_lbfgs_errors_and_a_model():
    a, b = bp.nn.Parameter(bp.zeros(2)), bp.nn.Parameter(bp.zeros(1))
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="strong_wolfe"):
        optim.LBFGS([a], line_search_fn="armijo")
    with pytest.raises(RuntimeError, match="closure"):
        optim.LBFGS([a]).step(None)
    # least squares through a Linear layer: L-BFGS with line search reaches the normal-equation solution
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    lin = bp.nn.Linear(3, 1, dtype=bp.float64)
    opt = optim.LBFGS(lin.parameters(), line_search_fn="strong_wolfe", max_iter=100)
    xt, yt = bp.tensor(X), bp.tensor(y)

    def closure():
        opt.zero_grad()
        loss = ((lin(xt) - yt) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    A = np.hstack([X, np.ones((20, 1))])
    sol = np.linalg.lstsq(A, y, rcond=None)[0].ravel()
    got = np.concatenate([lin.weight.detach().numpy().ravel(), lin.bias.detach().numpy()])
    np.testing.assert_allclose(got, sol, rtol=1e-5, atol=1e-6)


def test_lbfgs_strong_wolfe_steps_satisfy_the_wolfe_conditions(monkeypatch):
    """Every step the line search returns meets f(t) <= f(0) + c1 t g(0).d and |g(t).d| <= c2 |g(0).d|
    (c1 = 1e-4, c2 = 0.9, PyTorch's constants) — checked on the values it hands back."""
    from backprop_rs.optim import lbfgs as mod

    original = mod._strong_wolfe
    checked = []

    def checking(obj_func, x, t, d, f, g, gtd, **kw):
        f_new, g_new, t_new, evals = original(obj_func, x, t, d, f, g, gtd, **kw)
        assert f_new <= f + 1e-4 * t_new * gtd + 1e-15
        assert abs(float((g_new * d).sum().item())) <= 0.9 * abs(gtd) + 1e-12
        f_check, _ = obj_func(x, t_new, d)  # the returned value is the objective at the returned step
        assert f_check == pytest.approx(f_new, rel=1e-12, abs=1e-300)
        checked.append(t_new)
        return f_new, g_new, t_new, evals

    monkeypatch.setattr(mod, "_strong_wolfe", checking)
    # lr=4: the first trial step of most iterations overshoots, so bracketing and zoom both run (max_iter 60:
    # max_eval = 75 function evaluations, which the search needs)
    x, *_ = _lbfgs_run([-1.2, 1.0], 1, lr=4.0, max_iter=60, line_search_fn="strong_wolfe")
    assert len(checked) >= 10 and sum(t != 4.0 for t in checked) >= 5  # the search picked other steps
    assert rosen(x) < 1e-6
