"""The table-made in-place variants (``inplace_variants.py``): values against NumPy on a copy,
identity of the returned tensor, the version counter, gradients through the write (finite
differences, float64), and PyTorch's errors (result dtype not castable, result shape grown by
broadcasting, leaf requiring grad). Also ``__contains__``, ``__reversed__``, ``is_nonzero``,
``is_same_size`` and the top-level in-place functions."""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import inplace_variants as iv

F32, F64, I64 = np.float32, np.float64, np.int64
FLOATS = (F32, F64)
CAST_ERR = r"result type .* can't be cast to the desired output type"
# out-of-place ops another change adds; their variants are tested once the op exists
LATE_OPS = {"ldexp", "nextafter", "renorm"}


def arr(rng, dtype, shape=(3, 4), lo=-2.0, hi=2.0):
    if np.issubdtype(dtype, np.integer):
        return rng.integers(int(np.floor(lo)), int(np.ceil(hi)) + 1, size=shape).astype(dtype)
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def ties(rng, dtype, shape=(3, 4)):
    """Values from a small set, so comparisons see equal elements and logical ops see zeros."""
    return rng.choice([-1, 0, 1, 2], size=shape).astype(dtype)


@dataclass
class Case:
    name: str
    ref: Callable[..., Any]
    make: Callable[[Any, Any], Tuple[np.ndarray, list, dict]]  # (rng, dtype) -> (self, operands, kwargs)
    dtypes: Tuple[Any, ...] = FLOATS
    int_raises: bool = True  # an int64 self raises PyTorch's cast error
    grad: Optional[Tuple[int, ...]] = None  # differentiable operand positions (self always); None: no gradcheck
    grow: Any = "binary"  # "binary": operand 0 broadcasts self (4,) to (2, 4); a callable; None
    label: str = ""
    match: str = CAST_ERR
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def id(self):
        return self.label or self.name


def unary(lo=-2.0, hi=2.0, **kw):
    return lambda rng, dt: (arr(rng, dt, lo=lo, hi=hi), [], dict(kw))


def binary(lo=-2.0, hi=2.0, olo=-2.0, ohi=2.0, **kw):
    return lambda rng, dt: (arr(rng, dt, lo=lo, hi=hi), [arr(rng, dt, lo=olo, hi=ohi)], dict(kw))


def tied(rng, dt):
    return ties(rng, dt), [ties(rng, dt)], {}


def away_from_zero(rng, dt, shape=(3, 4)):
    v = arr(rng, dt, shape, 0.5, 2.0)
    return (v * rng.choice([-1, 1], size=shape)).astype(dt)


def renorm_ref(a, p, dim, maxnorm):
    moved = np.moveaxis(a.astype(np.float64), dim, 0)
    norms = np.linalg.norm(moved.reshape(moved.shape[0], -1), ord=p, axis=1)
    scale = np.where(norms > maxnorm, maxnorm / (norms + 1e-7), 1.0)
    return np.moveaxis(moved * scale.reshape((-1,) + (1,) * (moved.ndim - 1)), 0, dim)


def xlogy_ref(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a == 0, 0.0, a * np.log(b))


def logit_ref(a, eps=None):
    if eps is not None:
        a = np.clip(a, eps, 1 - eps)
    return np.log(a / (1 - a))


def heaviside_ref(a, b):
    return np.heaviside(a.astype(np.float64), b.astype(np.float64))


def mm_make(self_shape, *operand_shapes, **kw):
    def make(rng, dt):
        return arr(rng, dt, self_shape), [arr(rng, dt, s) for s in operand_shapes], dict(kw)

    return make


def mm_grow(self_shape, *operand_shapes):
    return lambda rng, dt: (arr(rng, dt, self_shape), [arr(rng, dt, s) for s in operand_shapes], {})


def comparison(name, ref):
    return Case(name, lambda a, b: ref(a, b), tied, dtypes=(F32, F64, I64), int_raises=False)


CASES = [
    Case("absolute_", np.abs, unary(), dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("acosh_", np.arccosh, unary(1.2, 3.0), grad=(), grow=None),
    Case("arccosh_", np.arccosh, unary(1.2, 3.0), grad=(), grow=None),
    Case("arccos_", np.arccos, unary(-0.9, 0.9), grad=(), grow=None),
    Case("arcsin_", np.arcsin, unary(-0.9, 0.9), grad=(), grow=None),
    Case("arcsinh_", np.arcsinh, unary(), grad=(), grow=None),
    Case("asinh_", np.arcsinh, unary(), grad=(), grow=None),
    Case("arctan_", np.arctan, unary(), grad=(), grow=None),
    Case("arctanh_", np.arctanh, unary(-0.9, 0.9), grad=(), grow=None),
    Case("atanh_", np.arctanh, unary(-0.9, 0.9), grad=(), grow=None),
    Case("arctan2_", np.arctan2, binary(0.3, 2.0, 0.3, 2.0), grad=(0,)),
    Case("addmm_", lambda a, m1, m2, beta, alpha: beta * a + alpha * (m1 @ m2),
         mm_make((3, 4), (3, 2), (2, 4), beta=0.5, alpha=2.0), int_raises=False, grad=(0, 1),
         grow=mm_grow((4,), (3, 2), (2, 4))),
    Case("addbmm_", lambda a, b1, b2, beta, alpha: beta * a + alpha * np.einsum("bij,bjk->ik", b1, b2),
         mm_make((3, 4), (5, 3, 2), (5, 2, 4), beta=0.5, alpha=2.0), int_raises=False, grad=(0, 1),
         grow=mm_grow((4,), (5, 3, 2), (5, 2, 4))),
    Case("baddbmm_", lambda a, b1, b2, beta, alpha: beta * a + alpha * (b1 @ b2),
         mm_make((5, 3, 4), (5, 3, 2), (5, 2, 4), beta=0.5, alpha=2.0), int_raises=False, grad=(0, 1),
         grow=mm_grow((3, 4), (5, 3, 2), (5, 2, 4))),
    Case("addmv_", lambda a, m, v, beta, alpha: beta * a + alpha * (m @ v),
         mm_make((3,), (3, 2), (2,), beta=0.5, alpha=2.0), int_raises=False, grad=(0, 1),
         grow=mm_grow((1,), (3, 2), (2,))),
    Case("addr_", lambda a, v1, v2, beta, alpha: beta * a + alpha * np.outer(v1, v2),
         mm_make((3, 4), (3,), (4,), beta=0.5, alpha=2.0), int_raises=False, grad=(0, 1),
         grow=mm_grow((4,), (3,), (4,))),
    Case("bitwise_and_", np.bitwise_and, binary(-20, 20, -20, 20), dtypes=(I64,), int_raises=False),
    Case("bitwise_or_", np.bitwise_or, binary(-20, 20, -20, 20), dtypes=(I64,), int_raises=False),
    Case("bitwise_xor_", np.bitwise_xor, binary(-20, 20, -20, 20), dtypes=(I64,), int_raises=False),
    Case("bitwise_left_shift_", np.left_shift, binary(-20, 20, 0, 5), dtypes=(I64,), int_raises=False),
    Case("bitwise_right_shift_", np.right_shift, binary(-20, 20, 0, 5), dtypes=(I64,), int_raises=False),
    Case("bitwise_not_", np.invert, unary(-20, 20), dtypes=(I64,), int_raises=False, grow=None),
    Case("clip_", lambda a, lo, hi: np.clip(a, lo, hi), lambda rng, dt: (arr(rng, dt), [-1, 1], {}),
         dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("copysign_", np.copysign, lambda rng, dt: (away_from_zero(rng, dt), [away_from_zero(rng, dt)], {}),
         grad=()),
    Case("cumsum_", lambda a, dim: np.cumsum(a, axis=dim, dtype=a.dtype), lambda rng, dt: (arr(rng, dt), [1], {}),
         dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("cumprod_", lambda a, dim: np.cumprod(a, axis=dim, dtype=a.dtype), lambda rng, dt: (arr(rng, dt), [1], {}),
         dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("deg2rad_", np.deg2rad, unary(-200, 200), grad=(), grow=None),
    Case("rad2deg_", np.rad2deg, unary(), grad=(), grow=None),
    Case("divide_", np.true_divide, lambda rng, dt: (arr(rng, dt), [away_from_zero(rng, dt)], {}), grad=(0,)),
    Case("divide_", lambda a, b, rounding_mode: np.floor_divide(a, b), lambda rng, dt: (arr(rng, dt, lo=-20, hi=20), [away_from_zero(rng, dt) if dt != I64
                                                      else rng.choice([-3, -2, 2, 5], size=(3, 4))],
                                                      {"rounding_mode": "floor"}),
         dtypes=(F32, F64, I64), int_raises=False, label="divide_-floor"),
    Case("true_divide_", np.true_divide, lambda rng, dt: (arr(rng, dt), [away_from_zero(rng, dt)], {}),
         grad=(0,)),
    comparison("eq_", np.equal), comparison("ne_", np.not_equal), comparison("not_equal_", np.not_equal),
    comparison("lt_", np.less), comparison("less_", np.less), comparison("le_", np.less_equal),
    comparison("less_equal_", np.less_equal), comparison("gt_", np.greater), comparison("greater_", np.greater),
    comparison("ge_", np.greater_equal), comparison("greater_equal_", np.greater_equal),
    comparison("logical_and_", np.logical_and), comparison("logical_or_", np.logical_or),
    Case("eq_", np.equal, lambda rng, dt: (ties(rng, dt), [1], {}), dtypes=(F32, I64), int_raises=False,
         grow=None, label="eq_-scalar"),
    Case("logical_not_", np.logical_not, lambda rng, dt: (ties(rng, dt), [], {}), dtypes=(F32, F64, I64),
         int_raises=False, grow=None),
    Case("exp2_", np.exp2, unary(), grad=(), grow=None),
    Case("fix_", np.trunc, unary(-5, 5), dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("float_power_", np.float_power, binary(0.5, 2.0, -2.0, 2.0), dtypes=(F64,), grad=(0,),
         match="float_power_"),
    Case("float_power_", np.float_power, lambda rng, dt: (arr(rng, dt, lo=0.5, hi=2.0), [3], {}), dtypes=(F64,),
         grad=(), grow=None, match="float_power_", label="float_power_-scalar"),
    Case("gcd_", np.gcd, binary(-30, 30, -30, 30), dtypes=(I64,), int_raises=False),
    Case("lcm_", np.lcm, binary(-30, 30, -30, 30), dtypes=(I64,), int_raises=False),
    Case("heaviside_", heaviside_ref, tied, dtypes=(F32, F64, I64), int_raises=False),
    Case("ldexp_", np.ldexp, lambda rng, dt: (arr(rng, dt), [rng.integers(-3, 4, size=(3, 4))], {}), grad=(),
         match=r"can't be cast"),
    Case("logit_", logit_ref, unary(0.1, 0.9), grad=(), grow=None),
    Case("logit_", logit_ref, lambda rng, dt: (arr(rng, dt, lo=0.01, hi=0.99), [], {"eps": 0.2}), grad=(),
         grow=None, label="logit_-eps"),
    Case("multiply_", np.multiply, binary(), dtypes=(F32, F64, I64), int_raises=False, grad=(0,)),
    Case("subtract_", lambda a, b, alpha: a - alpha * b, binary(alpha=2), dtypes=(F32, F64, I64),
         int_raises=False, grad=(0,)),
    Case("nan_to_num_", lambda a, nan, posinf, neginf: np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf),
         lambda rng, dt: (np.where(rng.random((3, 4)) < 0.5, arr(rng, dt),
                                   rng.choice([np.nan, np.inf, -np.inf], size=(3, 4))).astype(dt), [],
                          {"nan": 0.5, "posinf": 9.0, "neginf": -9.0}), grow=None, int_raises=False),
    Case("nan_to_num_", np.nan_to_num, unary(), dtypes=(F64, I64), int_raises=False, grad=(), grow=None,
         label="nan_to_num_-finite"),
    Case("negative_", np.negative, unary(), dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("nextafter_", np.nextafter, binary(), int_raises=False),
    Case("pow_", np.power, binary(0.5, 2.0, -2.0, 2.0), int_raises=False, grad=(0,)),
    Case("pow_", np.power, lambda rng, dt: (arr(rng, dt), [2], {}), dtypes=(F32, F64, I64), int_raises=False,
         grad=(), grow=None, label="pow_-int-exponent"),
    Case("pow_", np.power, lambda rng, dt: (arr(rng, dt, lo=0.5, hi=2.0), [0.5], {}), grad=(), grow=None,
         label="pow_-float-exponent"),
    Case("reciprocal_", np.reciprocal, lambda rng, dt: (away_from_zero(rng, dt), [], {}), grad=(), grow=None),
    Case("renorm_", renorm_ref, lambda rng, dt: (arr(rng, dt), [2, 0, 1.5], {}), int_raises=False, grad=(),
         grow=None),
    Case("rsqrt_", lambda a: 1 / np.sqrt(a), unary(0.3, 3.0), grad=(), grow=None),
    Case("sgn_", np.sign, lambda rng, dt: (ties(rng, dt) if dt == I64 else away_from_zero(rng, dt), [], {}),
         dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("sinc_", np.sinc, unary(), grad=(), grow=None),
    Case("square_", np.square, unary(), dtypes=(F32, F64, I64), int_raises=False, grad=(), grow=None),
    Case("xlogy_", xlogy_ref, lambda rng, dt: (np.where(rng.random((3, 4)) < 0.3, 0, arr(rng, dt)).astype(dt),
                                               [arr(rng, dt, lo=0.3, hi=3.0)], {}), grad=(0,),
         # PyTorch's (and our) gradient in x at x == 0 is 0, not the one-sided log(y)
         extra={"grad_make": lambda rng, dt: (away_from_zero(rng, dt), [arr(rng, dt, lo=0.3, hi=3.0)], {})}),
]
GRAD_CASES = [c for c in CASES if c.grad is not None]
INT_RAISES = [c for c in CASES if c.int_raises]
GROW_CASES = [c for c in CASES if c.grow is not None]


def rng_for(case):
    return np.random.default_rng(sum(map(ord, case.id)))


def to_bp(value):
    if isinstance(value, np.ndarray):
        return bp.tensor(value)
    return value


def skip_if_late(case):
    target = iv.INPLACE_TABLE[case.name]
    if target in LATE_OPS and not hasattr(bp.ones(1), target):
        pytest.skip(f"Tensor.{target} (the out-of-place op of {case.name}) is not there yet")


def test_every_table_name_has_a_case_and_is_a_method():
    assert {c.name for c in CASES} == set(iv.INPLACE_TABLE)
    t = bp.ones(2, 2)
    for name in iv.INPLACE_TABLE:
        assert hasattr(t, name), name
        assert getattr(bp.Tensor, name).__doc__


VALUE_PARAMS = [pytest.param(c, d, id=f"{c.id}-{np.dtype(d).name}") for c in CASES for d in c.dtypes]


@pytest.mark.parametrize("case,dtype", VALUE_PARAMS)
def test_values_identity_and_version(case, dtype):
    skip_if_late(case)
    a, ops, kw = case.make(rng_for(case), dtype)
    expected = np.asarray(case.ref(a.copy(), *ops, **kw))
    t = bp.tensor(a)
    v = t._version
    r = getattr(t, case.name)(*map(to_bp, ops), **kw)
    assert r is t
    assert t._version == v + 1
    assert t.dtype == bp.tensor(a).dtype and tuple(t.shape) == a.shape
    got = t.numpy()
    if np.issubdtype(dtype, np.integer):
        np.testing.assert_array_equal(got, expected.astype(dtype))
    else:
        tol = dict(rtol=2e-5, atol=2e-6) if dtype == F32 else dict(rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got, expected.astype(dtype), **tol)
    # the same values as the out-of-place op, cast to self's dtype
    out = getattr(bp.tensor(a), iv.INPLACE_TABLE[case.name])(*map(to_bp, ops), **kw)
    np.testing.assert_array_equal(got, out.numpy().astype(dtype))


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.id for c in GRAD_CASES])
def test_gradcheck_through_the_inplace_op(case):
    skip_if_late(case)
    a, ops, kw = case.extra.get("grad_make", case.make)(rng_for(case), F64)
    x = bp.tensor(a, requires_grad=True)
    diff = [bp.tensor(ops[i], requires_grad=True) for i in case.grad]

    def f(x, *d):
        args = [to_bp(o) for o in ops]
        for i, t in zip(case.grad, d):
            args[i] = t
        y = x.clone()
        r = getattr(y, case.name)(*args, **kw)
        assert r is y
        return y * 1.5

    assert bp.autograd.gradcheck(f, (x, *diff), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", [c for c in GRAD_CASES if c.grad], ids=[c.id for c in GRAD_CASES if c.grad])
def test_gradcheck_for_an_operand_written_into_a_plain_tensor(case):
    """``self`` needs no grad but an operand does: the write records the operand's history."""
    skip_if_late(case)
    a, ops, kw = case.extra.get("grad_make", case.make)(rng_for(case), F64)
    diff = [bp.tensor(ops[i], requires_grad=True) for i in case.grad]

    def f(*d):
        args = [to_bp(o) for o in ops]
        for i, t in zip(case.grad, d):
            args[i] = t
        y = bp.tensor(a)
        getattr(y, case.name)(*args, **kw)
        return y

    assert bp.autograd.gradcheck(f, tuple(diff), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", INT_RAISES, ids=[c.id for c in INT_RAISES])
def test_int_self_with_a_float_result_raises(case):
    skip_if_late(case)
    dtype = I64
    a, ops, kw = case.make(rng_for(case), dtype)
    t = bp.tensor(a)
    v = t._version
    with pytest.raises(RuntimeError, match=case.match):
        getattr(t, case.name)(*map(to_bp, ops), **kw)
    assert t._version == v
    np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize("case", GROW_CASES, ids=[c.id for c in GROW_CASES])
def test_result_grown_by_broadcasting_raises(case):
    skip_if_late(case)
    rng, dtype = rng_for(case), case.dtypes[0]
    if callable(case.grow):
        a, ops, _ = case.grow(rng, dtype)
        _, _, kw = case.make(rng, dtype)
    else:
        _, ops0, kw = case.make(rng, dtype)
        a = arr(rng, dtype, (4,))
        ops = [np.resize(ops0[0], (2, 4)).astype(ops0[0].dtype)]
    t = bp.tensor(a)
    with pytest.raises(RuntimeError, match=r"doesn.t match the broadcast shape"):
        getattr(t, case.name)(*map(to_bp, ops), **kw)
    np.testing.assert_array_equal(t.numpy(), a)


# ops PyTorch defines for some dtypes only: a self of another dtype is refused, and left as it was
REFUSED = [(c, F32) for c in CASES if c.dtypes == (I64,)] + [
    (c, I64) for c in CASES if c.name in ("renorm_", "nextafter_")]


@pytest.mark.parametrize("case,dtype", REFUSED, ids=[f"{c.id}-{np.dtype(d).name}" for c, d in REFUSED])
def test_dtype_the_op_does_not_support_is_refused(case, dtype):
    skip_if_late(case)
    a, ops, kw = case.make(rng_for(case), dtype)
    t = bp.tensor(a)
    v = t._version
    with pytest.raises((RuntimeError, TypeError)):
        getattr(t, case.name)(*map(to_bp, ops), **kw)
    assert t._version == v
    np.testing.assert_array_equal(t.numpy(), a)


FLOAT_CASES = [c for c in CASES if F32 in c.dtypes or F64 in c.dtypes]


@pytest.mark.parametrize("case", FLOAT_CASES, ids=[c.id for c in FLOAT_CASES])
def test_leaf_that_requires_grad_is_refused_unless_no_grad(case):
    skip_if_late(case)
    dtype = F64 if F64 in case.dtypes else F32
    a, ops, kw = case.make(rng_for(case), dtype)
    x = bp.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(x, case.name)(*map(to_bp, ops), **kw)
    np.testing.assert_array_equal(x.detach().numpy(), a)
    with bp.no_grad():
        r = getattr(x, case.name)(*map(to_bp, ops), **kw)
    assert r is x
    expected = np.asarray(case.ref(a.copy(), *ops, **kw)).astype(dtype)
    np.testing.assert_allclose(x.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_the_op_sees_the_history_before_the_write():
    rng = np.random.default_rng(0)
    a = rng.uniform(1.2, 3.0, size=5)
    x = bp.tensor(a, requires_grad=True)
    y = x * 2
    y.acosh_()
    assert not y.is_leaf and y.requires_grad
    (y * y).sum().backward()
    u = 2 * a
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.arccosh(u) * 2 / np.sqrt(u * u - 1), rtol=1e-12)


def test_write_through_views_reaches_the_base():
    rng = np.random.default_rng(1)
    a = rng.uniform(-2, 2, size=(3, 4))
    t = bp.tensor(a)
    t[:, 1].square_()
    t.t()[2].cumsum_(0)  # a non-contiguous view: column 2
    ref = a.copy()
    ref[:, 1] **= 2
    ref[:, 2] = np.cumsum(ref[:, 2])
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-12)


def test_comparison_writes_ones_and_zeros_in_selfs_dtype():
    rng = np.random.default_rng(2)
    a, b = ties(rng, F32), ties(rng, F32)
    t = bp.tensor(a)
    t.lt_(bp.tensor(b))
    assert t.dtype == bp.float32
    np.testing.assert_array_equal(t.numpy(), (a < b).astype(F32))
    m = bp.tensor(a != 0)
    m.logical_not_()
    assert m.dtype == bp.bool
    np.testing.assert_array_equal(m.numpy(), a == 0)


def test_integer_self_gets_floor_division_but_not_true_division():
    t = bp.tensor(np.arange(-6, 6))
    t.divide_(4, rounding_mode="floor")
    np.testing.assert_array_equal(t.numpy(), np.floor_divide(np.arange(-6, 6), 4))
    with pytest.raises(RuntimeError, match=CAST_ERR):
        bp.tensor(np.arange(3)).divide_(2)


def test_float_power_needs_a_float64_self_even_for_an_integer_exponent():
    for dtype in (bp.float32, bp.int64):
        with pytest.raises(RuntimeError, match="float_power_"):
            bp.ones(3, dtype=dtype).float_power_(2)


def test_cumulative_dtype_must_match_self():
    with pytest.raises(RuntimeError, match="should match"):
        bp.arange(4).cumsum_(0, dtype=bp.float32)
    t = bp.arange(4)
    t.cumprod_(0, dtype=bp.int64)
    np.testing.assert_array_equal(t.numpy(), np.cumprod(np.arange(4)))


def test_expanded_self_is_refused_as_the_engines_own_inplace_ops():
    with pytest.raises(ValueError, match="single memory location"):
        bp.ones(1).expand(3).sqrt_()
    with pytest.raises(ValueError, match="single memory location"):
        bp.ones(1).expand(3).square_()


# ------------------------------------------------------------------ protocol methods


def test_contains():
    rng = np.random.default_rng(3)
    a = rng.integers(-5, 5, size=(3, 4))
    t = bp.tensor(a)
    for v in range(-7, 7):
        assert (v in t) == (v in a.ravel().tolist())
    assert (float(a[1, 2]) + 0.5 in t) is False
    row = bp.tensor(a[1])
    assert row in t
    assert bp.tensor(a[1] + 100) not in t
    for bad in ("a", [1], None):
        with pytest.raises(RuntimeError, match="only supports Tensor or scalar"):
            bad in t  # noqa: B015


def test_reversed():
    rng = np.random.default_rng(4)
    a = rng.uniform(size=(3, 2))
    np.testing.assert_array_equal(reversed(bp.tensor(a)).numpy(), a[::-1])
    s = bp.tensor(1.5)
    assert reversed(s) is s


def test_is_nonzero():
    rng = np.random.default_rng(5)
    for v in [0.0, float(rng.uniform(0.1, 1)), -3.0, float("nan")]:
        assert bp.tensor([[v]]).is_nonzero() == (v != 0)
    assert bp.tensor(0).is_nonzero() is False and bp.tensor(True).is_nonzero() is True
    with pytest.raises(RuntimeError, match="no values is ambiguous"):
        bp.zeros(0).is_nonzero()
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bp.ones(2).is_nonzero()
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bp.is_nonzero(bp.ones(2))


def test_is_same_size():
    a = bp.ones(2, 3)
    assert a.is_same_size(bp.zeros(2, 3, dtype=bp.int64))
    assert not a.is_same_size(bp.zeros(3, 2))
    assert not a.is_same_size(bp.zeros(2, 3, 1))
    with pytest.raises(TypeError):
        a.is_same_size(3)


# ------------------------------------------------------------------ top-level functions

TOPLEVEL_ARGS = {
    "addmv_": lambda rng: ([bp.tensor(arr(rng, F32, (3, 2))), bp.tensor(arr(rng, F32, (2,)))], {}),
    "clamp_": lambda rng: ([0.3, 0.6], {}), "clip_": lambda rng: ([0.3, 0.6], {}),
    "clamp_max_": lambda rng: ([0.5], {}), "clamp_min_": lambda rng: ([0.5], {}),
    "fill_": lambda rng: ([float(rng.uniform())], {}),
    "xlogy_": lambda rng: ([bp.tensor(arr(rng, F32, (3,), 0.5, 2.0))], {}),
    "ldexp_": lambda rng: ([bp.tensor(rng.integers(-2, 3, size=3))], {}),
    "index_put_": lambda rng: ([(bp.tensor([0, 2]),), bp.tensor([5.0, 6.0], dtype=bp.float32)], {}),
}
INT_TOPLEVEL = {"gcd_", "lcm_"}


@pytest.mark.parametrize("name", iv.TOPLEVEL_METHOD_NAMES)
def test_toplevel_function_is_the_inplace_method(name):
    if name == "ldexp_" and not hasattr(bp.ones(1), "ldexp"):
        pytest.skip("Tensor.ldexp is not there yet")
    fn = iv.toplevel_functions()[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    if name in INT_TOPLEVEL:
        a = rng.integers(-20, 20, size=3)
        args, kw = [bp.tensor(rng.integers(-20, 20, size=3))], {}
    else:
        a = arr(rng, F32, (3,), 0.2, 0.8)
        args, kw = TOPLEVEL_ARGS.get(name, lambda rng: ([], {}))(rng)
    expected = getattr(bp.tensor(a), name)(*args, **kw).numpy()
    t = bp.tensor(a)
    assert fn(t, *args, **kw) is t
    np.testing.assert_array_equal(t.numpy(), expected)
    assert not np.array_equal(t.numpy(), a) or np.array_equal(expected, a)


def test_toplevel_functional_inplace_activations():
    from backprop_rs.nn import functional as F

    fns = iv.toplevel_functions()
    rng = np.random.default_rng(6)
    a = arr(rng, F32, (4, 5))
    for name, ref in [("celu_", lambda x: F.celu(x, 0.7)), ("selu_", F.selu),
                      ("threshold_", lambda x: F.threshold(x, 0.1, -3.0)), ("rrelu_", F.rrelu),
                      ("dropout_", lambda x: x), ("alpha_dropout_", lambda x: x),
                      ("feature_alpha_dropout_", lambda x: x)]:
        t = bp.tensor(a)
        args = {"celu_": (0.7,), "threshold_": (0.1, -3.0), "dropout_": (0.5, False), "alpha_dropout_": (0.5, False),
                "feature_alpha_dropout_": (0.5, False)}.get(name, ())
        assert fns[name](t, *args) is t, name
        np.testing.assert_allclose(t.numpy(), ref(bp.tensor(a)).numpy(), rtol=1e-6, err_msg=name)
    t = bp.ones(1000)
    fns["dropout_"](t, 0.5, True)
    vals = t.numpy()
    assert set(np.unique(vals).tolist()) <= {0.0, 2.0} and 0 < (vals == 0).sum() < 1000


def test_toplevel_fill_is_out_of_place():
    rng = np.random.default_rng(7)
    a = rng.integers(-5, 5, size=(2, 3))
    t = bp.tensor(a)
    v = float(rng.uniform(1, 4))
    out = iv.toplevel_functions()["fill"](t, v)
    assert out is not t and out.dtype == bp.int64 and tuple(out.shape) == (2, 3)
    np.testing.assert_array_equal(out.numpy(), np.full((2, 3), int(v)))
    np.testing.assert_array_equal(t.numpy(), a)
    s = bp.tensor(v, dtype=bp.float64, requires_grad=True)
    out = iv.toplevel_functions()["fill"](bp.zeros(2, 3, dtype=bp.float64), s)
    np.testing.assert_allclose(out.detach().numpy(), np.full((2, 3), v))
    out.sum().backward()
    assert float(s.grad.item()) == 6.0


def test_public_functions_have_docstrings():
    for f in [iv.tensor_methods, iv.toplevel_functions, iv.make_inplace, iv.write_result, *iv.tensor_methods().values(),
              *iv.toplevel_functions().values()]:
        assert f.__doc__, f
