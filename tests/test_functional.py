"""backprop_rs.autograd.functional and backprop_rs.func against NumPy.

Every derivative is compared with float64 central finite differences of an independent NumPy
implementation of the same function: first derivatives with step 1e-6 (truncation ~1e-12,
round-off ~1e-10 for these O(1) values), checked at rtol=atol=1e-6; second derivatives with the
four-point formula at step 1e-4 (truncation and round-off ~1e-8), checked at rtol=atol=1e-5.
Identities between the APIs (hvp == H v, jvp == J v, ...) hold to float64 round-off and are
checked at 1e-10. Shapes and return structures follow PyTorch's documentation.
"""

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.func as bpfunc
from backprop_rs.autograd import functional as AF
import backprop_rs.nn.functional as F

FD_TOL = dict(rtol=1e-6, atol=1e-6)
FD2_TOL = dict(rtol=1e-5, atol=1e-5)
EXACT = dict(rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------- finite differences (NumPy)


def fd_jacobian(f_np, inputs, eps=1e-6):
    """``J[i][j]`` of shape ``out_i.shape + in_j.shape`` for ``f_np(*inputs) -> tuple of arrays``."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    outs = f_np(*inputs)
    jac = [[np.zeros(o.shape + a.shape) for a in inputs] for o in outs]
    for j, a in enumerate(inputs):
        for k in range(a.size):
            plus = [b.copy() for b in inputs]
            minus = [b.copy() for b in inputs]
            plus[j].reshape(-1)[k] += eps
            minus[j].reshape(-1)[k] -= eps
            for i, (op, om) in enumerate(zip(f_np(*plus), f_np(*minus))):
                jac[i][j].reshape(op.shape + (-1,))[..., k] = (op - om) / (2 * eps)
    return jac


def fd_hessian(s_np, inputs, h=1e-4):
    """``H[i][j]`` of shape ``in_i.shape + in_j.shape`` for a scalar ``s_np(*inputs)``."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]

    def at(shifts):
        moved = [a.copy() for a in inputs]
        for j, k, d in shifts:
            moved[j].reshape(-1)[k] += d
        return float(s_np(*moved))

    hess = [[np.zeros(a.shape + b.shape) for b in inputs] for a in inputs]
    for i, a in enumerate(inputs):
        for j, b in enumerate(inputs):
            flat = hess[i][j].reshape(a.size, b.size)
            for k in range(a.size):
                for m in range(b.size):
                    flat[k, m] = (
                        at([(i, k, h), (j, m, h)])
                        - at([(i, k, h), (j, m, -h)])
                        - at([(i, k, -h), (j, m, h)])
                        + at([(i, k, -h), (j, m, -h)])
                    ) / (4 * h * h)
    return hess


def t64(a, requires_grad=False):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=bp.float64, requires_grad=requires_grad)


def close(actual, expected, tol):
    assert isinstance(actual, bp.Tensor), type(actual)
    assert tuple(actual.shape) == tuple(np.shape(expected)), (actual.shape, np.shape(expected))
    np.testing.assert_allclose(actual.detach().numpy(), expected, **tol)


# ----------------------------------------------------------------- test functions, twice each

# fixed points; the vectors each test draws come from np.random, which conftest seeds per test
_rng = np.random.default_rng(7)
X3 = _rng.uniform(0.3, 1.5, size=3)
X23 = _rng.uniform(-1.0, 1.0, size=(2, 3))
W34 = _rng.uniform(-1.0, 1.0, size=(3, 4))
A3 = _rng.uniform(-1.0, 1.0, size=3)
B23 = _rng.uniform(-1.0, 1.0, size=(2, 3))
M22 = _rng.uniform(0.2, 1.0, size=(2, 2))


def elementwise_bp(x):
    return x.sin() * x.exp() + x.tanh() ** 2 + x.log()


def elementwise_np(x):
    return (np.sin(x) * np.exp(x) + np.tanh(x) ** 2 + np.log(x),)


def matmul_bp(x, w):
    return (x @ w).tanh() / (1.0 + w.sum(0) ** 2)


def matmul_np(x, w):
    return (np.tanh(x @ w) / (1.0 + w.sum(0) ** 2),)


def two_out_bp(a, b):
    return (b * a).sum(1), a.exp() / (1.0 + b**2)


def two_out_np(a, b):
    return (b * a).sum(1), np.exp(a) / (1.0 + b**2)


# a single input, a tuple of inputs, several outputs: (bp function, NumPy function, inputs)
CASES = {
    "elementwise": (elementwise_bp, elementwise_np, (X3,)),
    "matmul": (matmul_bp, matmul_np, (X23, W34)),
    "two_outputs": (two_out_bp, two_out_np, (A3, B23)),
}


def scalar_mat_bp(x):
    return (x @ x).sin().sum() + (x**3).mean()


def scalar_mat_np(x):
    return np.sin(x @ x).sum() + (x**3).mean()


def scalar_two_bp(a, b):
    return (b @ a).tanh().sum() + (a * a).sum() * b.exp().mean()


def scalar_two_np(a, b):
    return np.tanh(b @ a).sum() + (a * a).sum() * np.exp(b).mean()


SCALAR_CASES = {
    "matrix": (scalar_mat_bp, scalar_mat_np, (M22,)),
    "two_inputs": (scalar_two_bp, scalar_two_np, (A3, B23)),
}


def as_inputs(arrays, requires_grad=False):
    """A bare tensor for one input (the non-tuple API path), a tuple otherwise."""
    ts = tuple(t64(a, requires_grad) for a in arrays)
    return ts[0] if len(ts) == 1 else ts


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def contract_out(jac_i_j, v, out_ndim):
    """``v . J`` over the output dims of one Jacobian block."""
    return np.tensordot(v, jac_i_j, axes=out_ndim)


def contract_in(jac_i_j, v):
    """``J . v`` over the input dims of one Jacobian block."""
    return np.tensordot(jac_i_j, v, axes=v.ndim)


# ================================================================= autograd.functional


@pytest.mark.parametrize("name", CASES)
def test_vjp_matches_finite_differences(name):
    f_bp, f_np, arrays = CASES[name]
    outs_np = f_np(*arrays)
    vs_np = [np.random.standard_normal(o.shape) for o in outs_np]
    v = tuple(t64(a) for a in vs_np)
    out, res = AF.vjp(f_bp, as_inputs(arrays), v if len(v) > 1 else v[0])
    J = fd_jacobian(f_np, arrays)
    # structure: output as func returned it, vjp shaped like inputs
    assert isinstance(out, tuple) == (len(outs_np) > 1)
    assert isinstance(res, tuple) == (len(arrays) > 1)
    for o, o_np in zip(as_tuple(out), outs_np):
        close(o, o_np, EXACT)
    for j, r in enumerate(as_tuple(res)):
        expected = sum(contract_out(J[i][j], vs_np[i], outs_np[i].ndim) for i in range(len(outs_np)))
        close(r, expected, FD_TOL)
        assert not r.requires_grad


@pytest.mark.parametrize("name", CASES)
def test_jvp_matches_finite_differences(name):
    f_bp, f_np, arrays = CASES[name]
    vs_np = [np.random.standard_normal(a.shape) for a in arrays]
    v = tuple(t64(a) for a in vs_np)
    out, res = AF.jvp(f_bp, as_inputs(arrays), v if len(v) > 1 else v[0])
    outs_np = f_np(*arrays)
    J = fd_jacobian(f_np, arrays)
    # jvp is shaped like the outputs
    assert isinstance(out, tuple) == isinstance(res, tuple) == (len(outs_np) > 1)
    for i, r in enumerate(as_tuple(res)):
        expected = sum(contract_in(J[i][j], vs_np[j]) for j in range(len(arrays)))
        close(r, expected, FD_TOL)
        assert not r.requires_grad


@pytest.mark.parametrize("name", CASES)
def test_jacobian_matches_finite_differences_with_pytorch_structure(name):
    f_bp, f_np, arrays = CASES[name]
    jac = AF.jacobian(f_bp, as_inputs(arrays))
    J = fd_jacobian(f_np, arrays)
    n_out, n_in = len(J), len(arrays)
    # one output, one input: a tensor; a tuple over whichever is a tuple; tuple of tuples for both
    if n_out == 1 and n_in == 1:
        blocks = [[jac]]
    elif n_out == 1:
        assert isinstance(jac, tuple) and len(jac) == n_in and isinstance(jac[0], bp.Tensor)
        blocks = [list(jac)]
    else:
        assert isinstance(jac, tuple) and len(jac) == n_out and all(isinstance(r, tuple) for r in jac)
        blocks = [list(r) for r in jac]
    for i in range(n_out):
        for j in range(n_in):
            close(blocks[i][j], J[i][j], FD_TOL)  # shape out.shape + in.shape
            assert not blocks[i][j].requires_grad


def test_jacobian_tuple_output_single_input_is_a_tuple_of_tensors():
    x = t64(A3)
    jac = AF.jacobian(lambda t: (t.sin(), t.sum()), x)
    assert isinstance(jac, tuple) and len(jac) == 2 and isinstance(jac[0], bp.Tensor)
    close(jac[0], np.diag(np.cos(A3)), EXACT)
    close(jac[1], np.ones(3), EXACT)  # a 0-dim output: shape () + (3,)


def test_jacobian_one_element_tuple_input_keeps_tuple_nesting():
    jac = AF.jacobian(lambda t: t * 2, (t64(A3),))
    assert isinstance(jac, tuple) and len(jac) == 1
    close(jac[0], 2 * np.eye(3), EXACT)


@pytest.mark.parametrize("name", CASES)
def test_jacobian_vectorize_and_forward_mode_agree_with_reverse_mode(name):
    f_bp, _, arrays = CASES[name]
    ref = AF.jacobian(f_bp, as_inputs(arrays))
    for kw in (dict(vectorize=True), dict(vectorize=True, strategy="forward-mode")):
        got = AF.jacobian(f_bp, as_inputs(arrays), **kw)
        flat_ref = [t for r in as_tuple(ref) for t in as_tuple(r)]
        flat_got = [t for r in as_tuple(got) for t in as_tuple(r)]
        assert len(flat_ref) == len(flat_got)
        for a, b in zip(flat_got, flat_ref):
            close(a, b.numpy(), EXACT)


def test_jacobian_option_combinations_pytorch_refuses():
    x = t64(A3)
    with pytest.raises(NotImplementedError, match="vectorize=True"):
        AF.jacobian(lambda t: t * 2, x, strategy="forward-mode")
    with pytest.raises(NotImplementedError, match="create_graph=True"):
        AF.jacobian(lambda t: t * 2, x, create_graph=True, vectorize=True, strategy="forward-mode")
    with pytest.raises(RuntimeError, match="strict=True"):
        AF.jacobian(lambda t: t * 2, x, strict=True, vectorize=True, strategy="forward-mode")
    with pytest.raises(RuntimeError, match="vectorized=True"):
        AF.jacobian(lambda t: t * 2, x, strict=True, vectorize=True)
    with pytest.raises(ValueError, match="strategy"):
        AF.jacobian(lambda t: t * 2, x, strategy="sideways")


@pytest.mark.parametrize("name", SCALAR_CASES)
def test_hessian_matches_finite_differences_and_is_symmetric(name):
    s_bp, s_np, arrays = SCALAR_CASES[name]
    hess = AF.hessian(s_bp, as_inputs(arrays))
    H = fd_hessian(s_np, arrays)
    n = len(arrays)
    blocks = [[hess]] if n == 1 else [list(r) for r in hess]
    if n > 1:
        assert isinstance(hess, tuple) and all(isinstance(r, tuple) and len(r) == n for r in hess)
    for i in range(n):
        for j in range(n):
            close(blocks[i][j], H[i][j], FD2_TOL)
            assert not blocks[i][j].requires_grad
            # symmetry: H[i][j] is H[j][i] with the two index groups swapped
            a, b = arrays[i], arrays[j]
            swapped = blocks[j][i].numpy().reshape(b.size, a.size).T.reshape(a.shape + b.shape)
            np.testing.assert_allclose(blocks[i][j].numpy(), swapped, **EXACT)


def test_hessian_of_a_one_element_non_scalar_output_has_input_shape_twice():
    hess = AF.hessian(lambda t: (t**3).sum().reshape(1, 1), t64(M22))
    close(hess, fd_hessian(lambda a: (a**3).sum(), [M22])[0][0], FD2_TOL)


def test_hessian_forward_outer_strategy_matches_reverse():
    s_bp, _, arrays = SCALAR_CASES["two_inputs"]
    ref = AF.hessian(s_bp, as_inputs(arrays))
    got = AF.hessian(s_bp, as_inputs(arrays), vectorize=True, outer_jacobian_strategy="forward-mode")
    for i in range(2):
        for j in range(2):
            close(got[i][j], ref[i][j].numpy(), EXACT)
    with pytest.raises(NotImplementedError):
        AF.hessian(s_bp, as_inputs(arrays), outer_jacobian_strategy="forward-mode")


@pytest.mark.parametrize("name", SCALAR_CASES)
def test_hvp_and_vhp_match_hessian_products(name):
    s_bp, s_np, arrays = SCALAR_CASES[name]
    n = len(arrays)
    vs_np = [np.random.standard_normal(a.shape) for a in arrays]
    v = tuple(t64(a) for a in vs_np)
    v_arg = v if n > 1 else v[0]
    hess = AF.hessian(s_bp, as_inputs(arrays))
    blocks = [[hess]] if n == 1 else [list(r) for r in hess]
    H = fd_hessian(s_np, arrays)
    val_h, hv = AF.hvp(s_bp, as_inputs(arrays), v_arg)
    val_v, vh = AF.vhp(s_bp, as_inputs(arrays), v_arg)
    for val in (val_h, val_v):
        assert isinstance(val, bp.Tensor) and not val.requires_grad
        close(val, np.asarray(s_np(*arrays)), EXACT)
    assert isinstance(hv, tuple) == isinstance(vh, tuple) == (n > 1)
    for i in range(n):
        ai = arrays[i]
        h_v = sum(blocks[i][j].numpy().reshape(ai.size, -1) @ vs_np[j].reshape(-1) for j in range(n))
        v_h = sum(vs_np[j].reshape(-1) @ blocks[j][i].numpy().reshape(-1, ai.size) for j in range(n))
        close(as_tuple(hv)[i], h_v.reshape(ai.shape), EXACT)
        close(as_tuple(vh)[i], v_h.reshape(ai.shape), EXACT)
        fd = sum(H[i][j].reshape(ai.size, -1) @ vs_np[j].reshape(-1) for j in range(n))
        close(as_tuple(hv)[i], fd.reshape(ai.shape), FD2_TOL)


@pytest.mark.parametrize("name", CASES)
def test_jvp_equals_jacobian_times_v(name):
    f_bp, f_np, arrays = CASES[name]
    vs_np = [np.random.standard_normal(a.shape) for a in arrays]
    v = tuple(t64(a) for a in vs_np)
    _, jv = AF.jvp(f_bp, as_inputs(arrays), v if len(v) > 1 else v[0])
    jac = AF.jacobian(f_bp, as_inputs(arrays))
    n_out = len(f_np(*arrays))
    if n_out == 1 and len(arrays) == 1:
        blocks = [[jac]]
    elif n_out == 1:
        blocks = [list(jac)]
    else:
        blocks = [list(r) for r in jac]
    for i in range(n_out):
        expected = sum(contract_in(blocks[i][j].numpy(), vs_np[j]) for j in range(len(arrays)))
        close(as_tuple(jv)[i], expected, EXACT)


def test_v_may_be_left_out_only_for_single_element_tensors():
    x = t64([0.7])
    out, g = AF.vjp(lambda t: (t**2).sum(), x)
    close(g, [1.4], EXACT)
    _, jv = AF.jvp(lambda t: t.exp() * 2, x)
    close(jv, 2 * np.exp([0.7]), EXACT)
    _, hv = AF.hvp(lambda t: (t**3).sum(), x)
    _, vh = AF.vhp(lambda t: (t**3).sum(), x)
    close(hv, [6 * 0.7], EXACT)
    close(vh, [6 * 0.7], EXACT)
    with pytest.raises(RuntimeError, match="v can only be None if the user-provided function returns"):
        AF.vjp(lambda t: t * 2, t64(A3))
    with pytest.raises(RuntimeError, match="v can only be None if the input"):
        AF.jvp(lambda t: t * 2, t64(A3))
    with pytest.raises(RuntimeError, match="v can only be None if the input"):
        AF.hvp(lambda t: (t**3).sum(), t64(A3))


def test_validation_errors_have_pytorch_messages():
    x = t64(A3)
    with pytest.raises(RuntimeError, match=r"v has invalid size: should be \(3,\) but got \(2,\)"):
        AF.vjp(lambda t: t * 2, x, t64([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"Entry 1 in v has invalid size"):
        AF.jvp(lambda a, b: a * b, (x, x), (t64(A3), t64([1.0])))
    with pytest.raises(RuntimeError, match="v is a tuple of invalid length: should be 2 but got 1"):
        AF.vhp(lambda a, b: (a * b).sum(), (x, x), (t64(A3),))
    with pytest.raises(RuntimeError, match="The given v should contain a single Tensor"):
        AF.jvp(lambda t: t * 2, x, (t64(A3), t64(A3)))
    with pytest.raises(TypeError, match="outputs of the user-provided function given to vjp must be either a Tensor"):
        AF.vjp(lambda t: 3.0, x, t64(A3))
    with pytest.raises(TypeError, match="value at index 1 has type"):
        AF.jacobian(lambda t: (t, [t]), x)
    with pytest.raises(TypeError, match="inputs given to jacobian must be either a Tensor"):
        AF.jacobian(lambda t: t, [x])  # a list is not a tuple, as in PyTorch
    with pytest.raises(RuntimeError, match="function given to hessian should contain a single element"):
        AF.hessian(lambda t: t * 2, x)
    with pytest.raises(RuntimeError, match="function given to hessian should return a single Tensor"):
        AF.hessian(lambda t: (t.sum(), t.sum()), x)
    with pytest.raises(RuntimeError, match="function given to vhp should contain a single element"):
        AF.vhp(lambda t: t * 2, x, t64(A3))
    with pytest.raises(RuntimeError, match="function given to hvp should return a single Tensor"):
        AF.hvp(lambda t: (t.sum(),), x, t64(A3))


def test_strict_mode_refuses_independence_and_non_strict_gives_zeros():
    x, y = t64(A3), t64(A3[:2])

    def f(a, b):
        return a * 2  # independent of b

    _, (ga, gb) = AF.vjp(f, (x, y), t64(np.ones(3)))
    close(gb, np.zeros(2), EXACT)
    close(ga, 2 * np.ones(3), EXACT)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        AF.vjp(f, (x, y), t64(np.ones(3)), strict=True)
    jac = AF.jacobian(f, (x, y))
    close(jac[1], np.zeros((3, 2)), EXACT)
    with pytest.raises(RuntimeError, match="Output 0 of the user-provided function is independent of input 1"):
        AF.jacobian(f, (x, y), strict=True)
    # an output computed without the inputs at all
    with pytest.raises(RuntimeError, match="Output 0 of the user-provided function does not require gradients"):
        AF.jvp(lambda a: bp.ones_like(a), x, t64(A3), strict=True)
    _, jv = AF.jvp(lambda a: bp.ones_like(a), x, t64(A3))
    close(jv, np.zeros(3), EXACT)
    # a linear function: its Hessian is zero, which strict mode refuses
    hess = AF.hessian(lambda a: (a * 3).sum(), x)
    close(hess, np.zeros((3, 3)), EXACT)
    with pytest.raises(RuntimeError, match="jacobian of the user-provided function with respect to input 0"):
        AF.hessian(lambda a: (a * 3).sum(), x, strict=True)
    with pytest.raises(RuntimeError, match="jacobian of the user-provided function with respect to input 0"):
        AF.vhp(lambda a: (a * 3).sum(), x, t64(A3), strict=True)
    _, vh = AF.vhp(lambda a: (a * 3).sum(), x, t64(A3))
    close(vh, np.zeros(3), EXACT)
    with pytest.raises(RuntimeError, match="strict mode"):
        AF.hvp(lambda a, b: (a**3).sum(), (x, y), (t64(A3), t64(A3[:2])), strict=True)
    # create_graph + strict: a gradient that carries no graph is refused (its derivative is 0)
    with pytest.raises(RuntimeError, match="strict mode when create_graph=True"):
        AF.vjp(lambda a: a * 2, x, t64(A3), create_graph=True, strict=True)


def test_create_graph_gives_differentiable_results():
    x = t64(X3, requires_grad=True)
    jac = AF.jacobian(elementwise_bp, x, create_graph=True)
    assert jac.requires_grad
    (g,) = bp.autograd.grad(jac.sum(), x)

    # d/dx of sum(J) = d/dx sum(f'(x)) for the elementwise f: FD of NumPy's analytic f'
    def fprime_sum(a):
        d = np.cos(a) * np.exp(a) + np.sin(a) * np.exp(a) + 2 * np.tanh(a) * (1 - np.tanh(a) ** 2) + 1 / a
        return (np.array(d.sum()),)

    close(g, fd_jacobian(fprime_sum, [X3])[0][0], FD_TOL)
    # vjp's output and result both keep their graph
    out, res = AF.vjp(lambda t: (t**3).sum(), x, create_graph=True)
    assert out.requires_grad and res.requires_grad
    (g2,) = bp.autograd.grad(res.sum(), x)
    close(g2, 6 * X3, EXACT)
    # hessian with create_graph: d/dx sum(H) for sum(x^4) is 24 x
    h = AF.hessian(lambda t: (t**4).sum(), x, create_graph=True)
    (g3,) = bp.autograd.grad(h.sum(), x)
    close(g3, 24 * X3, EXACT)
    # jvp and hvp through the double-vjp trick: J v = cos(x) v, so d/dx sum = -sin(x) v
    v = t64(A3)
    _, jv = AF.jvp(lambda t: t.sin(), x, v, create_graph=True)
    (g4,) = bp.autograd.grad(jv.sum(), x)
    close(g4, -np.sin(X3) * A3, EXACT)
    _, hv = AF.hvp(lambda t: (t**4).sum(), x, v, create_graph=True)  # H v = 12 x^2 v
    (g5,) = bp.autograd.grad(hv.sum(), x)
    close(g5, 24 * X3 * A3, EXACT)
    # without create_graph: detached even though x requires grad
    out, res = AF.vjp(lambda t: (t**3).sum(), x)
    assert not out.requires_grad and not res.requires_grad
    assert x.grad is None


def test_functional_works_inside_no_grad_and_leaves_grad_alone():
    x = t64(X3, requires_grad=True)
    with bp.no_grad():
        jac = AF.jacobian(elementwise_bp, x)
        _, hv = AF.hvp(lambda t: (t**3).sum(), x, t64(np.ones(3)))
        assert not bp.is_grad_enabled()
    close(jac, fd_jacobian(elementwise_np, [X3])[0][0], FD_TOL)
    close(hv, 6 * X3, EXACT)
    assert x.grad is None


def test_gradients_are_with_respect_to_arguments_not_closed_over_tensors():
    """PyTorch issue 32576: func also captures the input by closure; only the path through the
    argument counts."""
    x = t64(A3)
    jac = AF.jacobian(lambda t: t * x, x)
    close(jac, np.diag(A3), EXACT)


# ================================================================= backprop_rs.func


def test_func_grad_matches_finite_differences_and_argnums():
    s_bp, s_np, (a, b) = SCALAR_CASES["two_inputs"]
    (Ja, Jb) = fd_jacobian(lambda p, q: (np.array(s_np(p, q)),), [a, b])[0]
    ta, tb = t64(a), t64(b)
    close(bpfunc.grad(s_bp)(ta, tb), Ja, FD_TOL)
    close(bpfunc.grad(s_bp, argnums=1)(ta, tb), Jb, FD_TOL)
    close(bpfunc.grad(s_bp, argnums=-1)(ta, tb), Jb, FD_TOL)
    both = bpfunc.grad(s_bp, argnums=(1, 0))(ta, tb)
    assert isinstance(both, tuple) and len(both) == 2
    close(both[0], Jb, FD_TOL)
    close(both[1], Ja, FD_TOL)
    one = bpfunc.grad(s_bp, argnums=(0,))(ta, tb)
    assert isinstance(one, tuple) and len(one) == 1


def test_func_grad_and_value_and_has_aux():
    x = t64(X3)
    g, v = bpfunc.grad_and_value(lambda t: (t**2).sum())(x)
    close(g, 2 * X3, EXACT)
    close(v, np.asarray((X3**2).sum()), EXACT)

    def f(t):
        y = t.sin()
        return y.sum(), {"y": y, "n": None}

    g, aux = bpfunc.grad(f, has_aux=True)(x)
    close(g, np.cos(X3), EXACT)
    close(aux["y"], np.sin(X3), EXACT)
    assert aux["n"] is None
    g, (v, aux) = bpfunc.grad_and_value(f, has_aux=True)(x)
    close(v, np.asarray(np.sin(X3).sum()), EXACT)
    with pytest.raises(RuntimeError, match=r"should be a tuple: \(output, aux\)"):
        bpfunc.grad(lambda t: t.sum(), has_aux=True)(x)


def test_func_grad_inside_no_grad_and_without_touching_dot_grad():
    x = t64(X3, requires_grad=True)
    w = t64(A3, requires_grad=True)
    with bp.no_grad():
        g = bpfunc.grad(lambda t: (t * t * w).sum())(x)
        assert not bp.is_grad_enabled()
    close(g, 2 * X3 * A3, EXACT)
    assert not g.requires_grad
    assert x.grad is None and w.grad is None
    # values and aux come back as plain tensors too
    plain = t64(X3)
    with bp.no_grad():
        g, (v, aux) = bpfunc.grad_and_value(lambda t: ((t * w).sum(), t.exp()), has_aux=True)(plain)
        out, _ = bpfunc.vjp(lambda t: t.sin(), plain)
        out_j, jv = bpfunc.jvp(lambda t: t.sin(), (plain,), (plain,))
    for t in (g, v, aux, out, out_j, jv):
        assert not t.requires_grad
    close(aux, np.exp(X3), EXACT)
    # the arguments themselves are never switched to requires_grad
    bpfunc.grad(lambda t: (t * t).sum())(plain)
    bpfunc.jacrev(lambda t: t * t)(plain)
    assert not plain.requires_grad and plain.is_leaf
    # a function's own no_grad block is respected: c counts as a constant
    def f(t):
        with bp.no_grad():
            c = t**2
        return (t * c).sum()

    close(bpfunc.grad(f)(t64(X3)), X3**2, EXACT)


def test_func_grad_results_stay_differentiable_through_closed_over_tensors():
    """A gradient penalty: the gradient with respect to x is differentiated with respect to a
    weight the function closes over."""
    w = t64(A3, requires_grad=True)
    x = t64(X3)
    g = bpfunc.grad(lambda t: (t.sin() * w).sum())(x)  # = cos(x) * w
    (gw,) = bp.autograd.grad((g**2).sum(), w)
    close(gw, 2 * np.cos(X3) ** 2 * A3, EXACT)
    assert w.grad is None


def test_func_grad_nests_and_handles_pytrees():
    s = t64(1.3)
    d3 = bpfunc.grad(bpfunc.grad(bpfunc.grad(lambda t: t.sin() * t)))(s)
    # d^3/dt^3 (t sin t) = -3 sin t - t cos t
    close(d3, np.asarray(-3 * np.sin(1.3) - 1.3 * np.cos(1.3)), EXACT)
    params = {"w": t64(W34), "b": [t64(A3[:1])]}
    x = t64(X23)

    def loss(p, inp):
        return ((inp @ p["w"]).tanh() + p["b"][0]).sum()

    g = bpfunc.grad(loss)(params, x)
    assert set(g) == {"w", "b"} and isinstance(g["b"], list)
    Jw, Jb = fd_jacobian(lambda w, b: (np.array((np.tanh(X23 @ w) + b).sum()),), [W34, A3[:1]])[0]
    close(g["w"], Jw, FD_TOL)
    close(g["b"][0], Jb, FD_TOL)


def test_func_grad_errors():
    x = t64(A3)
    with pytest.raises(RuntimeError, match="Expected f\\(\\*args\\) to return a scalar Tensor, got tensor with 1 dims"):
        bpfunc.grad(lambda t: t * 2)(x)
    with pytest.raises(RuntimeError, match="to return a Tensor, got"):
        bpfunc.grad(lambda t: 1.0)(x)
    with pytest.raises(RuntimeError, match="Got argnum=2, but only 1 positional inputs"):
        bpfunc.grad(lambda t: t.sum(), argnums=2)(x)
    with pytest.raises(RuntimeError, match="argnums elements must be unique"):
        bpfunc.grad(lambda a, b: (a * b).sum(), argnums=(0, -2))(x, x)
    with pytest.raises(RuntimeError, match="argnums must be non-empty"):
        bpfunc.grad(lambda a: a.sum(), argnums=())(x)
    with pytest.raises(ValueError, match="must be Tensor"):
        bpfunc.grad(lambda a: a, argnums=0)(3.0)
    # unused inputs get zeros
    close(bpfunc.grad(lambda a, b: a.sum(), argnums=1)(x, x), np.zeros(3), EXACT)
    # a failure inside a transform restores the caller's grad mode
    with bp.no_grad():
        with pytest.raises(RuntimeError):
            bpfunc.grad(lambda t: t * 2)(x)
        assert not bp.is_grad_enabled()
    assert bp.is_grad_enabled()


@pytest.mark.parametrize("name", CASES)
def test_func_vjp_matches_finite_differences(name):
    f_bp, f_np, arrays = CASES[name]
    outs_np = f_np(*arrays)
    out, vjp_fn = bpfunc.vjp(f_bp, *(t64(a) for a in arrays))
    J = fd_jacobian(f_np, arrays)
    vs_np = [np.random.standard_normal(o.shape) for o in outs_np]
    cot = tuple(t64(v) for v in vs_np)
    res = vjp_fn(cot if isinstance(out, tuple) else cot[0])
    assert isinstance(res, tuple) and len(res) == len(arrays)  # always a tuple, one per primal
    for j, r in enumerate(res):
        expected = sum(contract_out(J[i][j], vs_np[i], outs_np[i].ndim) for i in range(len(outs_np)))
        close(r, expected, FD_TOL)
    again = vjp_fn(cot if isinstance(out, tuple) else cot[0])  # vjp_fn may be called again
    close(again[0], res[0].detach().numpy(), EXACT)


def test_func_vjp_checks_cotangents_and_has_aux():
    x = t64(A3)
    out, fn, aux = bpfunc.vjp(lambda t: ((t.sin(), t.cos()), t * 0 + 1), x, has_aux=True)
    close(aux, np.ones(3), EXACT)
    with pytest.raises(RuntimeError, match="Expected pytree structure of cotangents"):
        fn(t64(np.ones(3)))
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[1\]"):
        fn((t64(np.ones(3)), t64(np.ones(2))))
    (g,) = fn((t64(np.ones(3)), t64(np.ones(3))))
    close(g, np.cos(A3) - np.sin(A3), EXACT)
    with pytest.raises(RuntimeError, match="expected f\\(\\*primals\\) to return only tensors"):
        bpfunc.vjp(lambda t: (t, 2), x)


@pytest.mark.parametrize("name", CASES)
def test_func_jvp_matches_finite_differences(name):
    f_bp, f_np, arrays = CASES[name]
    vs_np = [np.random.standard_normal(a.shape) for a in arrays]
    out, jv = bpfunc.jvp(f_bp, tuple(t64(a) for a in arrays), tuple(t64(v) for v in vs_np))
    J = fd_jacobian(f_np, arrays)
    outs_np = f_np(*arrays)
    assert isinstance(out, tuple) == isinstance(jv, tuple) == (len(outs_np) > 1)
    for i, r in enumerate(as_tuple(jv)):
        close(as_tuple(out)[i], outs_np[i], EXACT)
        close(r, sum(contract_in(J[i][j], vs_np[j]) for j in range(len(arrays))), FD_TOL)


def test_func_jvp_checks_and_has_aux():
    x = t64(A3)
    with pytest.raises(RuntimeError, match="Expected primals to be a tuple"):
        bpfunc.jvp(lambda t: t, x, (x,))
    with pytest.raises(RuntimeError, match="same python structure"):
        bpfunc.jvp(lambda a, b: a * b, (x, x), (x,))
    with pytest.raises(RuntimeError, match="shape"):
        bpfunc.jvp(lambda t: t, (x,), (t64([1.0]),))
    out, jv, aux = bpfunc.jvp(lambda t: (t.exp(), t.sum()), (x,), (t64(np.ones(3)),), has_aux=True)
    close(jv, np.exp(A3), EXACT)
    close(aux, np.asarray(A3.sum()), EXACT)
    _, jv = bpfunc.jvp(lambda t: bp.ones_like(t), (x,), (x,))
    close(jv, np.zeros(3), EXACT)
    with pytest.raises(RuntimeError, match="independent of the inputs"):
        bpfunc.jvp(lambda t: bp.ones_like(t), (x,), (x,), strict=True)


@pytest.mark.parametrize("jac_fn", [bpfunc.jacrev, bpfunc.jacfwd])
def test_func_jacobians_match_finite_differences(jac_fn):
    f_bp, f_np, (a, b) = CASES["two_outputs"]
    J = fd_jacobian(f_np, [a, b])
    ta, tb = t64(a), t64(b)
    jac = jac_fn(f_bp)(ta, tb)  # per output: the Jacobian with respect to arg 0
    assert isinstance(jac, tuple) and len(jac) == 2 and isinstance(jac[0], bp.Tensor)
    close(jac[0], J[0][0], FD_TOL)
    close(jac[1], J[1][0], FD_TOL)
    jac = jac_fn(f_bp, argnums=(0, 1))(ta, tb)  # per output: a tuple over argnums
    for i in range(2):
        assert isinstance(jac[i], tuple) and len(jac[i]) == 2
        for j in range(2):
            close(jac[i][j], J[i][j], FD_TOL)
    m_bp, m_np, (x, w) = CASES["matmul"]
    jw = jac_fn(m_bp, argnums=1)(t64(x), t64(w))
    close(jw, fd_jacobian(m_np, [x, w])[0][1], FD_TOL)
    jac, aux = jac_fn(lambda t: (t.sin(), t.cos()), has_aux=True)(ta)
    close(jac, np.diag(np.cos(a)), EXACT)
    close(aux, np.cos(a), EXACT)


def test_func_hessian_matches_finite_differences_and_compositions():
    s_bp, s_np, (a, b) = SCALAR_CASES["two_inputs"]
    H = fd_hessian(s_np, [a, b])
    ta, tb = t64(a), t64(b)
    close(bpfunc.hessian(s_bp)(ta, tb), H[0][0], FD2_TOL)
    hh = bpfunc.hessian(s_bp, argnums=(0, 1))(ta, tb)
    for i in range(2):
        for j in range(2):
            close(hh[i][j], H[i][j], FD2_TOL)
    rr = bpfunc.jacrev(bpfunc.jacrev(s_bp))(ta, tb)
    close(rr, bpfunc.hessian(s_bp)(ta, tb).detach().numpy(), EXACT)
    with bp.no_grad():
        h = bpfunc.hessian(s_bp)(ta, tb)
    assert not h.requires_grad
    close(h, H[0][0], FD2_TOL)


def test_func_vmap_matches_an_explicit_loop():
    xs = t64(np.random.standard_normal((4, 3)))
    ws = t64(W34)
    f = lambda r, w: (r @ w).tanh()  # noqa: E731
    got = bpfunc.vmap(f, in_dims=(0, None))(xs, ws)
    expected = np.stack([np.tanh(xs.numpy()[b] @ W34) for b in range(4)])
    close(got, expected, EXACT)
    # mapping another dim, putting the batch elsewhere in the output
    got = bpfunc.vmap(lambda c: c * c.sum(), in_dims=1, out_dims=1)(xs)
    expected = np.stack([xs.numpy()[:, j] * xs.numpy()[:, j].sum() for j in range(3)], axis=1)
    close(got, expected, EXACT)
    # several outputs, a per-output out_dims, a non-mapped output
    got = bpfunc.vmap(lambda r: (r.sum(), r * 2, ws), out_dims=(0, 1, None))(xs)
    close(got[0], xs.numpy().sum(1), EXACT)
    close(got[1], (2 * xs.numpy()).T, EXACT)
    assert got[2] is ws
    # negative in_dims; a one-element out_dims tuple for a lone tensor output
    got = bpfunc.vmap(lambda c: c * 2, in_dims=-1, out_dims=(1,))(xs)
    close(got, 2 * xs.numpy(), EXACT)
    # nested: a batch of batches
    ys = t64(np.random.standard_normal((2, 4, 3)))
    got = bpfunc.vmap(bpfunc.vmap(lambda r: (r**2).sum()))(ys)
    close(got, (ys.numpy() ** 2).sum(-1), EXACT)
    # per-sample gradients
    got = bpfunc.vmap(bpfunc.grad(lambda r, w: (r @ w).tanh().sum()), in_dims=(0, None))(xs, ws)
    loop = np.stack([bpfunc.grad(lambda r: (r @ ws).tanh().sum())(xs[b]).detach().numpy() for b in range(4)])
    close(got, loop, EXACT)
    x_np = xs.numpy()
    close(got, (1 - np.tanh(x_np @ W34) ** 2) @ W34.T, EXACT)


def test_func_vmap_errors():
    xs, ys = t64(np.ones((4, 3))), t64(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"same size in the mapped dimension, got sizes \[4, 5\]"):
        bpfunc.vmap(lambda a, b: a + b)(xs, ys)
    with pytest.raises(ValueError, match="cannot vmap over non-Tensor arguments"):
        bpfunc.vmap(lambda a, b: a * b)(xs, 2.0)
    with pytest.raises(ValueError, match="in_dims is not compatible with the structure"):
        bpfunc.vmap(lambda a: a, in_dims=(0, 0))(xs)
    with pytest.raises(ValueError, match="expected in_dim to satisfy -2 <= in_dim < 2"):
        bpfunc.vmap(lambda a: a, in_dims=2)(xs)
    with pytest.raises(ValueError, match="at least one Tensor to vmap over"):
        bpfunc.vmap(lambda a: a, in_dims=(None,))(xs)
    with pytest.raises(ValueError, match="expected `in_dims` to be int or a"):
        bpfunc.vmap(lambda a: a, in_dims=None)(xs)
    with pytest.raises(ValueError, match="must only return Tensors"):
        bpfunc.vmap(lambda a: 3.0)(xs)
    with pytest.raises(ValueError, match="out_dims is not compatible"):
        bpfunc.vmap(lambda a: a, out_dims=(0, 0))(xs)
    with pytest.raises(ValueError, match="got no inputs"):
        bpfunc.vmap(lambda: xs)()


def test_pool_and_conv_accept_lists_as_pytorch():
    # PyTorch's int[2] arguments take a list as well as a tuple (code written as
    # F.max_pool2d(x, [2, 2]) or conv2d(..., padding=[1, 0]) is common)
    a = np.random.default_rng(7).standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = np.random.default_rng(8).standard_normal((3, 2, 3, 3)).astype(np.float32)
    x = bp.tensor(a)
    np.testing.assert_array_equal(F.max_pool2d(x, [2, 2], [2, 1]).numpy(), F.max_pool2d(x, (2, 2), (2, 1)).numpy())
    np.testing.assert_array_equal(F.avg_pool2d(x, [3, 2]).numpy(), F.avg_pool2d(x, (3, 2)).numpy())
    np.testing.assert_array_equal(F.conv2d(x, bp.tensor(w), padding=[1, 0], stride=[2, 1]).numpy(),
                                  F.conv2d(x, bp.tensor(w), padding=(1, 0), stride=(2, 1)).numpy())
    with pytest.raises((TypeError, ValueError)):
        F.max_pool2d(x, [2, 2, 2])
