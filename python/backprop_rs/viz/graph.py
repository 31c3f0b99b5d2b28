"""The computation graph as a picture: ``bp.viz.graph(output, params=...)`` walks ``grad_fn`` /
``next_functions`` from ``output`` and writes Graphviz DOT.

Build the graph *before* ``backward()``: it registers a pre-hook on every node, so the backward
pass leaves each node's gradient summary (norm, min/max, NaN/inf counts) behind, and
``.source`` (regenerated on every access) shows them. After a backward without
``retain_graph=True`` the engine has freed the graph and there is nothing left to walk.

The DOT format (kept simple so that the Rust core can emit the same text):

* ``digraph backprop { ... }`` with ``rankdir=TB``, so inputs sit on top and the output at the
  bottom: the picture reads as the forward pass, and backpropagation climbs it.
* one DOT node per graph node, ids ``n0, n1, ...`` in discovery order of an iterative
  depth-first walk from the root(s) that visits ``next_functions`` in order; the root is ``n0``.
* one edge ``child -> parent`` per distinct ``(parent, child)`` pair of ``next_functions``
  (entries that are ``None`` are inputs that need no gradient and are not drawn).
* labels are lines joined by ``\\n``: the op name (or the parameter name for a leaf), then
  ``shape dtype device`` when known, then ``w |.|=.. [min, max]`` for leaf values
  (``show_values``) and ``grad |.|=.. [min, max]`` after backward, then ``NaN a inf b`` when a
  gradient has non-finite entries; such nodes have ``color=red, fontcolor=red, penwidth=2``.
* ``collapse="module"`` with a trace: one node per leaf-module call (ids ``m0, m1, ...``); a
  container module (one with children, other than the traced model itself: a ``Sequential``
  stage, a transformer block) is a ``subgraph cluster_c<k>`` box around its layers and its own
  ops (attention, residual adds), so the picture keeps the data flow (no cycles).
* fill colours: parameters ``#cfe2ff``, other leaves ``#fff3cd``, the root(s) ``#d1e7dd``,
  modules ``#e2d9f3``, other ops ``#eeeeee``; NaN/inf ``#f8d7da``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .._core import Tensor
from ._identity import match_variables
from ._summary import Summary, dtype_name, fmt, shape_str, summarize
from .trace import ModuleCall, ModuleTrace, owners_from_trace

__all__ = ["Graph", "GraphNode", "graph", "dot_available"]

FILL = {"param": "#cfe2ff", "leaf": "#fff3cd", "root": "#d1e7dd", "module": "#e2d9f3", "op": "#eeeeee", "bad": "#f8d7da"}


def dot_available() -> bool:
    """True when Graphviz's ``dot`` program is on ``PATH``."""
    return shutil.which("dot") is not None


@dataclass
class GraphNode:
    """One node of the picture.

    ``kind`` is ``"op"`` (a backward node), ``"param"`` (an ``AccumulateGrad`` of a named
    parameter), ``"leaf"`` (of another tensor) or ``"module"`` (a collapsed module call).
    ``op`` is the engine's node name (``MulBackward0``, ``AccumulateGrad``), ``name`` the
    parameter or module name when there is one. ``shape``/``dtype``/``device`` describe the
    node's output when known (see :class:`Graph`), ``grad`` the summary of the gradient that
    reached it in the last backward pass, ``value`` the summary of a leaf's value.
    """

    id: str
    kind: str
    op: str
    name: Optional[str] = None
    shape: Optional[Tuple[int, ...]] = None
    dtype: Optional[str] = None
    device: Optional[str] = None
    grad: Optional[Summary] = None
    value: Optional[Summary] = None
    root: bool = False
    cluster: Optional[str] = None  # the id of the enclosing container module's box (collapse with a trace)
    members: List[str] = field(default_factory=list)  # for modules: the ids of the nodes inside
    outputs: List[str] = field(default_factory=list)  # for modules: members whose output leaves it
    params: List[str] = field(default_factory=list)  # for modules: ids of their parameter leaves

    @property
    def title(self) -> str:
        """The first line of the label."""
        return self.name if self.kind in ("param", "leaf", "module") and self.name else self.op


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _stats(prefix: str, s: Summary) -> str:
    return f"{prefix} |.|={fmt(s.norm)} [{fmt(s.min)}, {fmt(s.max)}]"


class Graph:
    """The result of :func:`graph`: ``nodes`` (id -> :class:`GraphNode`, in DOT order) and
    ``edges`` (``(child id, parent id)`` pairs: the child is an input of the parent), with
    ``.source`` (DOT), ``.render(path)``, ``.save(path)`` and an SVG repr for notebooks.

    Output shapes: the engine's nodes do not expose them, so a node's ``shape`` is known for
    the root (from the output tensor), leaves (from the variable), module outputs (from the
    trace) and, after backward, every node the gradient reached (a gradient has its node's
    output shape). Gradient summaries arrive through node pre-hooks; :meth:`close` removes them.
    """

    def __init__(self, full_nodes: Dict[str, GraphNode], full_edges: List[Tuple[str, str]],
                 groups: Optional[Dict[str, GraphNode]], owner: Optional[Dict[str, str]],
                 show_values: bool, handles: List[Any], title: Optional[str],
                 clusters: Optional[Dict[str, Tuple[str, Optional[str]]]] = None) -> None:
        self.clusters: Dict[str, Tuple[str, Optional[str]]] = clusters or {}
        """``{cluster id: (label, parent cluster id)}``: the boxes of container modules (a
        ``Sequential``, a transformer block) drawn around their layers and their own ops."""
        self._full_nodes = full_nodes
        self._full_edges = full_edges
        self._groups = groups
        self._owner = owner or {}
        self.show_values = show_values
        self._handles = handles
        self.title = title

    # ------------------------------------------------------------------ structure

    @property
    def collapsed(self) -> bool:
        """True for a ``collapse="module"`` graph."""
        return self._groups is not None

    @property
    def ops(self) -> Dict[str, GraphNode]:
        """Every node of the uncollapsed graph (a collapsed graph keeps them, for inspection)."""
        return self._full_nodes

    @property
    def nodes(self) -> Dict[str, GraphNode]:
        """The nodes drawn: the full graph, or modules plus the ops outside every module."""
        if self._groups is None:
            return self._full_nodes
        out: Dict[str, GraphNode] = {}
        for nid, n in self._full_nodes.items():
            gid = self._owner.get(nid)
            if gid is None:
                out[nid] = n
            elif gid not in out:
                out[gid] = self._groups[gid]
        return out

    @property
    def edges(self) -> List[Tuple[str, str]]:
        """``(child, parent)`` id pairs as drawn (``child -> parent`` in DOT), without duplicates."""
        if self._groups is None:
            return list(self._full_edges)
        seen, out = set(), []
        for c, p in self._full_edges:
            e = (self._owner.get(c, c), self._owner.get(p, p))
            if e[0] != e[1] and e not in seen:
                seen.add(e)
                out.append(e)
        return out

    def find(self, title: str) -> List[GraphNode]:
        """The drawn nodes whose first label line is ``title`` (an op or a parameter name)."""
        return [n for n in self.nodes.values() if n.title == title]

    # ------------------------------------------------------------------ DOT

    def _label(self, n: GraphNode) -> Tuple[str, bool]:
        lines = [n.title]
        if n.shape is not None:
            lines.append(f"{shape_str(n.shape)} {n.dtype or ''} {n.device or ''}".strip())
        bad = False
        if n.kind == "module":
            for pid in n.params:
                p = self._full_nodes[pid]
                short = (p.name or pid).rsplit(".", 1)[-1]
                line = f"{short} {shape_str(p.shape) if p.shape else ''}".strip()
                if self.show_values and p.value is not None:
                    line += f" |.|={fmt(p.value.norm)}"
                if p.grad is not None:
                    line += f" grad |.|={fmt(p.grad.norm)}"
                    bad = bad or not p.grad.finite
                lines.append(line)
        if self.show_values and n.value is not None:
            lines.append(_stats("w" if n.kind == "param" else "value", n.value))
        if n.grad is not None:
            lines.append(_stats("grad out" if n.kind == "module" else "grad", n.grad))
            if not n.grad.finite:
                bad = True
        if bad:
            nan = sum(s.nan for s in self._grads_of(n))
            inf = sum(s.inf for s in self._grads_of(n))
            lines.append(f"NaN {nan} inf {inf}")
        return "\\n".join(_esc(x) for x in lines), bad

    def _grads_of(self, n: GraphNode) -> List[Summary]:
        out = [n.grad] if n.grad is not None else []
        out += [self._full_nodes[p].grad for p in n.params if self._full_nodes[p].grad is not None]
        return out

    @property
    def source(self) -> str:
        """The graph in Graphviz DOT (regenerated on each access, so it shows the gradients of
        the latest backward pass)."""
        out = ["digraph backprop {"]
        g = 'graph [rankdir=TB, fontname="Helvetica", fontsize=10, nodesep=0.25, ranksep=0.3'
        if self.title:
            g += f', label="{_esc(self.title)}", labelloc=t'
        out.append("  " + g + "];")
        out.append('  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, '
                   'color="#555555", fillcolor="#eeeeee"];')
        out.append('  edge [color="#555555", arrowsize=0.6];')
        drawn = self.nodes
        inside: Dict[Optional[str], List[str]] = {}
        for nid, n in drawn.items():
            inside.setdefault(n.cluster if n.cluster in self.clusters else None, []).append(nid)
        sub: Dict[Optional[str], List[str]] = {}
        for cid, (_, parent) in self.clusters.items():
            sub.setdefault(parent if parent in self.clusters else None, []).append(cid)

        def emit(cid: Optional[str], indent: str) -> None:
            for c in sub.get(cid, []):
                if not self._cluster_used(c, inside, sub):
                    continue
                out.append(f"{indent}subgraph cluster_{c} {{")
                out.append(f'{indent}  label="{_esc(self.clusters[c][0])}"; style="rounded,dashed"; color="#7a6aa8"; '
                           'fontcolor="#4b3f72"; fontsize=9;')
                emit(c, indent + "  ")
                out.append(f"{indent}}}")
            for nid in inside.get(cid, []):
                out.append(indent + self._node_line(nid, drawn[nid]))

        emit(None, "  ")
        for c, p in self.edges:
            out.append(f"  {c} -> {p};")
        out.append("}")
        return "\n".join(out) + "\n"

    def _node_line(self, nid: str, n: GraphNode) -> str:
        label, bad = self._label(n)
        kind = "root" if n.root else n.kind
        attrs = [f'label="{label}"']
        if bad:
            attrs += [f'fillcolor="{FILL["bad"]}"', "color=red", "fontcolor=red", "penwidth=2"]
        elif kind != "op":
            attrs.append(f'fillcolor="{FILL[kind]}"')
        if n.kind in ("param", "leaf"):
            attrs.append("shape=ellipse")
        return f"{nid} [{', '.join(attrs)}];"

    def _cluster_used(self, cid: str, inside: Dict[Optional[str], List[str]], sub: Dict[Optional[str], List[str]]) -> bool:
        return bool(inside.get(cid)) or any(self._cluster_used(c, inside, sub) for c in sub.get(cid, []))

    def save(self, path: str) -> str:
        """Writes the DOT source to ``path``; returns ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.source)
        return path

    def pipe(self, format: str = "svg") -> bytes:
        """The picture as bytes in ``format`` (``svg``, ``png``, ``pdf``...), drawn by ``dot``."""
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(
                "drawing the graph needs Graphviz's `dot` program, which is not on PATH "
                "(install Graphviz: apt-get install graphviz, brew install graphviz, conda install graphviz); "
                "the DOT text is always available as .source or .save(path)")
        r = subprocess.run([exe, f"-T{format}"], input=self.source.encode("utf-8"), capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"dot -T{format} failed: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout

    def render(self, path: str, format: Optional[str] = None) -> str:
        """Draws the graph into ``path`` with Graphviz (``format`` from the suffix unless given:
        ``.svg``, ``.png``, ``.pdf``; ``.dot``/``.gv`` write the source); returns ``path``.
        Raises ``RuntimeError`` with what to install when ``dot`` is missing."""
        fmt_ = (format or path.rsplit(".", 1)[-1]).lower()
        if fmt_ in ("dot", "gv"):
            return self.save(path)
        data = self.pipe(fmt_)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _repr_svg_(self) -> Optional[str]:
        # Jupyter falls back to the text repr when this returns None (no Graphviz installed).
        if not dot_available():
            return None
        return self.pipe("svg").decode("utf-8")

    def __repr__(self) -> str:
        return f"<bp.viz.Graph: {len(self.nodes)} nodes, {len(self.edges)} edges{' (collapsed)' if self.collapsed else ''}>"

    def close(self) -> None:
        """Removes the gradient-capturing node hooks (the summaries captured so far stay)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> "Graph":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _walk(roots: Sequence[Any]) -> Tuple[Dict[Any, str], Dict[str, Any], Dict[str, List[str]], Dict[str, bool], List[Tuple[str, str]]]:
    """Iterative depth-first walk of ``next_functions``: ids in discovery order, children lists,
    which nodes have an input that needs no gradient (a ``None`` entry), and the edges."""
    ids: Dict[Any, str] = {}
    node_of: Dict[str, Any] = {}
    children: Dict[str, List[str]] = {}
    has_none: Dict[str, bool] = {}
    edges: List[Tuple[str, str]] = []
    seen_edges = set()

    def visit(fn: Any) -> str:
        nid = ids.get(fn)
        if nid is None:
            nid = f"n{len(ids)}"
            ids[fn] = nid
            node_of[nid] = fn
        return nid

    for r in roots:
        visit(r)
    # children are pushed in reverse so that the first input is explored first
    stack: List[Any] = list(reversed(roots))
    expanded = set()
    while stack:
        fn = stack.pop()
        pid = ids[fn]
        if pid in expanded:
            continue
        expanded.add(pid)
        try:
            nexts = fn.next_functions
        except RuntimeError as e:
            raise RuntimeError(
                f"bp.viz.graph: {e}. Build the graph before backward() (its hooks then record the "
                "gradients), or run backward(retain_graph=True)") from None
        kids: List[str] = []
        pending = []
        for child, _ in nexts:
            if child is None:
                has_none[pid] = True
                continue
            fresh = child not in ids
            cid = visit(child)
            kids.append(cid)
            if (pid, cid) not in seen_edges:
                seen_edges.add((pid, cid))
                edges.append((cid, pid))
            if fresh:
                pending.append(child)
        children[pid] = kids
        stack.extend(reversed(pending))
    return ids, node_of, children, has_none, edges


def _renumber(ids: Dict[Any, str], node_of: Dict[str, Any], children: Dict[str, List[str]],
              has_none: Dict[str, bool], edges: List[Tuple[str, str]], roots: Sequence[Any]):
    """Renumbers nodes in depth-first preorder (a node's first input right after it), which is
    the order a reader follows down the picture; the root stays ``n0``."""
    order: List[str] = []
    seen = set()
    for r in roots:
        stack = [ids[r]]
        while stack:
            nid = stack.pop()
            if nid in seen:
                continue
            seen.add(nid)
            order.append(nid)
            stack.extend(reversed([c for c in children.get(nid, []) if c not in seen]))
    new = {old: f"n{i}" for i, old in enumerate(order)}
    ids2 = {fn: new[nid] for fn, nid in ids.items()}
    node_of2 = {new[nid]: fn for nid, fn in node_of.items()}
    children2 = {new[nid]: [new[c] for c in ks] for nid, ks in children.items()}
    has_none2 = {new[nid]: v for nid, v in has_none.items()}
    edges2 = sorted(((new[c], new[p]) for c, p in edges), key=lambda e: (int(e[1][1:]), int(e[0][1:])))
    return ids2, node_of2, children2, has_none2, edges2


def _param_names(node_of: Dict[str, Any], params: Optional[Mapping[str, Tensor]]) -> Dict[str, str]:
    """``{node id: parameter name}`` for the ``AccumulateGrad`` nodes of named parameters (a
    tensor listed under several names gets them all, joined by `` / ``)."""
    accs = [nid for nid, fn in node_of.items() if fn.name() == "AccumulateGrad"]
    if not params or not accs:
        return {}
    names, tensors = list(params), list(params.values())
    hits = match_variables([node_of[nid] for nid in accs], tensors)
    return {nid: " / ".join(names[j] for j in js) for nid, js in zip(accs, hits) if js}


def _heuristic_owners(nodes: Dict[str, GraphNode], children: Dict[str, List[str]], has_none: Dict[str, bool]) -> Dict[str, str]:
    """Module ownership without a trace, from parameter names alone: a node belongs to module
    ``P`` (the prefix of ``P.weight``) when it consumes ``P``'s parameters directly, that is
    when ``P``'s parameters are reachable from it through inputs that carry no activation (no
    path to a non-parameter leaf or to an input that needs no gradient). Ops on activations
    alone (``relu``, the loss) stay outside every module. Exact ownership needs a trace."""
    reach: Dict[str, set] = {}  # module prefixes reachable through parameter-only inputs
    act: Dict[str, bool] = {}  # does the node reach an activation (data) input?
    post: List[str] = []
    seen = set()
    for start in nodes:
        if start in seen:
            continue
        stack = [(start, False)]
        while stack:
            nid, done = stack.pop()
            if done:
                post.append(nid)
                continue
            if nid in seen:
                continue
            seen.add(nid)
            stack.append((nid, True))
            stack.extend((c, False) for c in children.get(nid, []) if c not in seen)
    for nid in post:  # children before parents
        n = nodes[nid]
        if n.kind == "param":
            reach[nid] = {n.name.split(" / ")[0].rsplit(".", 1)[0] if "." in (n.name or "") else ""}
            act[nid] = False
            continue
        if n.kind == "leaf":
            reach[nid], act[nid] = set(), True
            continue
        r: set = set()
        a = bool(has_none.get(nid))
        for c in children.get(nid, []):
            if act[c]:
                a = True
            else:
                r |= reach[c]
        reach[nid], act[nid] = r, a
    owner: Dict[str, str] = {}
    for nid, r in reach.items():
        if len(r) == 1:
            owner[nid] = next(iter(r))
    return owner


def graph(output: Union[Tensor, Sequence[Tensor]], params: Optional[Mapping[str, Tensor]] = None, show_values: bool = True,
          collapse: Optional[str] = None, trace: Optional[ModuleTrace] = None, title: Optional[str] = None) -> Graph:
    """The computation graph that produced ``output`` (a tensor or a sequence of tensors).

    ``params`` (e.g. ``dict(model.named_parameters())``) names the leaves; ``show_values``
    adds each leaf's value summary to its label. ``collapse="module"`` draws one node per
    module call: exactly when ``trace`` (a :func:`bp.viz.trace` of the forward pass) is given,
    with container modules as boxes around their layers (:attr:`Graph.clusters`), otherwise by
    the parameter-name rule of ``_heuristic_owners`` (ops that consume a module's parameters). Call it before ``backward()``: every node then gets its gradient summary.
    """
    roots_t = [output] if isinstance(output, Tensor) else list(output)
    roots = []
    for t in roots_t:
        if t.grad_fn is None:
            raise ValueError("bp.viz.graph: the output has no grad_fn (it was not computed from tensors "
                             "that require grad, or it was computed under no_grad)")
        roots.append(t.grad_fn)
    if collapse not in (None, "module"):
        raise ValueError(f"collapse must be None or 'module', got {collapse!r}")
    ids, node_of, children, has_none, edges = _renumber(*_walk(roots), roots)
    pnames = _param_names(node_of, params)

    nodes: Dict[str, GraphNode] = {}
    for nid in sorted(node_of, key=lambda s: int(s[1:])):
        fn = node_of[nid]
        op = fn.name()
        if op == "AccumulateGrad":
            v = fn.variable
            name = pnames.get(nid)
            n = GraphNode(nid, "param" if name else "leaf", op, name or "leaf",
                          tuple(int(s) for s in v.shape), dtype_name(v.dtype), str(v.device))
            if show_values:
                n.value = summarize(v)
        else:
            n = GraphNode(nid, "op", op)
        nodes[nid] = n
    for t, r in zip(roots_t, roots):
        n = nodes[ids[r]]
        n.root = True
        n.shape, n.dtype, n.device = tuple(int(s) for s in t.shape), dtype_name(t.dtype), str(t.device)

    groups: Optional[Dict[str, GraphNode]] = None
    owner: Dict[str, str] = {}
    clusters: Dict[str, Tuple[str, Optional[str]]] = {}
    if collapse == "module":
        groups = {}
        if trace is not None:
            calls = owners_from_trace(trace, ids, children, node_of)
            box = _containers(trace)
            key: Dict[int, str] = {}
            for nid in nodes:
                call = calls.get(nid)
                if call is None:
                    continue
                if not call.leaf:  # an op of a container module itself: drawn inside its box
                    nodes[nid].cluster = box.get(id(call), (None, None))[0]
                    continue
                gid = key.get(id(call))
                if gid is None:
                    gid = key[id(call)] = f"m{len(key)}"
                    groups[gid] = _module_node(gid, call, ids)
                    groups[gid].cluster = box.get(id(call), (None, None))[1]
                owner[nid] = gid
            clusters = {cid: (label, parent) for cid, parent, label in box.values() if cid is not None}
        else:
            if not params:
                raise ValueError("collapse='module' needs params= (named parameters) or trace= (bp.viz.trace(model))")
            prefixes = _heuristic_owners(nodes, children, has_none)
            key2: Dict[str, str] = {}
            for nid in nodes:
                pre = prefixes.get(nid)
                if pre is None:
                    continue
                gid = key2.get(pre)
                if gid is None:
                    gid = key2[pre] = f"m{len(key2)}"
                    groups[gid] = GraphNode(gid, "module", "module", f"module {pre}" if pre else "(model)")
                owner[nid] = gid
        for nid, gid in owner.items():
            g = groups[gid]
            g.members.append(nid)
            if nodes[nid].kind in ("param", "leaf"):
                g.params.append(nid)
            if nodes[nid].root:
                g.root = True
        if trace is None:  # a module's output: a member used outside the module (or a root)
            for c, p in edges:
                gid = owner.get(c)
                if gid is not None and owner.get(p) != gid and c not in groups[gid].outputs:
                    groups[gid].outputs.append(c)
            for nid, gid in owner.items():
                if nodes[nid].root and nid not in groups[gid].outputs:
                    groups[gid].outputs.append(nid)
            for g in groups.values():
                if g.outputs and nodes[g.outputs[0]].shape is not None:
                    o = nodes[g.outputs[0]]
                    g.shape, g.dtype, g.device = o.shape, o.dtype, o.device

    # A leaf's AccumulateGrad node is shared by every graph that uses the leaf (as in PyTorch),
    # so its hook also fires in backward passes of other graphs; it records only when one of
    # its consumers in this graph ran first in the same pass (they arm it).
    armed: Dict[str, bool] = {}
    leaf_children: Dict[str, List[str]] = {nid: [c for c in children.get(nid, []) if nodes[c].kind != "op"] for nid in nodes}
    handles = [node_of[nid].register_prehook(_capture(nodes[nid], groups, owner, armed, leaf_children[nid])) for nid in nodes]
    return Graph(nodes, edges, groups, owner, show_values, handles, title, clusters)


def _containers(tr: ModuleTrace) -> Dict[int, Tuple[Optional[str], Optional[str], str]]:
    """For every call of the trace (by ``id``): ``(its own box id, the id of the box it sits
    in, its label)``. Container calls (modules with children) other than the traced model
    itself get a box (else ``None``); a call sits in the first container call that finished
    after it with a name prefixing its own (calls are listed innermost first), or in none."""
    own: Dict[int, str] = {}
    for c in tr.calls:
        if not c.leaf and c.name:
            own[id(c)] = f"c{len(own)}"
    out: Dict[int, Tuple[Optional[str], Optional[str], str]] = {}
    for i, c in enumerate(tr.calls):
        parent = next((own[id(d)] for d in tr.calls[i + 1:] if id(d) in own and c.name.startswith(d.name + ".")), None)
        out[id(c)] = (own.get(id(c)), parent, c.label)
    return out


def _module_node(gid: str, call: ModuleCall, ids: Dict[Any, str]) -> GraphNode:
    g = GraphNode(gid, "module", "module", call.label)
    if call.outputs:
        t = call.outputs[0]
        g.shape, g.dtype, g.device = tuple(int(s) for s in t.shape), dtype_name(t.dtype), str(t.device)
    g.outputs = [ids[t.grad_fn] for t in call.outputs if t.grad_fn is not None and t.grad_fn in ids]
    return g


def _capture(n: GraphNode, groups: Optional[Dict[str, GraphNode]], owner: Dict[str, str], armed: Dict[str, bool],
             leaves: List[str]):
    """A node pre-hook that stores the summary of the gradient reaching ``n`` (the gradient of
    the node's output, so also its shape, dtype and device). An op's hook arms its ``leaves``;
    a leaf's hook records only when armed (see :func:`graph`)."""

    def hook(grad_outputs: Tuple[Optional[Tensor], ...]) -> None:
        if n.kind == "op":
            for c in leaves:
                armed[c] = True
        elif not armed.pop(n.id, False):
            return None  # a backward pass of another graph that shares this leaf
        g = next((t for t in grad_outputs if t is not None), None)
        if g is None:
            return None
        s = summarize(g)
        n.grad = s
        if n.kind == "op":
            n.shape, n.dtype, n.device = s.shape, s.dtype, s.device
        gid = owner.get(n.id)
        if groups is not None and gid is not None:
            grp = groups[gid]
            if grp.outputs and grp.outputs[0] == n.id:  # a module's gradient is its output's
                grp.grad = s
                grp.shape, grp.dtype, grp.device = s.shape, s.dtype, s.device
        return None

    return hook
