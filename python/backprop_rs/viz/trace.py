"""Which graph nodes each module produced: module forward hooks record every call's inputs and
outputs, and the nodes between them belong to that call.

    with bp.viz.trace(model) as tr:
        loss = loss_fn(model(x), y)
    g = bp.viz.graph(loss, params=dict(model.named_parameters()), collapse="module", trace=tr)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Set, Tuple

from .._core import Tensor
from ._identity import match_variables


def _tensors(obj: Any) -> Iterator[Tensor]:
    """The tensors in a (nested) tuple/list/dict of forward arguments or outputs."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


@dataclass
class ModuleCall:
    """One call of one module during the traced forward pass.

    ``inputs``/``outputs`` are the tensors it received and returned (kept alive by the trace, as
    the graph keeps them anyway); ``params`` the module's own parameters (recursively), so its
    ``AccumulateGrad`` leaves can be recognised.
    """

    name: str
    module: Any
    index: int  # 0 for the first call of this module, 1 for the second (shared weights)...
    inputs: List[Tensor] = field(default_factory=list)
    outputs: List[Tensor] = field(default_factory=list)
    params: List[Tensor] = field(default_factory=list)
    leaf: bool = True  # no child modules

    @property
    def label(self) -> str:
        """``0: Linear`` (and ``(call 2)`` for a module called more than once)."""
        name = self.name or "(model)"
        extra = f" (call {self.index + 1})" if self.index else ""
        return f"{name}: {type(self.module).__name__}{extra}"


class ModuleTrace:
    """Records every module call of ``model`` while active (a context manager; the hooks are
    removed on exit). ``calls`` lists them in the order they finished, so inner modules come
    before the modules that contain them."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls: List[ModuleCall] = []
        self._handles: List[Any] = []
        self._count: Dict[int, int] = {}

    def __enter__(self) -> "ModuleTrace":
        for name, m in self.model.named_modules():
            params = list(m.parameters())
            leaf = not any(True for _ in m.children())
            self._handles.append(m.register_forward_hook(self._hook(name, params, leaf)))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Removes the hooks (the recorded calls stay)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str, params: List[Tensor], leaf: bool):
        def hook(module: Any, args: Tuple[Any, ...], output: Any) -> None:
            k = self._count.get(id(module), 0)
            self._count[id(module)] = k + 1
            self.calls.append(ModuleCall(name, module, k, list(_tensors(args)), list(_tensors(output)), params, leaf))

        return hook


def trace(model: Any) -> ModuleTrace:
    """A :class:`ModuleTrace` of ``model``: use as ``with bp.viz.trace(model) as tr: ...``."""
    return ModuleTrace(model)


def owners_from_trace(tr: ModuleTrace, nodes: Dict[Any, str], children: Dict[str, List[str]],
                      node_of: Dict[str, Any]) -> Dict[str, ModuleCall]:
    """Maps node ids to the innermost module call that produced them.

    A call owns the nodes reachable from its outputs' ``grad_fn`` without crossing the
    ``grad_fn`` of one of its inputs, and the ``AccumulateGrad`` leaves of its own parameters.
    Calls are visited innermost first (the order forward hooks finish), and a node keeps the
    first call that claims it; outer calls walk through claimed nodes to reach ops of their own.
    """
    owner: Dict[str, ModuleCall] = {}
    # which tensor each AccumulateGrad node accumulates into, as an index into `known`
    known: List[Tensor] = []
    index: Dict[int, int] = {}
    for call in tr.calls:
        for t in list(call.params) + [t for t in call.inputs if t.grad_fn is None and t.requires_grad]:
            if id(t) not in index:
                index[id(t)] = len(known)
                known.append(t)
    accs = [nid for nid, fn in node_of.items() if fn.name() == "AccumulateGrad"]
    var_of = {nid: set(js) for nid, js in zip(accs, match_variables([node_of[n] for n in accs], known))}
    for call in tr.calls:
        stop: Set[str] = set()
        leaf_inputs: Set[int] = set()
        for t in call.inputs:
            fn = t.grad_fn
            if fn is not None and fn in nodes:
                stop.add(nodes[fn])
            elif t.requires_grad:
                leaf_inputs.add(index[id(t)])
        mine = {index[id(p)] for p in call.params}
        stack = [nodes[t.grad_fn] for t in call.outputs if t.grad_fn is not None and t.grad_fn in nodes]
        seen: Set[str] = set()
        while stack:
            nid = stack.pop()
            if nid in seen or nid in stop:
                continue
            seen.add(nid)
            fn = node_of[nid]
            if fn.name() == "AccumulateGrad":
                v = var_of.get(nid, set())
                if v & mine and not v & leaf_inputs:
                    owner.setdefault(nid, call)
                continue
            owner.setdefault(nid, call)
            stack.extend(children.get(nid, []))
    return owner
