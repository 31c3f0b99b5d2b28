"""The type stubs stay in step with the compiled module.

By name: every public name the extension exports is declared in _core.pyi, every Tensor method is
declared on the stub's Tensor, and vice versa. By signature: every function, constructor and
method of ``backprop_rs._core`` has, in the stub, the parameter names, kinds (positional-only,
positional-or-keyword, ``*args``, keyword-only, ``**kwargs``) and defaults that
``inspect.signature`` reads from the runtime object (PyO3 writes them into
``__text_signature__``). Every mismatch is reported in one assertion message.
"""

import ast
import inspect
import pathlib

import backprop_rs._core as core
from backprop_rs._tensor_methods import PYTHON_METHODS, _WRAPS

STUB = pathlib.Path(core.__file__).with_name("_core.pyi")
if not STUB.exists():  # editable installs keep the stub in the source tree
    STUB = pathlib.Path(__file__).resolve().parents[1] / "python" / "backprop_rs" / "_core.pyi"

P = inspect.Parameter
# a default that is present but not compared: `= ...` in the stub, or one PyO3 cannot write into
# a text signature (it writes `...`, e.g. for negative numbers: ignore_index=-100, end_dim=-1)
ANY_DEFAULT = "<any default>"
NO_DEFAULT = "<no default>"

# Runtime objects whose signature cannot be read, and why. Keep it short and true: an entry that
# stops being needed fails the test, so the list cannot hide a mismatch that later appears.
# None today. (The exception classes' constructors have no text signature either, but the stub
# declares no __init__ for them, so there is nothing to compare; likewise dtype and _StorageOwner,
# which cannot be constructed from Python.)
NO_SIGNATURE: dict[str, str] = {}


# ------------------------------------------------------------------ the names


def _stub_names():
    tree = ast.parse(STUB.read_text())
    top, tensor = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef) and node.name == "Tensor":
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    tensor.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    tensor.add(item.target.id)
    return top, tensor


def test_module_names_match():
    top, _ = _stub_names()
    exported = {n for n in dir(core) if not n.startswith("__")}
    assert exported - top == set(), f"exported but not in _core.pyi: {sorted(exported - top)}"
    aliases = {"_Shape", "_DTypeLike", "_DeviceLike", "_Number", "_TensorLike", "_Dims", "_ValuesIndices", "_Pair",
               "__version__"}
    assert top - exported - aliases == set()


def test_tensor_methods_match():
    _, tensor = _stub_names()
    # methods attached in Python (backprop_rs/_tensor_methods.py) are not the binding's
    actual = {n for n in dir(core.Tensor) if not (n.startswith("__") and n.endswith("__"))} - (set(PYTHON_METHODS) - _WRAPS)
    assert actual - tensor == set(), f"Tensor methods missing from the stub: {sorted(actual - tensor)}"
    dunder_ok = {n for n in tensor if n.startswith("__")}
    extra = tensor - actual - dunder_ok
    assert extra == set(), f"stub declares methods the binding lacks: {sorted(extra)}"


# ------------------------------------------------------------------ the signatures


def _is_dunder(name):
    return name.startswith("__") and name.endswith("__")


def _stub_default(node):
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return ANY_DEFAULT
    try:
        return ast.literal_eval(node)
    except ValueError:  # an expression the stub computes: compare its source text
        return ast.unparse(node)


def _stub_params(fn, drop_first):
    """(name, kind, default) of a stub ``def``, as ``inspect`` would list them."""
    a = fn.args
    positional = [(x, P.POSITIONAL_ONLY) for x in a.posonlyargs] + [(x, P.POSITIONAL_OR_KEYWORD) for x in a.args]
    defaults = [NO_DEFAULT] * (len(positional) - len(a.defaults)) + [_stub_default(d) for d in a.defaults]
    out = []
    for (arg, kind), default in zip(positional, defaults):
        if kind is P.POSITIONAL_OR_KEYWORD and arg.arg.startswith("__") and not _is_dunder(arg.arg):
            kind = P.POSITIONAL_ONLY  # the typing convention for positional-only before PEP 570
        out.append((arg.arg, kind, default))
    if a.vararg is not None:
        out.append((a.vararg.arg, P.VAR_POSITIONAL, NO_DEFAULT))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, P.KEYWORD_ONLY, NO_DEFAULT if default is None else _stub_default(default)))
    if a.kwarg is not None:
        out.append((a.kwarg.arg, P.VAR_KEYWORD, NO_DEFAULT))
    return out[1:] if drop_first else out


def _runtime_params(sig, drop_first):
    out = []
    for p in sig.parameters.values():
        if p.default is P.empty:
            default = NO_DEFAULT
        elif p.default is Ellipsis:
            default = ANY_DEFAULT
        else:
            default = p.default
        out.append((p.name, p.kind, default))
    return out[1:] if drop_first else out


def _render(params):
    parts, seen_kw = [], False
    for i, (name, kind, default) in enumerate(params):
        if kind is P.KEYWORD_ONLY and not seen_kw:
            parts.append("*")
        seen_kw = seen_kw or kind in (P.VAR_POSITIONAL, P.KEYWORD_ONLY)
        text = {P.VAR_POSITIONAL: "*", P.VAR_KEYWORD: "**"}.get(kind, "") + name
        if default is not NO_DEFAULT:
            text += "=..." if default is ANY_DEFAULT else f"={default!r}"
        parts.append(text)
        nxt = params[i + 1][1] if i + 1 < len(params) else None
        if kind is P.POSITIONAL_ONLY and nxt is not P.POSITIONAL_ONLY:
            parts.append("/")
    return "(" + ", ".join(parts) + ")"


def _same_default(a, b):
    if ANY_DEFAULT in (a, b):
        return (a is NO_DEFAULT) == (b is NO_DEFAULT)
    return type(a) is type(b) and a == b


def _same_param(stub, runtime, compare_default=True):
    (sn, sk, sd), (rn, rk, rd) = stub, runtime
    # a positional-only parameter's name is invisible to callers: only its place matters
    names_ok = sn == rn or sk is rk is P.POSITIONAL_ONLY
    return names_ok and sk is rk and (not compare_default or _same_default(sd, rd))


def _compare(qualname, runtime, variants):
    """Mismatch messages between the runtime parameters and the stub's ``def`` (or its
    ``@overload`` variants: each must be a subset of the runtime's parameters, in order, and
    together they must name them all)."""
    if len(variants) == 1:
        stub = variants[0]
        if len(stub) == len(runtime) and all(_same_param(s, r) for s, r in zip(stub, runtime)):
            return []
        return [f"{qualname}: stub {_render(stub)} != runtime {_render(runtime)}"]
    problems, covered = [], set()
    for stub in variants:
        i = 0
        for s in stub:
            while i < len(runtime) and not _same_param(s, runtime[i], compare_default=False):
                i += 1
            if i == len(runtime):
                problems.append(f"{qualname}: overload {_render(stub)} does not fit runtime {_render(runtime)}")
                break
            # an overload may drop a default (it narrows the call), but may not state another one
            if s[2] is not NO_DEFAULT and not _same_default(s[2], runtime[i][2]):
                problems.append(f"{qualname}: overload {_render(stub)} gives {s[0]} a default the runtime "
                                f"{_render(runtime)} does not have")
            covered.add(i)
            i += 1
    missing = [runtime[i][0] for i in range(len(runtime)) if i not in covered]
    if missing:
        problems.append(f"{qualname}: no overload declares {missing} of runtime {_render(runtime)}")
    return problems


def _is_overload(fn):
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in fn.decorator_list)


def _decorators(fn):
    return {d.id for d in fn.decorator_list if isinstance(d, ast.Name)} | {
        d.attr for d in fn.decorator_list if isinstance(d, ast.Attribute)}


def _stub_defs(body):
    """name -> list of the ``def`` nodes for it (several for ``@overload``), and the set of names
    the stub declares as attributes or properties."""
    defs, data = {}, set()
    for node in body:
        if isinstance(node, ast.FunctionDef):
            if _decorators(node) & {"property", "setter", "getter", "deleter"}:
                data.add(node.name)
            else:
                defs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            data.add(node.target.id)
        elif isinstance(node, ast.Assign):
            data |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return defs, data


def _signature(obj):
    try:
        return inspect.signature(obj)
    except (ValueError, TypeError):
        return None


def _is_routine(obj):
    return inspect.isroutine(obj) or type(obj).__name__ in ("wrapper_descriptor", "method-wrapper")


def _check_defs(qualname, defs, runtime, drop_first, problems, unsigned, runtime_has_self=None):
    """Compares a runtime object with its stub ``def``(s); ``drop_first`` drops ``self`` from the
    stub's (and, unless ``runtime_has_self`` is False, the runtime's) parameters."""
    sig = _signature(runtime)
    if sig is None:
        unsigned.add(qualname)
        if qualname not in NO_SIGNATURE:
            problems.append(f"{qualname}: the runtime object has no signature (add it to NO_SIGNATURE with why)")
        return
    variants = [_stub_params(d, drop_first and "staticmethod" not in _decorators(d)) for d in defs]
    if len(defs) > 1 and not all(_is_overload(d) for d in defs):
        problems.append(f"{qualname}: declared {len(defs)} times without @overload")
    runtime_self = drop_first if runtime_has_self is None else runtime_has_self
    problems += _compare(qualname, _runtime_params(sig, runtime_self), variants)


def _check_class(name, cls, node, problems, unsigned):
    defs, data = _stub_defs(node.body)
    # the constructor: the class's text signature against the stub's __init__ (or __new__)
    ctor = defs.get("__init__") or defs.get("__new__")
    if ctor is not None:
        # the class's signature has no self; the stub's __init__ has
        _check_defs(f"{name}()", ctor, cls, True, problems, unsigned, runtime_has_self=False)
    elif getattr(cls, "__text_signature__", None):
        problems.append(f"{name}(): the runtime constructor takes {inspect.signature(cls)}; the stub has no __init__")
    for attr, value in vars(cls).items():
        qual = f"{name}.{attr}"
        if cls is core.Tensor and attr in PYTHON_METHODS:
            continue  # attached in Python: the stub describes the binding's method (or none)
        if attr in ("__new__", "__init__") or not _is_routine(value):
            if attr in defs and attr not in ("__new__", "__init__"):
                problems.append(f"{qual}: a method in the stub, but a {type(value).__name__} at runtime")
            continue
        if attr in data:
            problems.append(f"{qual}: a property or attribute in the stub, but a method at runtime")
        elif attr in defs:
            _check_defs(qual, defs[attr], value, True, problems, unsigned)
        elif not _is_dunder(attr):
            problems.append(f"{qual}: a method at runtime, missing from the stub")
    for attr in [*defs, *data]:
        if attr not in ("__init__", "__new__") and not hasattr(cls, attr):
            problems.append(f"{name}.{attr}: declared in the stub, missing at runtime")


def test_signatures_match_the_runtime():
    tree = ast.parse(STUB.read_text())
    defs, _ = _stub_defs(tree.body)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    problems, unsigned, checked = [], set(), 0
    for name in sorted(dir(core)):
        obj = getattr(core, name)
        if isinstance(obj, type):
            if name in classes:
                _check_class(name, obj, classes[name], problems, unsigned)
                checked += 1
        elif callable(obj) and not _is_dunder(name):
            if name in defs:
                _check_defs(name, defs[name], obj, False, problems, unsigned)
                checked += 1
            else:
                problems.append(f"{name}: a function at runtime, missing from the stub")
    for name in defs:
        if not callable(getattr(core, name, None)):
            problems.append(f"{name}: a function in the stub, not at runtime")
    stale = set(NO_SIGNATURE) - unsigned
    if stale:
        problems.append(f"NO_SIGNATURE lists objects that now have a signature: {sorted(stale)}")
    assert checked > 50  # the walk found the module's functions and classes
    assert not problems, f"{len(problems)} stub mismatch(es):\n" + "\n".join(problems)


def test_python_tensor_methods_are_documented():
    """The Tensor methods attached in Python each have a docstring (they have no stub)."""
    undocumented = [n for n, f in PYTHON_METHODS.items() if not (getattr(f, "__doc__", None) or "").strip()]
    assert PYTHON_METHODS and not undocumented, undocumented
