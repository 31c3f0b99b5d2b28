"""LR schedulers: each one over >= 20 steps against a plain-Python evaluation of the formula
PyTorch documents for it (closed forms, the SGDR / CLR / 1cycle papers' rules, the examples in
PyTorch's docstrings); chaining, state_dict round trips and the warnings."""

import math
import warnings

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import optim
from backprop_rs.optim import lr_scheduler as sched

N = 25  # steps per schedule


def sgd(lr=0.1, groups=1, **kw):
    ps = [bp.nn.Parameter(bp.zeros(1)) for _ in range(groups)]
    if groups == 1:
        return optim.SGD(ps, lr=lr, **kw)
    return optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr, **kw)


def run(s, n=N, group=0, key="lr"):
    """The rate (or another group entry) in effect for each of n epochs, stepping as a training
    loop does: optimizer.step() then scheduler.step()."""
    out = []
    for _ in range(n):
        g = s.optimizer.param_groups[group]
        out.append(g[key] if key != "beta1" else g["betas"][0])
        s.optimizer.step()
        s.step()
    return out


def close(got, want, rtol=1e-10):
    np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=rtol, atol=1e-15)


def test_lambda_and_multiplicative():
    f = lambda e: 0.95**e + (e // 7)  # noqa: E731
    close(run(sched.LambdaLR(sgd(0.5), lr_lambda=f)), [0.5 * f(e) for e in range(N)])
    # one lambda per group
    opt = sgd(0.1, groups=2)
    s = sched.LambdaLR(opt, lr_lambda=[lambda e: 1.0 / (e + 1), lambda e: 2.0**-e])
    close(run(s, group=1), [0.2 * 2.0**-e for e in range(N)])
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        sched.LambdaLR(opt, lr_lambda=[f])
    # MultiplicativeLR: lr_e = lr_{e-1} * f(e), lr_0 = base
    g = lambda e: 0.9 if e % 2 else 1.05  # noqa: E731
    want = [0.3]
    for e in range(1, N):
        want.append(want[-1] * g(e))
    close(run(sched.MultiplicativeLR(sgd(0.3), lr_lambda=g)), want)
    with pytest.raises(TypeError, match="lr_lambda should be a function"):
        sched.MultiplicativeLR(sgd(), lr_lambda=3)


def test_step_multistep_constant_linear_exponential_polynomial():
    close(run(sched.StepLR(sgd(0.2), step_size=4, gamma=0.5)), [0.2 * 0.5 ** (e // 4) for e in range(N)])
    ms = [3, 8, 8, 15]  # a repeated milestone decays twice
    close(run(sched.MultiStepLR(sgd(0.2), milestones=ms, gamma=0.3)),
          [0.2 * 0.3 ** sum(m <= e for m in ms) for e in range(N)])
    close(run(sched.ConstantLR(sgd(0.2), factor=0.25, total_iters=6)),
          [0.2 * (0.25 if e < 6 else 1.0) for e in range(N)])
    close(run(sched.LinearLR(sgd(0.2), start_factor=0.1, end_factor=0.9, total_iters=12)),
          [0.2 * (0.1 + 0.8 * min(e, 12) / 12) for e in range(N)])
    close(run(sched.ExponentialLR(sgd(0.2), gamma=0.87)), [0.2 * 0.87**e for e in range(N)])
    close(run(sched.PolynomialLR(sgd(0.2), total_iters=17, power=2.5)),
          [0.2 * (1 - min(e, 17) / 17) ** 2.5 for e in range(N)])
    # defaults are PyTorch's
    close(run(sched.ConstantLR(sgd(0.3))), [0.3 * (1 / 3 if e < 5 else 1) for e in range(N)])
    close(run(sched.LinearLR(sgd(0.3))), [0.3 * (1 / 3 + (2 / 3) * min(e, 5) / 5) for e in range(N)])
    close(run(sched.PolynomialLR(sgd(0.3))), [0.3 * (1 - min(e, 5) / 5) for e in range(N)])
    with pytest.raises(ValueError, match="Constant multiplicative factor expected to be between 0 and 1"):
        sched.ConstantLR(sgd(), factor=1.5)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        sched.LinearLR(sgd(), start_factor=0)
    with pytest.raises(ValueError, match="Ending multiplicative factor"):
        sched.LinearLR(sgd(), end_factor=2)


def test_cosine_annealing_follows_the_cosine_past_t_max():
    # the recursive form reproduces eta_min + (base - eta_min) (1 + cos(pi e / T_max)) / 2 for all e,
    # including the rise after T_max (the curve has period 2 T_max)
    got = run(sched.CosineAnnealingLR(sgd(0.5), T_max=9, eta_min=0.05), n=40)
    close(got, [0.05 + 0.45 * (1 + math.cos(math.pi * e / 9)) / 2 for e in range(40)], rtol=1e-9)


def test_cosine_annealing_warm_restarts():
    # SGDR: T_i = T_0 * T_mult^i; T_cur counts epochs since the last restart
    def want(e, T_0, T_mult, base, eta_min):
        T_i, start = T_0, 0
        while e - start >= T_i:
            start += T_i
            T_i *= T_mult
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (e - start) / T_i)) / 2

    close(run(sched.CosineAnnealingWarmRestarts(sgd(0.4), T_0=3, T_mult=2, eta_min=0.01), n=40),
          [want(e, 3, 2, 0.4, 0.01) for e in range(40)])
    close(run(sched.CosineAnnealingWarmRestarts(sgd(0.4), T_0=7)), [want(e, 7, 1, 0.4, 0.0) for e in range(N)])
    # fractional epochs (one step per batch): T_cur = epoch since the restart
    s = sched.CosineAnnealingWarmRestarts(sgd(0.4), T_0=4, T_mult=2)
    for epoch in (0.5, 2.25, 5.5, 13.0):
        s.step(epoch)  # its documented per-batch form: no deprecation warning
        T_i, start = (4, 0) if epoch < 4 else ((8, 4) if epoch < 12 else (16, 12))
        close([s.get_last_lr()[0]], [0.2 * (1 + math.cos(math.pi * (epoch - start) / T_i))])
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        sched.CosineAnnealingWarmRestarts(sgd(), T_0=0)
    with pytest.raises(ValueError, match="Expected integer T_mult >= 1"):
        sched.CosineAnnealingWarmRestarts(sgd(), T_0=2, T_mult=0)


def clr_reference(it, base, top, step, mode="triangular", gamma=1.0):
    """Smith's CLR policy as written in the paper / bckenstler's CLR (symmetric cycle)."""
    cycle = math.floor(1 + it / (2 * step))
    x = abs(it / step - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma**it}[mode]
    return base + (top - base) * max(0.0, 1 - x) * scale, max(0.0, 1 - x) * scale


@pytest.mark.parametrize("mode,gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.97)])
def test_cyclic_lr_modes_and_momentum(mode, gamma):
    s = sched.CyclicLR(sgd(momentum=0.9), base_lr=0.01, max_lr=0.11, step_size_up=4, mode=mode, gamma=gamma)
    got = run(s, n=30)
    close(got, [clr_reference(i, 0.01, 0.11, 4, mode, gamma)[0] for i in range(30)])
    s = sched.CyclicLR(sgd(momentum=0.9), base_lr=0.01, max_lr=0.11, step_size_up=4, mode=mode, gamma=gamma)
    # momentum cycles inversely, between max_momentum (0.9) and base_momentum (0.8)
    close(run(s, n=30, key="momentum"), [0.9 - 0.1 * clr_reference(i, 0, 1, 4, mode, gamma)[1] for i in range(30)])


def test_cyclic_lr_asymmetric_custom_scale_and_adam_beta1():
    # up over 3 steps, down over 6: linear pieces between base and max
    s = sched.CyclicLR(sgd(), base_lr=0.1, max_lr=1.0, step_size_up=3, step_size_down=6, cycle_momentum=False)
    want = []
    for i in range(27):
        t = i % 9
        want.append(0.1 + 0.9 * (t / 3 if t <= 3 else 1 - (t - 3) / 6))
    close(run(s, n=27), want)
    s = sched.CyclicLR(sgd(), base_lr=0.1, max_lr=1.0, step_size_up=2, scale_fn=lambda c: 1.0 / c,
                       scale_mode="cycle", cycle_momentum=False)
    close(run(s, n=20), [0.1 + 0.9 * (1 - abs(i / 2 - 2 * (i // 4 + 1) + 1)) / (i // 4 + 1) for i in range(20)])
    adam = optim.Adam([bp.nn.Parameter(bp.zeros(1))], lr=1.0)
    s = sched.CyclicLR(adam, base_lr=0.1, max_lr=1.0, step_size_up=5)
    close(run(s, n=20, key="beta1"), [0.9 - 0.1 * clr_reference(i, 0, 1, 5)[1] for i in range(20)])
    assert adam.param_groups[0]["betas"][1] == 0.999
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        sched.CyclicLR(optim.Adagrad([bp.nn.Parameter(bp.zeros(1))]), 0.1, 1.0)
    with pytest.raises(ValueError, match="mode is invalid and scale_fn is None"):
        sched.CyclicLR(sgd(), 0.1, 1.0, mode="square", cycle_momentum=False)


def one_cycle_reference(t, total, max_lr, pct, div, final_div, anneal, three_phase):
    init, low = max_lr / div, max_lr / div / final_div
    ann = (lambda a, b, p: b + (a - b) / 2 * (1 + math.cos(math.pi * p))) if anneal == "cos" else \
        (lambda a, b, p: a + (b - a) * p)
    up = pct * total - 1
    if not three_phase:
        return ann(init, max_lr, t / up) if t <= up else ann(max_lr, low, (t - up) / (total - 1 - up))
    down = 2 * pct * total - 2
    if t <= up:
        return ann(init, max_lr, t / up)
    if t <= down:
        return ann(max_lr, init, (t - up) / (down - up))
    return ann(init, low, (t - down) / (total - 1 - down))


@pytest.mark.parametrize("anneal,three_phase", [("cos", False), ("linear", False), ("cos", True), ("linear", True)])
def test_one_cycle(anneal, three_phase):
    total = 30
    s = sched.OneCycleLR(sgd(momentum=0.9), max_lr=2.0, total_steps=total, pct_start=0.25, anneal_strategy=anneal,
                         three_phase=three_phase, div_factor=10.0, final_div_factor=100.0)
    want = [one_cycle_reference(t, total, 2.0, 0.25, 10.0, 100.0, anneal, three_phase) for t in range(total)]
    close(run(s, n=total), want)
    with pytest.raises(ValueError, match="Tried to step 31 times. The specified number of total steps is 30"):
        s.step()
    s = sched.OneCycleLR(sgd(), max_lr=1.0, epochs=3, steps_per_epoch=7)
    assert s.total_steps == 21
    for kwargs, msg in ((dict(), "You must define either total_steps OR"),
                        (dict(total_steps=0), "positive integer total_steps"),
                        (dict(total_steps=5, pct_start=1), "Expected float between 0 and 1 pct_start"),
                        (dict(total_steps=5, anneal_strategy="exp"), "anneal_strategy must be one of")):
        with pytest.raises(ValueError, match=msg):
            sched.OneCycleLR(sgd(), max_lr=1.0, **kwargs)


def test_sequential_lr_follows_pytorchs_docstring_example():
    # ConstantLR(factor=0.1, total_iters=20) then ExponentialLR(0.9) from epoch 20
    opt = sgd(0.05)
    s1 = sched.ConstantLR(opt, factor=0.1, total_iters=20)
    s2 = sched.ExponentialLR(opt, gamma=0.9)
    s = sched.SequentialLR(opt, schedulers=[s1, s2], milestones=[20])
    close(run(s, n=30), [0.005 if e < 20 else 0.05 * 0.9 ** (e - 20) for e in range(30)])
    opt = sgd(0.05)
    with pytest.raises(ValueError, match="expects number of schedulers provided to be one more"):
        sched.SequentialLR(opt, [sched.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        sched.SequentialLR(opt, [sched.StepLR(opt, 2), sched.ReduceLROnPlateau(opt)], milestones=[3])
    other = sgd()
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        sched.SequentialLR(opt, [sched.StepLR(opt, 2), sched.StepLR(other, 2)], milestones=[3])


def test_chained_scheduler_composes_chainable_forms():
    opt = sgd(0.5)
    s = sched.ChainedScheduler([sched.ConstantLR(opt, factor=0.1, total_iters=20), sched.ExponentialLR(opt, gamma=0.9)])
    close(run(s, n=30), [0.5 * 0.9**e * (0.1 if e < 20 else 1.0) for e in range(30)])
    opt = sgd(0.5)
    s = sched.ChainedScheduler([sched.StepLR(opt, step_size=5, gamma=0.5), sched.MultiStepLR(opt, [3, 12], gamma=0.1)],
                               optimizer=opt)
    close(run(s), [0.5 * 0.5 ** (e // 5) * 0.1 ** sum(m <= e for m in (3, 12)) for e in range(N)])
    with pytest.raises(ValueError, match="at least one scheduler"):
        sched.ChainedScheduler([])


def plateau_reference(metrics, lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps):
    """PyTorch's documented rule: an epoch is bad unless the metric beats best by the threshold; more
    than `patience` bad epochs in a row reduce lr (never below min_lr, not by less than eps) and
    start `cooldown` epochs during which bad epochs are not counted."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    out = []
    for m in metrics:
        if mode == "min":
            better = m < (best * (1 - threshold) if threshold_mode == "rel" else best - threshold)
        else:
            better = m > (best * (1 + threshold) if threshold_mode == "rel" else best + threshold)
        if better:
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool, bad = cooldown, 0
        out.append(lr)
    return out


@pytest.mark.parametrize("mode,threshold_mode,cooldown",
                         [("min", "rel", 0), ("min", "abs", 2), ("max", "rel", 1), ("max", "abs", 0)])
def test_reduce_lr_on_plateau(mode, threshold_mode, cooldown):
    rng = np.random.default_rng(3)
    metrics = (np.cumsum(rng.normal(0, 1, 40)) * (1 if mode == "min" else -1)).tolist()
    metrics[10:20] = [metrics[9]] * 10  # a real plateau
    opt = sgd(1.0)
    s = sched.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=2, threshold=0.05, threshold_mode=threshold_mode,
                                cooldown=cooldown, min_lr=0.02)
    got = []
    for m in metrics:
        s.step(bp.tensor(m))  # a 0-d tensor works like a float
        got.append(opt.param_groups[0]["lr"])
    want = plateau_reference(metrics, 1.0, mode, 0.5, 2, 0.05, threshold_mode, cooldown, 0.02, 1e-8)
    close(got, want)
    assert min(want) < 1.0 and s.get_last_lr() == [want[-1]]
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        sched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode top is unknown!"):
        sched.ReduceLROnPlateau(opt, mode="top")
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        sched.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])


FACTORIES = {
    "LambdaLR": lambda o: sched.LambdaLR(o, lambda e: 0.9**e),
    "MultiplicativeLR": lambda o: sched.MultiplicativeLR(o, lambda e: 0.9),
    "StepLR": lambda o: sched.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda o: sched.MultiStepLR(o, [2, 5, 9], 0.5),
    "ConstantLR": lambda o: sched.ConstantLR(o, 0.5, 4),
    "LinearLR": lambda o: sched.LinearLR(o, 0.2, 1.0, 8),
    "ExponentialLR": lambda o: sched.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda o: sched.PolynomialLR(o, 12, 2.0),
    "CosineAnnealingLR": lambda o: sched.CosineAnnealingLR(o, 7, 0.01),
    "CosineAnnealingWarmRestarts": lambda o: sched.CosineAnnealingWarmRestarts(o, 3, 2),
    "CyclicLR": lambda o: sched.CyclicLR(o, 0.01, 0.1, 3, mode="triangular2"),
    "OneCycleLR": lambda o: sched.OneCycleLR(o, 1.0, total_steps=40),
    "SequentialLR": lambda o: sched.SequentialLR(
        o, [sched.LinearLR(o, 0.5, total_iters=3), sched.ExponentialLR(o, 0.8)], [4]),
    "ChainedScheduler": lambda o: sched.ChainedScheduler([sched.StepLR(o, 2, 0.7), sched.ExponentialLR(o, 0.95)]),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_resume_continues_the_schedule_exactly(name):
    make = FACTORIES[name]
    o1 = sgd(0.1, momentum=0.9)
    s1 = make(o1)
    run(s1, n=6)
    o2 = sgd(0.1, momentum=0.9)
    s2 = make(o2)
    o2.load_state_dict(o1.state_dict())
    s2.load_state_dict(s1.state_dict())
    assert getattr(s2, "last_epoch", None) == getattr(s1, "last_epoch", None) and s2.get_last_lr() == s1.get_last_lr()
    assert run(s2, n=15) == run(s1, n=15)


def test_reduce_on_plateau_and_lambda_state_dicts():
    o = sgd(1.0)
    s = sched.ReduceLROnPlateau(o, patience=0, factor=0.5)
    for m in (1.0, 2.0, 3.0):
        s.step(m)
    s2 = sched.ReduceLROnPlateau(sgd(1.0))
    s2.load_state_dict(s.state_dict())
    assert (s2.best, s2.num_bad_epochs, s2.patience, s2.last_epoch) == (1.0, 0, 0, 3)

    class Scale:
        def __init__(self, k):
            self.k = k

        def __call__(self, e):
            return self.k**e

    s = sched.LambdaLR(sgd(), [Scale(0.5)])
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"k": 0.5}]  # callable objects save their state
    assert sched.LambdaLR(sgd(), lambda e: 1.0).state_dict()["lr_lambdas"] == [None]  # functions are not saved
    s3 = sched.LambdaLR(sgd(), [Scale(0.9)])
    s3.load_state_dict(sd)
    assert s3.lr_lambdas[0].k == 0.5 and "lr_lambdas" in sd


def test_warnings_and_resume_rules():
    o = sgd()
    s = sched.StepLR(o, 2)
    with pytest.warns(UserWarning, match="Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`"):
        s.step()
    o = sgd()
    s = sched.StepLR(o, 2)
    o.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.step()
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        s.get_lr()
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified in param_groups\\[0\\]"):
        sched.StepLR(sgd(), 2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        sched.StepLR(object(), 2)
    # step(epoch) jumps with the closed form (and warns, as in PyTorch)
    s = sched.MultiStepLR(sgd(1.0), [2, 4], 0.1)
    s.optimizer.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        s.step(5)
    close(s.get_last_lr(), [0.01])
    # resuming at last_epoch=k with initial_lr present leaves the rate where it was
    o = sgd(0.1)
    s = sched.ExponentialLR(o, 0.5)
    run(s, n=3)
    s2 = sched.ExponentialLR(o, 0.5, last_epoch=s.last_epoch)
    close(s2.get_last_lr(), [0.1 * 0.5**3])
    assert isinstance(s, sched._LRScheduler) is False and issubclass(sched._LRScheduler, sched.LRScheduler)
