"""``bp.save`` / ``bp.load``: checkpoints as standard safetensors files, never pickle.

What can be saved is a tree of dicts (str or int keys), lists, tuples, tensors and plain values
(``int``, ``float``, ``bool``, ``str``, ``None``): a model ``state_dict()``, an optimizer
``state_dict()`` in PyTorch's layout, or a dict holding both and an epoch counter. Anything else
raises ``TypeError`` naming where it sits; there is no fallback to pickle, so loading a checkpoint
can never run code.

The file layout:

* every tensor goes into the safetensors tensor section under its dotted path
  (``{"model": {"fc.weight": w}}`` stores ``model.fc.weight``); a flat ``{name: tensor}`` dict
  keeps its names unchanged, so other safetensors readers see the usual keys;
* the rest of the tree (keys with their int/str types, list vs tuple, plain values, and which
  tensor sits where) is JSON in the header's ``__metadata__`` under the one reserved key
  ``"backprop_rs.structure"``.

A safetensors file without that key (written by another tool) loads as a flat ``{name: tensor}``
dict in file order.
"""

from __future__ import annotations

import errno
import math
import os
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from . import _core
from ._core import Tensor

__all__ = ["save", "load", "STRUCTURE_KEY"]

#: The ``__metadata__`` key holding the JSON description of the saved tree.
STRUCTURE_KEY = "backprop_rs.structure"
_FORMAT = "backprop_rs.checkpoint"
_VERSION = 1

_PathLike = Union[str, "os.PathLike[str]"]
_ALLOWED = "tensors, dicts (with str or int keys), lists, tuples, str, int, float, bool and None"


# ---------------------------------------------------------------------------- encoding


def _where(path: str, key: Any) -> str:
    return f"{path}[{key!r}]"


class _Encoder:
    """Walks the tree once, collecting tensors under flat names and returning the JSON skeleton.

    Skeleton nodes: JSON scalars for None/bool/int/finite floats/str, JSON arrays for lists, and
    one-key objects for everything else: ``{"$dict": [[key, node], ...]}`` (pairs, so int keys
    stay ints), ``{"$tuple": [...]}``, ``{"$tensor": name}``, ``{"$float": "nan"|"inf"|"-inf"}``
    (strict JSON has no non-finite numbers). User strings can never be mistaken for tags because
    user dicts are always wrapped in ``$dict``.
    """

    def __init__(self) -> None:
        self.tensors: Dict[str, Tensor] = {}
        self.origin: Dict[str, str] = {}
        self._open: Set[int] = set()

    def tensor(self, t: Tensor, name: str, path: str) -> Dict[str, str]:
        if name in self.tensors:
            raise ValueError(
                f"bp.save: {path} and {self.origin[name]} would both be stored under the tensor name "
                f"{name!r}; rename one of the keys"
            )
        self.tensors[name] = t
        self.origin[name] = path
        return {"$tensor": name}

    def encode(self, x: Any, name: Optional[str], path: str) -> Any:
        if isinstance(x, Tensor):
            return self.tensor(x, "tensor" if name is None else name, path)
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            x = float(x)
            if math.isfinite(x):
                return x
            return {"$float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}
        if isinstance(x, (dict, list, tuple)):
            if id(x) in self._open:
                raise ValueError(f"bp.save: {path} contains itself (a reference cycle); checkpoints must be trees")
            self._open.add(id(x))
            try:
                return self._container(x, name, path)
            finally:
                self._open.discard(id(x))
        raise TypeError(
            f"bp.save: cannot save an object of type {type(x).__module__}.{type(x).__qualname__} at {path}; "
            f"only {_ALLOWED} can be saved (checkpoints never use pickle)"
        )

    def _container(self, x: Any, name: Optional[str], path: str) -> Any:
        def child(key: Any) -> str:
            return str(key) if name is None else f"{name}.{key}"

        if isinstance(x, dict):
            pairs = []
            for k, v in x.items():
                if not isinstance(k, (str, int)):
                    raise TypeError(
                        f"bp.save: dict keys must be str or int, found a key of type {type(k).__qualname__} "
                        f"({k!r}) in {path}"
                    )
                key = k if isinstance(k, (str, bool)) else int(k)
                pairs.append([key, self.encode(v, child(k), _where(path, k))])
            return {"$dict": pairs}
        items = [self.encode(v, child(i), f"{path}[{i}]") for i, v in enumerate(x)]
        return items if isinstance(x, list) else {"$tuple": items}


def _json() -> Any:
    """The json module, imported on first use: it is ~1.5 ms of every `import backprop_rs`
    otherwise, and only save/load need it."""
    import json

    return json


def _flatten(obj: Any) -> Tuple[Dict[str, Tensor], str]:
    enc = _Encoder()
    try:
        root = enc.encode(obj, None, "obj")
    except RecursionError:
        raise ValueError("bp.save: the object is nested too deeply to save") from None
    structure = _json().dumps(
        {"format": _FORMAT, "version": _VERSION, "root": root},
        allow_nan=False,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return enc.tensors, structure


def save(obj: Any, f: Union[_PathLike, Any]) -> None:
    """Saves ``obj`` (a possibly nested dict of tensors and plain values) to ``f``, a path or a
    binary file object, as a safetensors file.

    >>> import backprop_rs as bp, io
    >>> buf = io.BytesIO()
    >>> bp.save({"w": bp.ones(2), "epoch": 3}, buf)
    >>> _ = buf.seek(0)
    >>> bp.load(buf)
    {'w': tensor([1., 1.]), 'epoch': 3}
    """
    tensors, structure = _flatten(obj)
    names, values = list(tensors), list(tensors.values())
    metadata = {STRUCTURE_KEY: structure}
    if hasattr(f, "write"):
        f.write(_core._save_bytes(names, values, metadata))
    else:
        _core._save(names, values, metadata, os.fspath(f))


# ---------------------------------------------------------------------------- decoding


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class _Decoder:
    def __init__(self, tensors: Dict[str, Tensor]) -> None:
        self.tensors = tensors
        self.used: Set[str] = set()

    def fail(self, path: str, msg: str) -> ValueError:
        return ValueError(f"bp.load: malformed checkpoint structure at {path}: {msg}")

    def decode(self, node: Any, path: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict) or len(node) != 1:
            raise self.fail(path, f"expected a value or a one-key tag object, found {_json().dumps(node)[:80]}")
        ((tag, val),) = node.items()
        if tag == "$tensor":
            if not isinstance(val, str) or val not in self.tensors:
                raise self.fail(path, f"refers to tensor {val!r}, which the file does not hold")
            self.used.add(val)
            return self.tensors[val]
        if tag == "$tuple":
            if not isinstance(val, list):
                raise self.fail(path, "a $tuple must hold a list")
            return tuple(self.decode(v, f"{path}[{i}]") for i, v in enumerate(val))
        if tag == "$float":
            if val not in _FLOATS:
                raise self.fail(path, f"unknown $float value {val!r}")
            return _FLOATS[val]
        if tag == "$dict":
            if not isinstance(val, list):
                raise self.fail(path, "a $dict must hold a list of [key, value] pairs")
            out: Dict[Any, Any] = {}
            for pair in val:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))):
                    raise self.fail(path, f"bad $dict entry {_json().dumps(pair)[:80]} (expected [str or int key, value])")
                k = pair[0]
                if k in out:
                    raise self.fail(path, f"duplicate key {k!r}")
                out[k] = self.decode(pair[1], _where(path, k))
            return out
        raise self.fail(path, f"unknown tag {tag!r}")


def _unflatten(tensors: Dict[str, Tensor], structure: str) -> Any:
    try:
        doc = _json().loads(structure, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or "root" not in doc:
            raise ValueError(f"expected an object with format {_FORMAT!r} and a root")
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"bad version {version!r}")
        if version > _VERSION:
            raise ValueError(f"written by a newer backprop_rs (format version {version}; this one reads {_VERSION})")
    except (ValueError, RecursionError) as e:
        raise ValueError(f"bp.load: the checkpoint's {STRUCTURE_KEY!r} metadata is invalid: {e}") from None
    dec = _Decoder(tensors)
    try:
        obj = dec.decode(doc["root"], "obj")
    except RecursionError:
        raise ValueError("bp.load: the checkpoint's structure is nested too deeply") from None
    unused = [n for n in tensors if n not in dec.used]
    if unused:
        raise ValueError(f"bp.load: the file holds tensors its structure never mentions: {unused[:5]}")
    return obj


def _target_device(map_location: Any) -> Optional[Any]:
    """The device tensors should end up on, or None for the CPU (where they are loaded)."""
    if map_location is None:
        return None
    if not isinstance(map_location, (str, _core.device)):
        raise TypeError(f"bp.load: map_location must be None, a device or a device name like 'cpu' or 'gpu', got {type(map_location).__qualname__}")
    dev = _core.device(map_location)
    if dev.type == "cpu":
        return None
    try:
        # Fail before reading the file when the backend is missing, not after.
        _core.zeros(1).to(dev)
    except RuntimeError as e:
        raise RuntimeError(f"bp.load: cannot map tensors to {map_location!r}: {e}") from None
    return dev


def load(f: Union[_PathLike, Any], map_location: Any = None) -> Any:
    """Loads what :func:`save` wrote (or any safetensors file) from a path or a binary file
    object. Tensors come back on the CPU, or on ``map_location`` (``"gpu"``) when given.

    Malformed files raise ``ValueError`` saying what is wrong and where; the file is checked
    completely before any tensor memory is allocated.
    """
    device = _target_device(map_location)
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"bp.load: the file object returned {type(data).__qualname__}, not bytes; open it in binary mode")
        pairs, metadata = _core._load_bytes(bytes(data))
    else:
        path = os.fspath(f)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        pairs, metadata = _core._load(path)
    tensors = dict(pairs)
    if device is not None:
        tensors = {k: v.to(device) for k, v in tensors.items()}
    structure = metadata.get(STRUCTURE_KEY)
    if structure is None:
        return tensors
    return _unflatten(tensors, structure)
