"""The type stubs stay in step with the compiled module: every public name the extension exports
is declared in _core.pyi, every Tensor method is declared on the stub's Tensor, and vice versa."""

import ast
import pathlib

import backprop_rs._core as core

STUB = pathlib.Path(core.__file__).with_name("_core.pyi")
if not STUB.exists():  # editable installs keep the stub in the source tree
    STUB = pathlib.Path(__file__).resolve().parents[1] / "python" / "backprop_rs" / "_core.pyi"


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
    assert top - exported - {"_Shape", "_DTypeLike", "_DeviceLike", "_Number", "_TensorLike", "_Dims", "_ValuesIndices", "_Pair", "__version__"} == set()


def test_tensor_methods_match():
    _, tensor = _stub_names()
    actual = {n for n in dir(core.Tensor) if not (n.startswith("__") and n.endswith("__"))}
    assert actual - tensor == set(), f"Tensor methods missing from the stub: {sorted(actual - tensor)}"
    dunder_ok = {n for n in tensor if n.startswith("__")}
    assert tensor - actual - dunder_ok == set(), f"stub declares methods the binding lacks: {sorted(tensor - actual - dunder_ok)}"
