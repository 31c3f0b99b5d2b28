"""Function transforms with the names and calling conventions of ``torch.func``: :func:`grad`,
:func:`grad_and_value`, :func:`vjp`, :func:`jvp`, :func:`jacrev`, :func:`jacfwd`,
:func:`hessian` and :func:`vmap`.

Arguments and outputs may be nested tuples, lists and dicts of tensors (pytrees), ``argnums``
may be an int or a tuple of ints, and ``has_aux=True`` functions return ``(output, aux)``.
Every transform enables grad mode for its own computation, so it works inside
``backprop_rs.no_grad()`` and still respects a ``no_grad`` block inside the function; it
differentiates fresh copies of the arguments (``x.detach().requires_grad_(True)``, or a
differentiable alias when ``x`` already requires grad), so no ``.grad`` field is written and
the transforms nest: ``jacrev(jacrev(f))``, ``vmap(grad(f))``, ``grad(grad(f))``.

This is not functorch: there are no transform levels and no batched tensors, which shows in a
few places, each also said at the function concerned:

* :func:`vmap` is a Python loop over the mapped dimension followed by ``backprop_rs.stack``:
  the semantics of ``torch.func.vmap`` (in_dims/out_dims, nesting, composing with grad), not
  its speed. Since each call sees a real slice, data-dependent control flow (``.item()``,
  ``if x > 0``) works where ``torch.func.vmap`` would refuse it.
* :func:`jvp` and :func:`jacfwd` are computed in reverse mode (jvp by the double-vjp trick,
  see :mod:`backprop_rs.autograd.functional`; jacfwd as jacrev): the same numbers, a different
  cost profile.
* Without levels a transform cannot tell whether anything outside it (a closed-over weight, an
  enclosing transform) requires grad, so when grad mode is on at the call it keeps the graph
  of what it returns: results stay differentiable with respect to everything they depend on,
  including closed-over tensors (so gradient penalties work), but results that depend on
  nothing outside may still report ``requires_grad=True`` where torch's would not. Call the
  transform inside ``backprop_rs.no_grad()`` to get plain tensors.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, List, Optional, Tuple, Union

from . import _core
from ._core import Tensor

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap"]

ArgNums = Union[int, Tuple[int, ...]]


# --- pytrees: nested tuples, lists and dicts; None is an empty node, anything else a leaf -----

_LEAF = ("leaf", None, ())


def _flatten(tree: Any) -> Tuple[List[Any], tuple]:
    leaves: List[Any] = []
    return leaves, _flatten_into(tree, leaves)


def _flatten_into(tree: Any, leaves: List[Any]) -> tuple:
    if tree is None:
        return ("none", None, ())
    if isinstance(tree, tuple):
        # a namedtuple is rebuilt with its own type
        ctx = type(tree) if hasattr(tree, "_fields") else None
        return ("tuple", ctx, tuple(_flatten_into(c, leaves) for c in tree))
    if isinstance(tree, list):
        return ("list", None, tuple(_flatten_into(c, leaves) for c in tree))
    if isinstance(tree, dict):
        keys = tuple(tree)
        return ("dict", keys, tuple(_flatten_into(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return _LEAF


def _unflatten(leaves: List[Any], spec: tuple) -> Any:
    it = iter(leaves)
    out = _build(it, spec)
    if next(it, _LEAF) is not _LEAF:
        raise ValueError("more leaves than the tree structure has room for")
    return out


def _build(it: Any, spec: tuple) -> Any:
    kind, ctx, children = spec
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    parts = [_build(it, c) for c in children]
    if kind == "tuple":
        return ctx(*parts) if ctx is not None else tuple(parts)
    if kind == "list":
        return parts
    return dict(zip(ctx, parts))


def _spec_str(spec: tuple) -> str:
    kind, ctx, children = spec
    if kind == "leaf":
        return "*"
    if kind == "none":
        return "None"
    inner = ", ".join(_spec_str(c) for c in children)
    if kind == "tuple":
        return f"({inner}{',' if len(children) == 1 else ''})"
    if kind == "list":
        return f"[{inner}]"
    return "{" + ", ".join(f"{k!r}: {_spec_str(c)}" for k, c in zip(ctx, children)) + "}"


def _tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    leaves, spec = _flatten(tree)
    return _unflatten([fn(x) for x in leaves], spec)


def _broadcast(prefix: Any, tree: Any) -> Optional[List[Any]]:
    """The leaves of ``prefix`` spread over the leaves of ``tree`` (an int or None covers a whole
    subtree), or None where the two structures do not match."""
    if prefix is None or isinstance(prefix, int):
        return [prefix] * len(_flatten(tree)[0])
    if isinstance(prefix, (tuple, list)):
        if type(prefix) is not type(tree) or len(prefix) != len(tree):
            return None
        out: List[Any] = []
        for p, t in zip(prefix, tree):
            part = _broadcast(p, t)
            if part is None:
                return None
            out += part
        return out
    if isinstance(prefix, dict):
        if not isinstance(tree, dict) or set(prefix) != set(tree):
            return None
        out = []
        for k in tree:
            part = _broadcast(prefix[k], tree[k])
            if part is None:
                return None
            out += part
        return out
    return [prefix] * len(_flatten(tree)[0]) if not isinstance(tree, (tuple, list, dict)) else None


# --- shared machinery ------------------------------------------------------------------------


class _grad_mode:
    """Sets grad mode for a block (``backprop_rs.autograd`` is not imported here so that this
    module loads on its own)."""

    def __init__(self, mode: bool) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        self.prev = _core._set_grad_enabled(self.mode)

    def __exit__(self, *exc: Any) -> None:
        _core._set_grad_enabled(self.prev)


def _differentiable(x: Any, keep: bool) -> Tensor:
    """A fresh tensor to differentiate with respect to: an alias that keeps ``x``'s own graph when
    results are to stay connected (``keep``) and ``x`` requires grad, a detached copy otherwise."""
    if not isinstance(x, Tensor):
        raise ValueError(f"Thing passed to transform API must be Tensor, got {type(x)}")
    if keep and x.requires_grad:
        return x.view_as(x)
    return x.detach().requires_grad_(True)


def _release(tree: Any, keep: bool, strict_tensors: bool = False) -> Any:
    """Results as handed back: detached unless the graph is kept. ``strict_tensors`` refuses
    non-tensor leaves, as torch.func does for ``aux``."""

    def one(x: Any) -> Any:
        if isinstance(x, Tensor):
            return x if keep else x.detach()
        if strict_tensors:
            raise RuntimeError(f"Expected tensors, got unsupported type {type(x)}")
        return x

    return _tree_map(one, tree)


def _grads_or_zeros(
    outputs: List[Tensor],
    inputs: List[Tensor],
    grad_outputs: Optional[List[Optional[Tensor]]],
    create_graph: bool,
    retain_graph: Optional[bool] = None,
) -> List[Tensor]:
    """``autograd.grad`` where outputs without a graph contribute nothing and inputs nothing
    reaches get zeros (the mathematical value), as torch.func's transforms give."""
    gos = grad_outputs if grad_outputs is not None else [None] * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, gos) if o.requires_grad]
    if not pairs:
        return [_core.zeros_like(x) for x in inputs]
    grads = _core._grad(
        [o for o, _ in pairs], list(inputs), [g for _, g in pairs], retain_graph, create_graph, True
    )
    return [_core.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


def _wrap_argnum(argnum: Any, n: int) -> int:
    if not isinstance(argnum, int):
        raise RuntimeError(f"argnum must be int, got: {type(argnum)}")
    if -n <= argnum < n:
        return argnum % n
    raise RuntimeError(f"Got argnum={argnum}, but only {n} positional inputs")


def _argnums(argnums: Any, n: int) -> Union[int, Tuple[int, ...]]:
    """``argnums`` checked and made non-negative, keeping int-versus-tuple (which decides the
    result's structure)."""
    if isinstance(argnums, int):
        return _wrap_argnum(argnums, n)
    if not isinstance(argnums, tuple):
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    wrapped = tuple(_wrap_argnum(a, n) for a in argnums)
    if not wrapped:
        raise RuntimeError("argnums must be non-empty")
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"argnums elements must be unique, got {wrapped}")
    return wrapped


def _with_diff_args(args: tuple, argnums: Any, keep: bool) -> Tuple[list, Any]:
    """``(args with the differentiated ones replaced by fresh tensors, those fresh args)``; the
    second is one arg's tree for an int ``argnums`` and a tuple of them for a tuple."""
    nums = _argnums(argnums, len(args))
    new_args = list(args)
    for i in (nums,) if isinstance(nums, int) else nums:
        new_args[i] = _tree_map(lambda x: _differentiable(x, keep), args[i])
    diff = new_args[nums] if isinstance(nums, int) else tuple(new_args[i] for i in nums)
    return new_args, diff


def _split_aux(out: Any, has_aux: bool, api: str) -> Tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{api}: output of function f should be a tuple: (output, aux) if has_aux is True")
    return out[0], out[1]


def _check_tensor_outputs(flat: List[Any], api: str) -> None:
    if not flat:
        raise RuntimeError(f"{api}: Expected f to be a function that has non-empty output (got output = {flat})")
    for o in flat:
        if not isinstance(o, Tensor):
            raise RuntimeError(f"{api}: expected f(*primals) to return only tensors, got unsupported type {type(o)}")


def _check_float_outputs(flat: List[Tensor]) -> None:
    for o in flat:
        if not o.is_floating_point():
            raise RuntimeError(
                f"vjp(f, ...): All outputs of f must be floating-point or complex Tensors, got Tensor with dtype {o.dtype}"
            )


def _one_hot(ref: Tensor, k: int) -> Tensor:
    e = _core.zeros(ref.numel(), dtype=ref.dtype, device=ref.device)
    e[k] = 1.0
    return e.reshape(ref.shape)


# --- grad ------------------------------------------------------------------------------------


def _grad_and_value(func: Callable, argnums: ArgNums, has_aux: bool, args: tuple, kwargs: dict):
    keep = _core.is_grad_enabled()
    with _grad_mode(True):
        new_args, diff = _with_diff_args(args, argnums, keep)
        output, aux = _split_aux(func(*new_args, **kwargs), has_aux, "grad_and_value(f)(*args)")
        if not isinstance(output, Tensor):
            raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a Tensor, got {type(output)}")
        if output.dim() != 0:
            raise RuntimeError(
                "grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, got tensor with "
                f"{output.dim()} dims. Maybe you wanted to use the vjp or jacrev APIs instead?"
            )
        flat_diff, spec = _flatten(diff)
        grads = _grads_or_zeros([output], flat_diff, None, create_graph=keep)
    grad_input = _release(_unflatten(grads, spec), keep)
    output = _release(output, keep)
    if has_aux:
        return grad_input, (output, _release(aux, keep, strict_tensors=True))
    return grad_input, output


def grad_and_value(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """``grad_and_value(f)(*args)`` is ``(gradient, f(*args))``; with ``has_aux``,
    ``(gradient, (output, aux))``. The gradient has the structure of ``args[argnums]`` (a tuple
    over ``argnums`` when it is a tuple). ``f`` must return a 0-dim tensor. Same as torch.func."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _grad_and_value(func, argnums, has_aux, args, kwargs)

    return wrapper


def grad(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """``grad(f)(*args)``: the gradient of the 0-dim tensor ``f(*args)`` with respect to
    ``args[argnums]``; with ``has_aux``, ``(gradient, aux)``. Inputs that ``f`` does not use get
    zeros. Same as torch.func (see the module docstring on ``requires_grad`` of results)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g, value = _grad_and_value(func, argnums, has_aux, args, kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


# --- vjp / jvp -------------------------------------------------------------------------------


def vjp(func: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """``(func(*primals), vjp_fn)`` (``(output, vjp_fn, aux)`` with ``has_aux``).
    ``vjp_fn(cotangents)`` takes cotangents with the structure and shapes of the output and
    returns a tuple with one entry per primal; it may be called any number of times. As in
    torch.func, ``vjp_fn(..., create_graph=None)`` records a graph when grad mode is on at
    that call."""
    keep = _core.is_grad_enabled()
    with _grad_mode(True):
        diff = tuple(_tree_map(lambda x: _differentiable(x, keep), p) for p in primals)
        out, aux = _split_aux(func(*diff), has_aux, "vjp(f, *primals)")
        flat_out, out_spec = _flatten(out)
        _check_tensor_outputs(flat_out, "vjp(f, *primals)")
        _check_float_outputs(flat_out)
        flat_diff, diff_spec = _flatten(diff)

    def vjp_fn(cotangents: Any, retain_graph: bool = True, create_graph: Optional[bool] = None) -> tuple:
        if create_graph is None:
            create_graph = _core.is_grad_enabled()
        flat_cot, cot_spec = _flatten(cotangents)
        if cot_spec != out_spec:
            raise RuntimeError(
                "Expected pytree structure of cotangents to be the same as pytree structure of outputs to "
                f"the function. cotangents: {_spec_str(cot_spec)}, primal output: {_spec_str(out_spec)}"
            )
        for i, (c, o) in enumerate(zip(flat_cot, flat_out)):
            if not isinstance(c, Tensor):
                raise RuntimeError(f"vjp_fn: expected cotangents to be Tensors, got {type(c)} at position {i}")
            if tuple(c.shape) != tuple(o.shape):
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {tuple(c.shape)} and output[{i}] "
                    f"has a shape of {tuple(o.shape)}."
                )
        with _grad_mode(True if create_graph else _core.is_grad_enabled()):
            grads = _grads_or_zeros(flat_out, flat_diff, flat_cot, create_graph, retain_graph)
        return _unflatten(grads, diff_spec)

    results = _release(out, keep)
    if has_aux:
        return results, vjp_fn, _release(aux, keep, strict_tensors=True)
    return results, vjp_fn


_JVP = "jvp(f, primals, tangents)"


def jvp(func: Callable, primals: Any, tangents: Any, *, strict: bool = False, has_aux: bool = False) -> tuple:
    """``(func(*primals), J @ tangents)`` (``(output, jvp_out, aux)`` with ``has_aux``);
    ``primals`` must be a tuple and ``tangents`` must match it in structure and shapes.

    Computed in reverse mode by the double-vjp trick (one forward, two backward passes), not
    with dual numbers as in torch.func; the numbers are the same. ``strict=True`` refuses an
    output that does not depend on the primals, as torch.func does.
    """
    if not isinstance(primals, tuple):
        raise RuntimeError(f"{_JVP}: Expected primals to be a tuple. E.g. it should be valid to call f(*primals).")
    flat_p, p_spec = _flatten(primals)
    flat_t, t_spec = _flatten(tangents)
    if p_spec != t_spec:
        raise RuntimeError(
            f"{_JVP}: Expected primals and tangents to have the same python structure. For example, if "
            "primals is a tuple of 3 tensors, tangents also must be. Got primals with structure "
            f"{_spec_str(p_spec)} and tangents with structure {_spec_str(t_spec)}"
        )
    for name, flat in (("primals", flat_p), ("tangents", flat_t)):
        if not flat:
            raise RuntimeError(f"{_JVP}: Expected {name} to contain at least one Tensor.")
        for x in flat:
            if not isinstance(x, Tensor):
                raise RuntimeError(f"{_JVP}: Expected {name} to only contain Tensors, got {type(x)}")
    for i, (p, t) in enumerate(zip(flat_p, flat_t)):
        if tuple(p.shape) != tuple(t.shape):
            raise RuntimeError(
                f"{_JVP}: Expected the tangent of primal {i} to have the primal's shape {tuple(p.shape)}, "
                f"got {tuple(t.shape)}"
            )
    keep = _core.is_grad_enabled()
    with _grad_mode(True):
        flat_diff = [_differentiable(p, keep) for p in flat_p]
        out, aux = _split_aux(func(*_unflatten(flat_diff, p_spec)), has_aux, _JVP)
        flat_out, out_spec = _flatten(out)
        _check_tensor_outputs(flat_out, _JVP)
        live = [o for o in flat_out if o.requires_grad]
        # the vjp J^T u is linear in u, so u's value (zeros) never shows
        us = [_core.zeros_like(o, requires_grad=True) for o in live]
        jt_u = _core._grad(live, flat_diff, us, None, True, True) if live else [None] * len(flat_diff)
        pairs = [(g, t) for g, t in zip(jt_u, flat_t) if g is not None and g.requires_grad]
        if pairs:
            j_t = _core._grad([g for g, _ in pairs], us, [t for _, t in pairs], None, keep, True)
        else:
            j_t = [None] * len(us)
    by_output = iter(j_t)
    tangents_out = []
    for o in flat_out:
        jt = next(by_output) if o.requires_grad else None
        if jt is None:
            if strict:
                raise RuntimeError(
                    "jvp(f, primals, tangents, strict=True): The output of f is independent of the inputs. "
                    "This is not allowed with strict=True."
                )
            jt = _core.zeros_like(o)
        tangents_out.append(jt)
    primals_out = _release(out, keep)
    tangents_out = _release(_unflatten(tangents_out, out_spec), keep)
    if has_aux:
        return primals_out, tangents_out, _release(aux, keep, strict_tensors=True)
    return primals_out, tangents_out


# --- Jacobians -------------------------------------------------------------------------------


def _jacobian(func: Callable, argnums: ArgNums, has_aux: bool, args: tuple, api: str) -> Any:
    """Reverse-mode Jacobian of every output leaf with respect to every leaf of the
    differentiated args: one backward per output element."""
    keep = _core.is_grad_enabled()
    with _grad_mode(True):
        new_args, diff = _with_diff_args(args, argnums, keep)
        out, aux = _split_aux(func(*new_args), has_aux, api)
        flat_out, out_spec = _flatten(out)
        _check_tensor_outputs(flat_out, api)
        _check_float_outputs(flat_out)
        flat_diff, diff_spec = _flatten(diff)
        per_output = []
        for o in flat_out:
            rows: List[List[Tensor]] = [[] for _ in flat_diff]
            for k in range(o.numel()):
                grads = _grads_or_zeros([o], flat_diff, [_one_hot(o, k)], keep, retain_graph=True)
                for r, g in zip(rows, grads):
                    r.append(g)
            blocks = []
            for r, p in zip(rows, flat_diff):
                shape = tuple(o.shape) + tuple(p.shape)
                if r:
                    blocks.append(_core.stack(r, 0).reshape(shape))
                else:
                    blocks.append(_core.zeros(shape, dtype=p.dtype, device=p.device))
            per_output.append(_release(_unflatten(blocks, diff_spec), keep))
    jac = _unflatten(per_output, out_spec)
    if has_aux:
        return jac, _release(aux, keep, strict_tensors=True)
    return jac


def jacrev(
    func: Callable,
    argnums: ArgNums = 0,
    *,
    has_aux: bool = False,
    chunk_size: Optional[int] = None,
    _preallocate_and_copy: bool = False,
) -> Callable:
    """``jacrev(f)(*args)``: the Jacobian of ``f`` with respect to ``args[argnums]``. Each
    output leaf becomes a block of shape ``out.shape + arg.shape`` (a structure like
    ``args[argnums]``, or a tuple of them for tuple ``argnums``); with ``has_aux``,
    ``(jacobian, aux)``. One backward pass per output element; ``chunk_size`` is checked and
    otherwise ignored (there is no vmap to chunk). Same as torch.func."""
    if not (chunk_size is None or chunk_size > 0):
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        return _jacobian(func, argnums, has_aux, args, "vjp(f, *primals)")

    return wrapper


_RANDOMNESS = ("error", "different", "same")


def _check_randomness(randomness: str) -> None:
    if randomness not in _RANDOMNESS:
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")


def jacfwd(func: Callable, argnums: ArgNums = 0, has_aux: bool = False, *, randomness: str = "error") -> Callable:
    """``jacfwd(f)(*args)``: the same Jacobian, structure and ``has_aux`` convention as
    :func:`jacrev`. torch.func computes it in forward mode (one JVP per input element); here it
    is computed in reverse mode, exactly as :func:`jacrev` (same numbers, cost proportional to
    the output size instead). ``randomness`` is checked and otherwise ignored."""
    _check_randomness(randomness)

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        return _jacobian(func, argnums, has_aux, args, _JVP)

    return wrapper


def hessian(func: Callable, argnums: ArgNums = 0) -> Callable:
    """``hessian(f)(*args)``: ``jacfwd(jacrev(f, argnums), argnums)``, so a block of shape
    ``out.shape + arg.shape + arg.shape`` (nested tuples ``H[i][j]`` for tuple ``argnums``).
    Both Jacobians are reverse mode here (see :func:`jacfwd`)."""
    return jacfwd(jacrev(func, argnums), argnums)


# --- vmap ------------------------------------------------------------------------------------


def _name(func: Callable) -> str:
    return getattr(func, "__name__", repr(func))


def vmap(
    func: Callable,
    in_dims: Any = 0,
    out_dims: Any = 0,
    randomness: str = "error",
    *,
    chunk_size: Optional[int] = None,
) -> Callable:
    """``vmap(f)(*args)`` maps ``f`` over dimension ``in_dims`` of its arguments and stacks the
    results along ``out_dims``, with torch.func's conventions: ``in_dims`` an int, or a
    (nested) tuple matching the arguments with None for arguments not mapped; ``out_dims`` an
    int or a structure matching the output, None for outputs not mapped; keyword arguments are
    passed through unmapped.

    Implemented as a Python loop over the mapped dimension plus ``backprop_rs.stack``: the
    semantics of torch.func.vmap, not its speed; and since ``f`` sees real slices, it may do
    things torch.func.vmap refuses (``.item()``, data-dependent ``if``). An output with
    ``out_dims=None`` is taken from the first call (torch checks that it is not batched; a loop
    cannot). ``randomness`` and ``chunk_size`` are checked and otherwise ignored: random ops
    draw afresh in each call, like ``randomness="different"``. A mapped dimension of size 0 is
    refused (a loop that never runs cannot tell the output's structure).
    """
    _check_randomness(randomness)
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got {chunk_size})")
    for d in _flatten(out_dims)[0]:
        if d is not None and not isinstance(d, int):
            raise ValueError(
                f"vmap({_name(func)}, ..., out_dims={out_dims}): `out_dims` must be an int, None or a python "
                "collection of ints representing where in the outputs the vmapped dimension should appear."
            )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        name = _name(func)
        if not isinstance(in_dims, (int, tuple)):
            raise ValueError(
                f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): expected `in_dims` to be int or a (potentially "
                f"nested) tuple matching the structure of inputs, got: {type(in_dims)}."
            )
        if not args:
            raise ValueError(
                f"vmap({name})(<inputs>): got no inputs. Maybe you forgot to add inputs, or you are trying to "
                "vmap over a function with no inputs. The latter is unsupported."
            )
        flat_args, args_spec = _flatten(args)
        flat_dims = _broadcast(in_dims, args)
        if flat_dims is None:
            raise ValueError(
                f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): in_dims is not compatible with the structure "
                f"of `inputs`. in_dims has structure {_spec_str(_flatten(in_dims)[1])} but inputs has structure "
                f"{_spec_str(args_spec)}."
            )
        sizes = []
        for i, (a, d) in enumerate(zip(flat_args, flat_dims)):
            if d is None:
                continue
            if not isinstance(d, int):
                raise ValueError(
                    f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): Got in_dim={d} for an input but in_dim "
                    "must be either an integer dimension or None."
                )
            if not isinstance(a, Tensor):
                raise ValueError(
                    f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): Got in_dim={d} for an input but the input "
                    f"is of type {type(a)}. We cannot vmap over non-Tensor arguments, please use None as the "
                    "respective in_dim"
                )
            if not -a.dim() <= d < a.dim():
                raise ValueError(
                    f"vmap({name}, in_dims={in_dims}, ...)(<inputs>): Got in_dim={d} for some input, but that "
                    f"input is a Tensor of dimensionality {a.dim()} so expected in_dim to satisfy "
                    f"-{a.dim()} <= in_dim < {a.dim()}."
                )
            flat_dims[i] = d % a.dim()
            sizes.append(a.shape[d])
        if not sizes:
            raise ValueError("vmap: Expected at least one Tensor to vmap over")
        if any(s != sizes[0] for s in sizes):
            raise ValueError(
                f"vmap: Expected all tensors to have the same size in the mapped dimension, got sizes {sizes} "
                "for the mapped dimension"
            )
        if sizes[0] == 0:
            raise ValueError(f"vmap({name}): a mapped dimension of size 0 is not supported by this loop")

        per_call = []
        for b in range(sizes[0]):
            sliced = [a if d is None else a.select(d, b) for a, d in zip(flat_args, flat_dims)]
            per_call.append(func(*_unflatten(sliced, args_spec), **kwargs))
        first = per_call[0]
        flat_first, out_spec = _flatten(first)
        if isinstance(first, Tensor) and isinstance(out_dims, tuple) and len(out_dims) == 1:
            # a lone tensor output takes a one-element out_dims tuple as its dim
            flat_out_dims: Optional[List[Any]] = list(out_dims)
        else:
            flat_out_dims = _broadcast(out_dims, first)
        if flat_out_dims is None:
            raise ValueError(
                f"vmap({name}, ..., out_dims={out_dims})(<inputs>): out_dims is not compatible with the structure "
                f"of `outputs`. out_dims has structure {_spec_str(_flatten(out_dims)[1])} but outputs has "
                f"structure {_spec_str(out_spec)}."
            )
        columns = []
        for r in per_call:
            flat, spec = _flatten(r)
            if spec != out_spec:
                raise ValueError(f"vmap({name}): the function returned outputs of different structures across calls")
            columns.append(flat)
        results = []
        for j, d in enumerate(flat_out_dims):
            if d is None:
                results.append(flat_first[j])
                continue
            items = [c[j] for c in columns]
            if not isinstance(items[0], Tensor):
                raise ValueError(
                    f"vmap({name}, ...): `{name}` must only return Tensors, got type {type(items[0])}. "
                    "Did you mean to set out_dim= to None for output?"
                )
            results.append(_core.stack(items, d))
        return _unflatten(results, out_spec)

    return wrapper
