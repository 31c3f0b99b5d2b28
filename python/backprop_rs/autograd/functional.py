"""Higher-level autograd on whole functions, with the names and semantics of
``torch.autograd.functional``: :func:`vjp`, :func:`jvp`, :func:`jacobian`, :func:`hessian`,
:func:`vhp` and :func:`hvp`.

Everything is built on :func:`backprop_rs.autograd.grad` (reverse mode). The engine has no
forward-mode AD, so :func:`jvp` and :func:`hvp` use the *double-vjp trick*: for a dummy
cotangent ``u`` that requires grad, ``g(u) = J^T u`` is linear in ``u``, and the vjp of ``g`` with
``v`` is ``d/du [u . J v] = J v``. That costs one forward pass and two backward passes (the
second through a graph recorded by the first), and it needs every backward formula on the path
to be itself differentiable. A true forward mode would instead carry a tangent next to every
value (dual numbers): each primitive would need a JVP rule besides its VJP rule, a dual level
and per-tensor tangent storage in the core, and a JVP would then cost about one extra forward
pass, with no graph to record or keep alive (PyTorch's ``torch.autograd.forward_ad``; its
``autograd.functional.jvp`` uses the same double-backward trick as here).

Return conventions follow PyTorch exactly: a tuple where ``inputs`` (or the function's output)
was a tuple and a bare tensor otherwise; Jacobian blocks have shape ``out.shape + in.shape``;
results are detached unless ``create_graph=True``; with ``strict=False`` an output that does not
depend on an input contributes zeros, and with ``strict=True`` that raises ``RuntimeError``.

Differences from PyTorch, all in corners: ``vectorize=True`` is accepted and computes the same
result with the same row-by-row loop (there is no batched-gradient engine to vectorize over);
``strategy="forward-mode"`` (which PyTorch only supports with ``vectorize=True``, and so here)
builds the Jacobian column by column from double-vjp JVPs rather than with dual numbers; an
invalid ``strategy`` raises ``ValueError`` where PyTorch fails an ``assert``; and a Jacobian
with a zero-element output or input is returned as an empty tensor where PyTorch's
``torch.stack`` of no rows raises.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from .. import _core
from .._core import Tensor

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]

TensorOrTensors = Union[Tensor, Tuple[Tensor, ...]]

_STRATEGIES = ("forward-mode", "reverse-mode")


# --- helpers -------------------------------------------------------------------------------


def _tupled(value: Any, what: str, api: str) -> Tuple[bool, Tuple[Tensor, ...]]:
    """``(was_a_tuple, value as a tuple)``, refusing anything but a tensor or a tuple of them
    (PyTorch accepts only tuples here, not lists)."""
    was_tuple = isinstance(value, tuple)
    items = value if was_tuple else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"value at index {i}" if was_tuple else f"given {what}"
            raise TypeError(
                f"The {what} given to {api} must be either a Tensor or a tuple of Tensors but the "
                f"{where} has type {type(item)}."
            )
    return was_tuple, items


def _untupled(res: Any, was_tuple: Union[bool, Tuple[bool, bool]]) -> Any:
    """Undoes :func:`_tupled` on a result: one level for a flag, two (outer, inner) for a pair."""
    if isinstance(was_tuple, tuple):
        outer, inner = was_tuple
        if not inner:
            res = tuple(row[0] for row in res)
        return res if outer else res[0]
    return res if was_tuple else res[0]


def _fresh(tensors: Sequence[Tensor], create_graph: bool, need_graph: bool) -> Tuple[Tensor, ...]:
    """New tensor objects for ``func`` to be called on.

    Always new objects, so that gradients are taken with respect to the arguments ``func`` was
    given and not to the same tensors that ``func`` may also capture by closure. With
    ``create_graph`` a tensor that requires grad gets a differentiable alias, so the results stay
    connected to it; otherwise a detached copy, which requires grad when ``need_graph``.
    """
    out = []
    for t in tensors:
        if create_graph and t.requires_grad:
            out.append(t.view_as(t))
        else:
            out.append(t.detach().requires_grad_(need_graph))
    return tuple(out)


def _finish(res: Any, create_graph: bool) -> Any:
    """Detaches the (possibly nested) tuple of results unless the caller asked for a graph."""
    if create_graph:
        return res
    return tuple(r.detach() if isinstance(r, Tensor) else _finish(r, create_graph) for r in res)


def _check_v(v: Tuple[Tensor, ...], ref: Tuple[Tensor, ...], ref_was_tuple: bool) -> None:
    if len(v) != len(ref):
        if ref_was_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(ref)} but got {len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for i, (vi, ri) in enumerate(zip(v, ref)):
        if tuple(vi.shape) != tuple(ri.shape):
            entry = f"Entry {i} in " if ref_was_tuple else ""
            raise RuntimeError(f"{entry}v has invalid size: should be {tuple(ri.shape)} but got {tuple(vi.shape)}.")


def _strict_requires_grad(tensors: Sequence[Optional[Tensor]], kind: str, strict: bool) -> None:
    """In strict mode, refuses an intermediate result that is None or does not require grad;
    ``kind`` says which stage it came from, for the message."""
    if not strict:
        return
    for i, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(
                f"The output of the user-provided function is independent of input {i}. "
                "This is not allowed in strict mode."
            )
        if t.requires_grad:
            continue
        if kind == "outputs":
            raise RuntimeError(
                f"Output {i} of the user-provided function does not require gradients. The outputs "
                "must be computed in a differentiable manner from the input when running in strict mode."
            )
        if kind == "grad_inputs":
            raise RuntimeError(
                f"The gradient with respect to input {i} is independent of the inputs of the "
                "user-provided function. This is not allowed in strict mode."
            )
        if kind == "jacobian":
            raise RuntimeError(
                "While computing the hessian, found that the jacobian of the user-provided function "
                f"with respect to input {i} is independent of the input. This is not allowed in strict "
                "mode. You should ensure that your function is twice differentiable and that the "
                "jacobian depends on the inputs (this would be violated by a linear function for example)."
            )
        raise RuntimeError(
            f"The hessian of the user-provided function with respect to input {i} is independent of "
            "the input. This is not allowed in strict mode. You should ensure that your function is "
            "thrice differentiable and that the hessian depends on the inputs."
        )


def _grad(
    outputs: Sequence[Optional[Tensor]],
    inputs: Sequence[Tensor],
    grad_outputs: Optional[Sequence[Optional[Tensor]]] = None,
    create_graph: bool = False,
    retain_graph: Optional[bool] = None,
) -> Tuple[Optional[Tensor], ...]:
    """``autograd.grad`` that skips outputs which are None or carry no graph, and answers None
    for every input when no output is left (the engine refuses such outputs)."""
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    outs, gos = [], []
    for out, go in zip(outputs, grad_outputs):
        if out is not None and out.requires_grad:
            outs.append(out)
            gos.append(go)
    if not outs:
        return (None,) * len(inputs)
    return tuple(_core._grad(outs, list(inputs), gos, retain_graph, create_graph, True))


_ZERO_MESSAGES = {
    "back": "The output of the user-provided function is independent of input {i}. "
    "This is not allowed in strict mode.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the grad_outputs "
    "when using the double backward trick to compute forward mode gradients. This is not allowed in strict mode.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}. "
    "This is not allowed in strict mode.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry {i} in the "
    "grad_jacobian. This is not allowed in strict mode as it prevents from using the double backward trick "
    "to replace forward mode AD.",
}


def _zeros_for_none(
    grads: Sequence[Optional[Tensor]], refs: Sequence[Tensor], strict: bool, create_graph: bool, stage: str
) -> Tuple[Tensor, ...]:
    """Replaces each missing gradient with zeros shaped like its reference (the mathematical
    value), or raises in strict mode; with ``strict`` and ``create_graph`` a gradient that carries
    no graph is refused as well, since its derivative would silently be zero."""
    res = []
    for i, (g, ref) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError(_ZERO_MESSAGES[stage].format(i=i))
            g = _core.zeros_like(ref)
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if stage.startswith("double") else "jacobian"
            raise RuntimeError(
                f"The {what} of the user-provided function is independent of input {i}. "
                "This is not allowed in strict mode when create_graph=True."
            )
        res.append(g)
    return tuple(res)


class _grad_mode:
    """Sets grad mode for a block (the package's context managers import this module's parent,
    so the core switch is used directly)."""

    def __init__(self, mode: bool) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        self.prev = _core._set_grad_enabled(self.mode)

    def __exit__(self, *exc: Any) -> None:
        _core._set_grad_enabled(self.prev)


def _backward_mode(create_graph: bool) -> _grad_mode:
    # The last backward records a graph exactly when the caller wants a differentiable result;
    # otherwise the caller's own grad mode stands, as in PyTorch.
    return _grad_mode(True if create_graph else _core.is_grad_enabled())


def _v_or_default(v: Any, ref: Tuple[Tensor, ...], ref_was_tuple: bool, api: str, create_graph: bool, msg: str):
    """Validated ``v`` as a tuple, or None when it may be left out (a single one-element ref)."""
    if v is not None:
        _, v = _tupled(v, "v", api)
        v = _fresh(v, create_graph=create_graph, need_graph=False)
        _check_v(v, ref, ref_was_tuple)
        return v
    if len(ref) != 1 or ref[0].numel() != 1:
        raise RuntimeError(msg)
    return None


_V_NONE_INPUT = (
    "The vector v can only be None if the input to the user-provided function is a single Tensor "
    "with a single element."
)


def _scalar_output(outputs: Any, api: str, strict: bool) -> Tuple[Tensor, ...]:
    """Checks that ``func`` gave one single-element tensor, as hessian, vhp and hvp require."""
    was_tuple, outs = _tupled(outputs, "outputs of the user-provided function", api)
    _strict_requires_grad(outs, "outputs", strict)
    if was_tuple:
        raise RuntimeError(f"The function given to {api} should return a single Tensor")
    if outs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {api} should contain a single element")
    return outs


# --- public API ----------------------------------------------------------------------------


def vjp(
    func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    v: Optional[TensorOrTensors] = None,
    create_graph: bool = False,
    strict: bool = False,
) -> Tuple[TensorOrTensors, TensorOrTensors]:
    """``(func(*inputs), v^T J)``: the vector-Jacobian product at ``inputs``.

    ``v`` has the shape of ``func``'s output(s) and may be left out when that is a single
    one-element tensor. The vjp has the structure of ``inputs``. Same as PyTorch.
    """
    with _grad_mode(True):
        in_tuple, ins = _tupled(inputs, "inputs", "vjp")
        ins = _fresh(ins, create_graph=create_graph, need_graph=True)
        out_tuple, outs = _tupled(func(*ins), "outputs of the user-provided function", "vjp")
        _strict_requires_grad(outs, "outputs", strict)
        v = _v_or_default(
            v, outs, out_tuple, "vjp", create_graph,
            "The vector v can only be None if the user-provided function returns a single Tensor "
            "with a single element.",
        )
    with _backward_mode(create_graph):
        grads = _grad(outs, ins, v, create_graph=create_graph)
        res = _zeros_for_none(grads, ins, strict, create_graph, "back")
    return _untupled(_finish(outs, create_graph), out_tuple), _untupled(_finish(res, create_graph), in_tuple)


def _double_vjp_setup(outs: Tuple[Tensor, ...], ins: Tuple[Tensor, ...], strict: bool):
    """Dummy cotangents ``u`` (zeros: the vjp is linear in them, so their value never shows, but
    it must be finite) and ``J^T u`` recorded with a graph, for the double-vjp trick."""
    us = tuple(_core.zeros_like(o, requires_grad=True) for o in outs)
    g = _grad(outs, ins, us, create_graph=True)
    _strict_requires_grad(g, "grad_inputs", strict)
    return us, g


def jvp(
    func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    v: Optional[TensorOrTensors] = None,
    create_graph: bool = False,
    strict: bool = False,
) -> Tuple[TensorOrTensors, TensorOrTensors]:
    """``(func(*inputs), J v)``: the Jacobian-vector product at ``inputs``.

    Computed with the double-vjp trick (see the module docstring), as PyTorch's
    ``autograd.functional.jvp`` also does; ``v`` has the shape of ``inputs`` and may be left out
    for a single one-element input. The jvp has the structure of the output. Same as PyTorch.
    """
    with _grad_mode(True):
        in_tuple, ins = _tupled(inputs, "inputs", "jvp")
        ins = _fresh(ins, create_graph=create_graph, need_graph=True)
        v = _v_or_default(
            v, ins, in_tuple, "jvp", create_graph,
            "The vector v can only be None if the input to the user-provided function is a single "
            "Tensor with a single element.",
        )
        out_tuple, outs = _tupled(func(*ins), "outputs of the user-provided function", "jvp")
        _strict_requires_grad(outs, "outputs", strict)
        us, g = _double_vjp_setup(outs, ins, strict)
    with _backward_mode(create_graph):
        grads = _grad(g, us, v, create_graph=create_graph)
        res = _zeros_for_none(grads, outs, strict, create_graph, "back_trick")
    return _untupled(_finish(outs, create_graph), out_tuple), _untupled(_finish(res, create_graph), out_tuple)


def _one_hot(ref: Tensor, k: int) -> Tensor:
    """A tensor shaped like ``ref`` with a single 1 at flat index ``k``."""
    e = _core.zeros(ref.numel(), dtype=ref.dtype, device=ref.device)
    e[k] = 1.0
    return e.reshape(ref.shape)


def _stack_rows(rows: List[Tensor], lead: Tuple[int, ...], ref: Tensor, dim: int) -> Tensor:
    """Stacks per-element derivatives into one Jacobian block of shape ``lead + ref.shape``
    (``dim=0``: rows indexed by output elements) or ``ref.shape + lead`` (``dim=-1``: columns)."""
    if not rows:
        shape = lead + tuple(ref.shape) if dim == 0 else tuple(ref.shape) + lead
        return _core.zeros(shape, dtype=ref.dtype, device=ref.device)
    stacked = _core.stack(rows, dim)
    return stacked.reshape(lead + tuple(ref.shape) if dim == 0 else tuple(ref.shape) + lead)


def _jacobian_reverse(func, ins, create_graph, strict):
    """One backward per output element: row ``k`` of block ``(i, j)`` is the vjp of output
    ``i`` with the ``k``-th one-hot vector."""
    out_tuple, outs = _tupled(func(*ins), "outputs of the user-provided function", "jacobian")
    _strict_requires_grad(outs, "outputs", strict)
    blocks = []
    for i, out in enumerate(outs):
        rows: List[List[Tensor]] = [[] for _ in ins]
        for k in range(out.numel()):
            grads = _grad((out,), ins, (_one_hot(out, k),), create_graph=create_graph, retain_graph=True)
            for j, (g, inp) in enumerate(zip(grads, ins)):
                if g is None:
                    if strict:
                        raise RuntimeError(
                            f"Output {i} of the user-provided function is independent of input {j}. "
                            "This is not allowed in strict mode."
                        )
                    g = _core.zeros_like(inp)
                elif strict and create_graph and not g.requires_grad:
                    raise RuntimeError(
                        f"The jacobian of the user-provided function is independent of input {j}. "
                        "This is not allowed in strict mode when create_graph=True."
                    )
                rows[j].append(g)
        blocks.append(tuple(_stack_rows(r, tuple(out.shape), inp, 0) for r, inp in zip(rows, ins)))
    return out_tuple, tuple(blocks)


def _jacobian_forward(func, ins):
    """One JVP per input element (double-vjp trick, one forward pass and one recorded backward
    shared by all columns): column ``k`` of block ``(i, j)`` is ``J_ij e_k``."""
    out_tuple, outs = _tupled(func(*ins), "outputs of the user-provided function", "jacobian")
    us, g = _double_vjp_setup(outs, ins, strict=False)
    cols: List[List[List[Tensor]]] = [[[] for _ in ins] for _ in outs]
    for j, inp in enumerate(ins):
        for k in range(inp.numel()):
            tangent = [_core.zeros_like(t) for t in ins]
            tangent[j] = _one_hot(inp, k)
            jv = _grad(g, us, tangent, retain_graph=True)
            for i, (c, out) in enumerate(zip(jv, outs)):
                cols[i][j].append(_core.zeros_like(out) if c is None else c)
    blocks = tuple(
        tuple(_stack_rows(cols[i][j], tuple(inp.shape), out, -1) for j, inp in enumerate(ins))
        for i, out in enumerate(outs)
    )
    return out_tuple, blocks


def jacobian(
    func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
) -> Any:
    """The Jacobian of ``func`` at ``inputs``: a tensor of shape ``out.shape + in.shape`` for one
    output and one input, a tuple over whichever of the two is a tuple, and ``J[i][j]`` (tuple of
    tuples) when both are.

    ``vectorize=True`` is accepted and loops like ``vectorize=False`` (same numbers, no speed-up);
    ``strategy="forward-mode"`` needs ``vectorize=True`` and refuses ``create_graph`` and
    ``strict`` as in PyTorch, and is computed column by column with double-vjp JVPs.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(
            'Expected strategy to be either "forward-mode" or "reverse-mode". Hint: If your function has '
            'more outputs than inputs, "forward-mode" tends to be more performant. Otherwise, prefer to '
            'use "reverse-mode".'
        )
    if strategy == "forward-mode":
        if create_graph:
            raise NotImplementedError(
                "torch.autograd.functional.jacobian: `create_graph=True` and `strategy=\"forward-mode\"` are "
                "not supported together (yet). Please either set `create_graph=False` or "
                "`strategy=\"reverse-mode\"`."
            )
        if strict:
            raise RuntimeError(
                "torch.autograd.functional.jacobian: `strict=True` and `strategy=\"forward-mode\"` are not "
                "supported together (yet). Please either set `strict=False` or `strategy=\"reverse-mode\"`."
            )
        if not vectorize:
            raise NotImplementedError(
                "Computing Jacobian using forward-AD or forward-over-reverse Hessian is only implemented "
                "for `vectorize=True`."
            )
    elif vectorize and strict:
        raise RuntimeError(
            "torch.autograd.functional.jacobian: `strict=True` and `vectorized=True` are not supported "
            "together. Please either set `strict=False` or `vectorize=False`."
        )
    with _grad_mode(True):
        in_tuple, ins = _tupled(inputs, "inputs", "jacobian")
        if strategy == "forward-mode":
            ins = _fresh(ins, create_graph=False, need_graph=True)
            out_tuple, blocks = _jacobian_forward(func, ins)
        else:
            ins = _fresh(ins, create_graph=create_graph, need_graph=True)
            out_tuple, blocks = _jacobian_reverse(func, ins, create_graph, strict)
    return _untupled(_finish(blocks, create_graph), (out_tuple, in_tuple))


def hessian(
    func: Callable[..., Tensor],
    inputs: TensorOrTensors,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
) -> Any:
    """The Hessian of a function with a single-element output: a tensor of shape
    ``in.shape + in.shape`` for one input, ``H[i][j]`` of shape ``in_i.shape + in_j.shape`` for a
    tuple of inputs. Computed as the Jacobian of the (reverse-mode) gradient, as in PyTorch; the
    ``vectorize`` and ``outer_jacobian_strategy`` options behave as in :func:`jacobian`.
    """
    if outer_jacobian_strategy not in _STRATEGIES:
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    in_tuple, ins = _tupled(inputs, "inputs", "hessian")

    def scalar_func(*args: Tensor) -> Tensor:
        (out,) = _scalar_output(func(*args), "hessian", strict)
        return out.reshape(())

    def gradient(*args: Tensor) -> Tuple[Tensor, ...]:
        # both outer strategies call this on fresh tensors that require grad, so the inner
        # jacobian keeps its graph to them
        jac = jacobian(scalar_func, args, create_graph=True)
        _strict_requires_grad(jac, "jacobian", strict)
        return jac

    res = jacobian(
        gradient, ins, create_graph=create_graph, strict=strict, vectorize=vectorize, strategy=outer_jacobian_strategy
    )
    return _untupled(res, (in_tuple, in_tuple))


def vhp(
    func: Callable[..., Tensor],
    inputs: TensorOrTensors,
    v: Optional[TensorOrTensors] = None,
    create_graph: bool = False,
    strict: bool = False,
) -> Tuple[Tensor, TensorOrTensors]:
    """``(func(*inputs), v^T H)`` for a function with a single-element output: two backward
    passes. Same as PyTorch."""
    with _grad_mode(True):
        in_tuple, ins = _tupled(inputs, "inputs", "vhp")
        ins = _fresh(ins, create_graph=create_graph, need_graph=True)
        v = _v_or_default(v, ins, in_tuple, "vhp", create_graph, _V_NONE_INPUT)
        outs = _scalar_output(func(*ins), "vhp", strict)
        jac = _grad(outs, ins, create_graph=True)
        _strict_requires_grad(jac, "jacobian", strict)
    with _backward_mode(create_graph):
        grads = _grad(jac, ins, v, create_graph=create_graph)
        res = _zeros_for_none(grads, ins, strict, create_graph, "double_back")
    return _finish(outs, create_graph)[0], _untupled(_finish(res, create_graph), in_tuple)


def hvp(
    func: Callable[..., Tensor],
    inputs: TensorOrTensors,
    v: Optional[TensorOrTensors] = None,
    create_graph: bool = False,
    strict: bool = False,
) -> Tuple[Tensor, TensorOrTensors]:
    """``(func(*inputs), H v)`` for a function with a single-element output, by the double-vjp
    trick on top of the gradient (three backward passes; :func:`vhp` gives the same numbers in
    two whenever the Hessian is symmetric). Same as PyTorch."""
    with _grad_mode(True):
        in_tuple, ins = _tupled(inputs, "inputs", "hvp")
        ins = _fresh(ins, create_graph=create_graph, need_graph=True)
        v = _v_or_default(v, ins, in_tuple, "hvp", create_graph, _V_NONE_INPUT)
        outs = _scalar_output(func(*ins), "hvp", strict)
        jac = _grad(outs, ins, create_graph=True)
        _strict_requires_grad(jac, "jacobian", strict)
        us = tuple(_core.zeros_like(t, requires_grad=True) for t in ins)
        double_back = _grad(jac, ins, us, create_graph=True)
        # PyTorch re-checks ``jac`` here, which cannot fail after the check above; checking the
        # double backward is what the "hessian" message describes
        _strict_requires_grad(double_back, "hessian", strict)
    with _backward_mode(create_graph):
        grads = _grad(double_back, us, v, create_graph=create_graph)
        res = _zeros_for_none(grads, ins, strict, create_graph, "double_back_trick")
    return _finish(outs, create_graph)[0], _untupled(_finish(res, create_graph), in_tuple)
