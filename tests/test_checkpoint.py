"""bp.save / bp.load: safetensors checkpoints.

References: an independent safetensors reader and writer written here from the format's
definition (8-byte little-endian header length, JSON header, raw little-endian C-order data),
NumPy byte images of the tensors, and (when installed) the official ``safetensors`` package.
The fuzz test at the end throws >1000 seeded mutations of valid files at both loaders.
"""

from __future__ import annotations

import doctest
import faulthandler
import io
import json
import math
import os
import random
import stat
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.serialization as serialization

# ----------------------------------------------------------------------------- independent format

_NP = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "BOOL": "|b1"}


def read_safetensors(raw: bytes):
    """A minimal, strict reader of the safetensors layout: returns (metadata, {name: array})."""
    assert len(raw) >= 8
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw)
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    arrays, spans = {}, []
    for name, info in header.items():
        assert set(info) == {"dtype", "shape", "data_offsets"}, info
        start, end = info["data_offsets"]
        dt = np.dtype(_NP[info["dtype"]])
        count = int(np.prod(info["shape"], dtype=np.int64))
        assert end - start == count * dt.itemsize, (name, info)
        arrays[name] = np.frombuffer(data[start:end], dtype=dt, count=count).reshape(info["shape"])
        spans.append((start, end))
    pos = 0
    for start, end in sorted(spans):
        assert start == pos, "gap or overlap"
        pos = end
    assert pos == len(data), "trailing bytes"
    return metadata, arrays


def write_safetensors(arrays: dict, metadata=None, key_order=None) -> bytes:
    """A minimal writer: data in the given dict order, header keys in `key_order` (any order is
    legal), length prefix padded to 8 like the reference writer."""
    names = {np.dtype(v): k for k, v in _NP.items()}
    header, chunks, pos = {}, [], 0
    for name, a in arrays.items():
        a = np.array(a, dtype=np.asarray(a).dtype.newbyteorder("<"), order="C")
        b = a.tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [pos, pos + len(b)]}
        chunks.append(b)
        pos += len(b)
    if key_order is not None:
        header = {k: header[k] for k in key_order}
    if metadata is not None:
        header = {"__metadata__": metadata, **header}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def pack(header, data: bytes = b"", n=None) -> bytes:
    """A file from a header (object or raw text/bytes) and data, with a correct (or forced) length."""
    if isinstance(header, (dict, list)):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<Q", len(header) if n is None else n) + header + data


def save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    bp.save(obj, buf)
    return buf.getvalue()


def load_bytes(raw: bytes, **kw):
    return bp.load(io.BytesIO(raw), **kw)


def assert_same_tensor(a, ref: np.ndarray):
    """Same dtype, shape and bytes (so NaN payloads and -0.0 count)."""
    assert isinstance(a, bp.Tensor)
    got = a.numpy()
    ref = np.array(ref, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)
    assert got.dtype == ref.dtype and got.shape == ref.shape, (got.dtype, got.shape, ref.dtype, ref.shape)
    assert got.tobytes() == ref.tobytes()


# ----------------------------------------------------------------------------- round trips


def _arrays(rng):
    f32 = rng.standard_normal(7).astype(np.float32)
    f32[:4] = [np.nan, np.inf, -0.0, np.finfo(np.float32).tiny]
    f64 = rng.standard_normal((2, 3)) * 1e300
    f64[0, 0] = -np.inf
    return {
        "f32": f32,
        "f64": f64,
        "i64": np.array([[np.iinfo(np.int64).min, -1], [0, np.iinfo(np.int64).max]], dtype=np.int64),
        "bool": np.array([True, False, True, True]),
        "scalar_f32": np.array(2.5, dtype=np.float32),
        "scalar_i64": np.array(-7, dtype=np.int64),
        "scalar_bool": np.array(True),
        "empty": np.zeros((0,), dtype=np.float32),
        "empty3d": np.zeros((3, 0, 2), dtype=np.int64),
        "big": rng.standard_normal((64, 33)).astype(np.float32),
    }


@pytest.mark.parametrize("via", ["path", "str", "fileobj"])
def test_round_trip_all_dtypes_and_shapes(tmp_path, rng, via):
    arrays = _arrays(rng)
    obj = {k: bp.from_numpy(v.copy()) for k, v in arrays.items()}
    if via == "fileobj":
        back = load_bytes(save_bytes(obj))
    else:
        p = tmp_path / "all.safetensors"
        bp.save(obj, p if via == "path" else str(p))
        back = bp.load(p if via == "path" else str(p))
    assert list(back) == list(obj)  # the saved key order comes back
    for k, ref in arrays.items():
        assert_same_tensor(back[k], ref)


def test_non_contiguous_tensors_are_written_contiguous(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    base = bp.from_numpy(a.copy())
    views = {
        "transposed": (base.t(), a.T),
        "stepped": (base[:, ::2], a[:, ::2]),
        "offset": (base[1:3, 2:], a[1:3, 2:]),
        "expanded": (bp.from_numpy(a[0].copy()).expand(3, 6), np.broadcast_to(a[0], (3, 6))),
        "permuted3d": (bp.from_numpy(a.reshape(2, 3, 4).copy()).permute(2, 0, 1), a.reshape(2, 3, 4).transpose(2, 0, 1)),
    }
    assert not any(t.is_contiguous() for name, (t, _) in views.items() if name != "offset")
    raw = save_bytes({k: t for k, (t, _) in views.items()})
    _, arrays = read_safetensors(raw)
    back = load_bytes(raw)
    for k, (_, ref) in views.items():
        np.testing.assert_array_equal(arrays[k], ref)
        assert_same_tensor(back[k], ref)
        assert back[k].is_contiguous()


def test_tensors_requiring_grad_save_their_values():
    w = bp.randn(3, 2, requires_grad=True)
    back = load_bytes(save_bytes({"w": w}))
    assert_same_tensor(back["w"], w.detach().numpy())
    assert not back["w"].requires_grad


def test_model_state_dict_is_a_standard_safetensors_file(tmp_path, rng):
    """A flat {name: tensor} dict is stored under its own names, readable without backprop_rs."""
    sd = {
        "encoder.0.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "encoder.0.bias": rng.standard_normal(4).astype(np.float32),
        "head.weight": rng.standard_normal((2, 4)),
        "head.num_batches_tracked": np.array(12, dtype=np.int64),
        "mask": np.array([True, False]),
    }
    p = tmp_path / "model.safetensors"
    bp.save({k: bp.from_numpy(v.copy()) for k, v in sd.items()}, p)
    raw = p.read_bytes()
    metadata, arrays = read_safetensors(raw)
    assert set(arrays) == set(sd)  # keys unchanged
    for k, v in sd.items():
        np.testing.assert_array_equal(arrays[k], v)
        assert arrays[k].dtype == v.dtype
    assert list(metadata) == [serialization.STRUCTURE_KEY]
    back = bp.load(p)
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert_same_tensor(back[k], v)


def test_official_safetensors_package_reads_our_files(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    sd = {"a.weight": rng.standard_normal((3, 2)).astype(np.float32), "steps": np.arange(4, dtype=np.int64)}
    p = tmp_path / "m.safetensors"
    bp.save({k: bp.from_numpy(v.copy()) for k, v in sd.items()}, p)
    got = st.load_file(str(p))
    assert set(got) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(got[k], v)
    # and we read theirs
    q = tmp_path / "theirs.safetensors"
    st.save_file(sd, str(q), metadata={"producer": "safetensors"})
    back = bp.load(q)
    for k, v in sd.items():
        assert_same_tensor(back[k], v)


def _optimizer_state(rng):
    return {
        "state": {
            0: {"momentum_buffer": bp.from_numpy(rng.standard_normal((3, 2)).astype(np.float32)), "step": 3},
            1: {"momentum_buffer": bp.from_numpy(rng.standard_normal(3).astype(np.float32)), "step": 3},
            2: {"exp_avg": bp.zeros(2, dtype=bp.float64), "exp_avg_sq": bp.ones(2, dtype=bp.float64), "step": bp.tensor(5.0)},
        },
        "param_groups": [
            {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0, "nesterov": False, "maximize": False, "foreach": None, "params": [0, 1]},
            {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": True, "name": "adam group", "params": [2]},
        ],
    }


def _assert_tree_equal(a, b, path="obj"):
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), (path, type(a), type(b))
    if isinstance(b, bp.Tensor):
        assert_same_tensor(a, b.detach().numpy())
    elif isinstance(b, dict):
        assert list(a) == list(b), path
        for k in b:
            assert type(next(x for x in a if x == k)) is type(k), f"{path}: key {k!r} changed type"
            _assert_tree_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_tree_equal(x, y, f"{path}[{i}]")
    elif isinstance(b, float) and math.isnan(b):
        assert math.isnan(a), path
    else:
        assert a == b, (path, a, b)


def test_optimizer_state_dict_round_trip(rng):
    opt = _optimizer_state(rng)
    back = load_bytes(save_bytes(opt))
    _assert_tree_equal(back, opt)
    assert set(back["state"]) == {0, 1, 2} and all(type(k) is int for k in back["state"])
    assert back["param_groups"][1]["betas"] == (0.9, 0.999)
    assert back["param_groups"][0]["foreach"] is None
    # the tensors live under dotted names in the tensor section
    _, arrays = read_safetensors(save_bytes(opt))
    assert set(arrays) == {"state.0.momentum_buffer", "state.1.momentum_buffer", "state.2.exp_avg", "state.2.exp_avg_sq", "state.2.step"}


def test_full_training_checkpoint_round_trip(tmp_path, rng):
    ckpt = {
        "model": {"fc.weight": bp.randn(3, 2), "fc.bias": bp.zeros(3)},
        "optimizer": _optimizer_state(rng),
        "epoch": 3,
        "best_loss": 0.125,
        "history": [1.5, float("inf"), float("-inf"), float("nan"), -0.0],
        "flags": {"amp": False, "note": "ünïcödé ✓", "nothing": None, 7: "int key", "7": "str key"},
        "nested": [[], (), {}, [(1, 2), {"x": [bp.tensor([1, 2])]}]],
        "big_int": 2**80,
    }
    p = tmp_path / "ckpt.safetensors"
    bp.save(ckpt, p)
    back = bp.load(p)
    _assert_tree_equal(back, ckpt)
    assert math.copysign(1.0, back["history"][4]) == -1.0
    assert back["flags"][7] == "int key" and back["flags"]["7"] == "str key"
    assert back["model"]["fc.weight"].device == "cpu"


def test_byte_exact_reload(tmp_path, rng):
    """Saving what was loaded reproduces the file byte for byte, and the data section holds the
    tensors' exact little-endian bytes."""
    arrays = _arrays(rng)
    ckpt = {"model": {k: bp.from_numpy(v.copy()) for k, v in arrays.items()}, "optimizer": _optimizer_state(rng), "epoch": 1}
    p, q = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    bp.save(ckpt, p)
    bp.save(bp.load(p), q)
    assert p.read_bytes() == q.read_bytes()
    _, stored = read_safetensors(p.read_bytes())
    for k, v in arrays.items():
        assert stored[f"model.{k}"].tobytes() == np.array(v, order="C").tobytes()


def test_foreign_file_loads_as_flat_dict(rng):
    a = rng.standard_normal((2, 2)).astype(np.float32)
    b = np.arange(3, dtype=np.int64)
    # header keys deliberately not in byte order: the format allows any order
    raw = write_safetensors({"a": a, "b": b, "c": np.array([], dtype=np.float64)}, metadata={"producer": "x"}, key_order=["c", "b", "a"])
    back = load_bytes(raw)
    assert list(back) == ["a", "b", "c"]  # file (byte) order
    assert_same_tensor(back["a"], a)
    assert_same_tensor(back["b"], b)
    assert back["c"].shape == (0,)
    assert load_bytes(write_safetensors({})) == {}


def test_high_rank_tensors_load_and_refuse_numpy_cleanly():
    """Found by the fuzz test: a valid file may hold a tensor of rank > 32, which NumPy (through
    rust-numpy) cannot represent; exporting it used to panic, now it is a ValueError."""
    raw = pack({"t": {"dtype": "F32", "shape": [1] * 40, "data_offsets": [0, 4]}}, struct.pack("<f", 1.5))
    t = load_bytes(raw)["t"]
    assert t.dim() == 40 and t.item() == 1.5
    with pytest.raises(ValueError, match="rank 40 .* at most 32 dimensions"):
        t.numpy()
    with pytest.raises(ValueError, match="at most 32 dimensions"):
        bp.ones(*[1] * 33).tolist()
    assert bp.ones(*[1] * 32).numpy().ndim == 32


def test_top_level_tensor_and_list():
    t = bp.arange(4)
    assert_same_tensor(load_bytes(save_bytes(t)), np.arange(4))
    back = load_bytes(save_bytes([t, 1, (t, "x")]))
    assert isinstance(back, list) and back[1] == 1 and back[2][1] == "x"
    assert_same_tensor(back[2][0], np.arange(4))


def test_module_doctests():
    failures, _ = doctest.testmod(serialization, raise_on_error=False, verbose=False)
    assert failures == 0


# ----------------------------------------------------------------------------- what cannot be saved


class _Custom:
    pass


@pytest.mark.parametrize(
    "value, where, what",
    [
        ({"a": {1, 2}}, "obj['a']", "builtins.set"),
        ({"optimizer": {"state": {0: {"buf": np.zeros(2)}}}}, "obj['optimizer']['state'][0]['buf']", "numpy.ndarray"),
        ({"x": [1, np.int64(3)]}, "obj['x'][1]", "numpy.int64"),
        ({"x": b"bytes"}, "obj['x']", "builtins.bytes"),
        ({"x": 1j}, "obj['x']", "builtins.complex"),
        ({"x": _Custom()}, "obj['x']", "_Custom"),
        ({"f": print}, "obj['f']", "builtin_function_or_method"),
        ({1.5: bp.ones(1)}, "obj", "dict keys must be str or int"),
        ({("a", 1): 2}, "obj", "dict keys must be str or int"),
        ({"m": {None: 1}}, "obj['m']", "dict keys must be str or int"),
    ],
)
def test_unsupported_objects_raise_typeerror_naming_the_path(tmp_path, value, where, what):
    p = tmp_path / "x.safetensors"
    with pytest.raises(TypeError) as e:
        bp.save(value, p)
    msg = str(e.value)
    assert where in msg and what in msg, msg
    assert not p.exists()  # nothing half-written
    assert "pickle" in msg or "keys" in msg


def test_cycles_and_name_collisions_are_refused():
    d: dict = {"a": 1}
    d["self"] = d
    with pytest.raises(ValueError, match=r"obj\['self'\] contains itself"):
        save_bytes(d)
    lst: list = []
    lst.append(lst)
    with pytest.raises(ValueError, match="reference cycle"):
        save_bytes(lst)
    with pytest.raises(ValueError, match=r"obj\['a'\]\['b'\] and obj\['a.b'\] would both be stored under the tensor name 'a.b'"):
        save_bytes({"a.b": bp.ones(1), "a": {"b": bp.ones(1)}})
    with pytest.raises(ValueError, match="tensor name '0'"):
        save_bytes({0: bp.ones(1), "0": bp.ones(1)})
    # the same tensor object twice is fine (stored twice, like a state_dict with tied weights)
    t = bp.ones(2)
    back = load_bytes(save_bytes({"a": t, "b": t}))
    assert_same_tensor(back["b"], np.ones(2, dtype=np.float32))


def test_shared_structure_is_saved_as_copies_not_a_cycle():
    shared = [1, 2]
    back = load_bytes(save_bytes({"x": shared, "y": shared}))
    assert back == {"x": [1, 2], "y": [1, 2]}


# ----------------------------------------------------------------------------- map_location, paths


def _gpu_available() -> bool:
    try:
        bp.ones(1).to("gpu")
        return True
    except RuntimeError:
        return False


def test_map_location():
    raw = save_bytes({"w": bp.ones(2), "n": 1})
    assert load_bytes(raw, map_location="cpu")["w"].device == "cpu"
    assert load_bytes(raw, map_location=bp.device("cpu"))["w"].device == "cpu"
    if _gpu_available():
        back = load_bytes(raw, map_location="gpu")
        assert back["w"].device == "gpu" and back["n"] == 1
        np.testing.assert_array_equal(back["w"].cpu().numpy(), np.ones(2, dtype=np.float32))
    else:
        with pytest.raises(RuntimeError, match="bp.load: cannot map tensors to 'gpu'.*GPU backend"):
            load_bytes(raw, map_location="gpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        load_bytes(raw, map_location="tpu")
    with pytest.raises(TypeError, match="map_location"):
        load_bytes(raw, map_location=3)


def test_missing_files_and_directories(tmp_path):
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "nope.safetensors")
    with pytest.raises(OSError, match="not a regular file"):
        bp.load(tmp_path)
    with pytest.raises(OSError, match="nope"):
        bp.save({"a": bp.ones(1)}, tmp_path / "nope" / "x.safetensors")
    with pytest.raises(TypeError, match="binary mode"):
        bp.load(io.StringIO("text"))


def test_save_replaces_atomically(tmp_path):
    p = tmp_path / "c.safetensors"
    bp.save({"a": bp.ones(1)}, p)
    bp.save({"b": bp.zeros(2)}, p)
    assert list(bp.load(p)) == ["b"]
    assert [x.name for x in tmp_path.iterdir()] == ["c.safetensors"]  # no temporaries left


# ----------------------------------------------------------------------------- malformed files

_ONE = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
_ONE_TEXT = json.dumps(_ONE)


def _two(a_off, b_off, a_shape=(1,), b_shape=(1,)):
    return {
        "a": {"dtype": "F32", "shape": list(a_shape), "data_offsets": list(a_off)},
        "b": {"dtype": "F32", "shape": list(b_shape), "data_offsets": list(b_off)},
    }


MALFORMED = [
    ("empty file", b"", "file is 0 bytes, shorter than the 8-byte header length"),
    ("7 bytes", b"\x01" * 7, "file is 7 bytes, shorter than the 8-byte"),
    ("truncated header", pack(_ONE, b"\0" * 8)[:30], f"header length {len(_ONE_TEXT)} runs past the end of the file: only 22 bytes follow"),
    ("header length past end", pack(_ONE, b"\0" * 8, n=len(_ONE_TEXT) + 9), "runs past the end of the file"),
    ("absurd header length", pack(_ONE, b"\0" * 8, n=2**63), "header length 9223372036854775808 is larger than the 100000000-byte limit"),
    ("max u64 header length", pack(_ONE, b"\0" * 8, n=2**64 - 1), "is larger than the 100000000-byte limit"),
    ("invalid utf-8", pack(b'{"a\xff": 1}'), "header is not valid UTF-8"),
    ("not json", pack("{not json"), "header is not a valid safetensors JSON header"),
    ("json array", pack("[]"), "expected a JSON object"),
    ("empty header", pack(""), "not a valid safetensors JSON header"),
    ("deeply nested", pack('{"a":' + "[" * 50000), "not a valid safetensors JSON header"),
    ("missing field", pack({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), 'tensor "a".*missing field `data_offsets`'),
    ("unknown field", pack({"a": {**_ONE["a"], "extra": 1}}, b"\0" * 8), 'tensor "a".*unknown field `extra`'),
    ("metadata not strings", pack({"__metadata__": {"k": 1}}), r'__metadata__\["k"\] must be a string'),
    ("duplicate tensor key", pack(_ONE_TEXT[:-1] + "," + _ONE_TEXT[1:], b"\0" * 8), 'duplicate key "a" in the header'),
    ("duplicate escaped key", pack('{"ab":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a\\u0062":{"dtype":"F32","shape":[],"data_offsets":[4,8]}}', b"\0" * 8), 'duplicate key "ab"'),
    ("duplicate metadata key", pack('{"__metadata__":{"k":"1","k":"2"}}'), 'duplicate key "k" in __metadata__'),
    ("duplicate field", pack('{"a":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}}', b"\0" * 8), "duplicate field `shape`"),
    ("unsupported dtype", pack({"a": {"dtype": "U16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8), 'tensor "a": dtype U16 is valid safetensors but not supported'),
    ("unknown dtype", pack({"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), 'tensor "a": unknown dtype "F33"'),
    ("size mismatch", pack({"a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), r'shape \[2\] of dtype F64 needs 2 × 8 = 16 bytes, but data_offsets \[0, 8\] span 8 bytes'),
    ("out of bounds", pack({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8), r"data_offsets \[0, 16\] run past the end of the data section, which holds 8 bytes"),
    ("end before start", pack({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, b"\0" * 8), r"data_offsets \[8, 4\] end before they start"),
    ("negative offset", pack({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"\0" * 4), 'tensor "a"'),
    ("overlap", pack(_two((0, 8), (4, 12), (2,), (2,)), b"\0" * 12), r'tensor "b": data_offsets \[4, 12\] overlap the bytes of tensor "a" \[0, 8\]'),
    ("same range twice", pack(_two((0, 4), (0, 4)), b"\0" * 4), "overlap"),
    ("gap", pack(_two((0, 4), (8, 12)), b"\0" * 12), r'data section bytes 4..8 .* belong to no tensor: a gap before tensor "b"'),
    ("data not starting at 0", pack({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "bytes 0..4 .*gap"),
    ("out of order (b inside a)", pack(_two((0, 8), (4, 8), (2,), (1,)), b"\0" * 8), "overlap"),
    ("trailing bytes", pack(_ONE, b"\0" * 11), "3 trailing bytes after the last tensor"),
    ("overflowing element count", pack({"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 8]}}, b"\0" * 8), r"element count of shape \[4294967296, 4294967296\] .* overflows"),
    ("overflowing byte count", pack({"a": {"dtype": "F64", "shape": [2**61], "data_offsets": [0, 8]}}, b"\0" * 8), "overflows"),
    ("empty but overflowing", pack({"a": {"dtype": "F32", "shape": [0, 2**40, 2**40], "data_offsets": [0, 0]}}), "overflows"),
    ("dimension past u64", pack('{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}}', b"\0" * 8), 'tensor "a"'),
    ("bool byte 2", pack({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"), 'tensor "m": BOOL data byte 1 is 2'),
]


@pytest.mark.parametrize("name, raw, pattern", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_raise_clear_errors(tmp_path, name, raw, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_bytes(raw)
    p = tmp_path / "bad.safetensors"
    p.write_bytes(raw)
    with pytest.raises(ValueError, match=pattern) as e:
        bp.load(p)
    assert "bad.safetensors" in str(e.value)  # file errors say which file


def _with_structure(structure: str, tensors=None) -> bytes:
    tensors = {"w": np.ones(2, dtype=np.float32)} if tensors is None else tensors
    return write_safetensors(tensors, metadata={serialization.STRUCTURE_KEY: structure})


def _doc(root, version=1):
    return json.dumps({"format": "backprop_rs.checkpoint", "version": version, "root": root})


@pytest.mark.parametrize(
    "structure, pattern",
    [
        ("{not json", "metadata is invalid"),
        ('{"format":"backprop_rs.checkpoint","version":1,"root":1,"root":2}', "duplicate key 'root'"),
        (_doc({"$tensor": "w"}, version=99), "newer backprop_rs"),
        (_doc({"$tensor": "w"}, version="1"), "bad version"),
        (json.dumps({"root": {"$tensor": "w"}}), "expected an object with format"),
        (_doc({"$tensor": "missing"}), "refers to tensor 'missing'"),
        (_doc({"$dict": [["a", {"$tensor": "w"}], ["a", 1]]}), "duplicate key 'a'"),
        (_doc({"$dict": [[1.5, {"$tensor": "w"}]]}), "bad \\$dict entry"),
        (_doc({"$dict": {"a": 1}}), "must hold a list"),
        (_doc({"$pickle": "x"}), "unknown tag"),
        (_doc({"$float": "big"}), "unknown \\$float"),
        (_doc({"$tensor": "w", "x": 1}), "one-key tag object"),
        (_doc([{"$tensor": "w"}, {"$tensor": "w"}]).replace('"w"}]', '"w"}, NaN]'), "non-standard JSON constant NaN"),
        (_doc(1), "never mentions: \\['w'\\]"),
        ('{"format":"backprop_rs.checkpoint","version":1,"root":' + "[" * 100000 + "]" * 100000 + "}", "invalid|too deeply"),
    ],
)
def test_malformed_structure_metadata_raises_valueerror(structure, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_bytes(_with_structure(structure))


# ----------------------------------------------------------------------------- fuzzing


def _try_load(load, data):
    """Runs one load; returns (outcome, detail) where outcome is "ok", "rejected", or "BUG"."""
    try:
        out = load(data)
    except BaseException as e:  # noqa: B036 - PanicException is a BaseException: that is the point
        if not isinstance(e, Exception):
            return "BUG", f"{type(e).__module__}.{type(e).__name__} (not an Exception): {e}"
        if not isinstance(e, (ValueError, OSError)):
            return "BUG", f"unexpected {type(e).__name__}: {e}"
        return "rejected", type(e).__name__
    # whatever loaded must be usable
    stack = [out]
    while stack:
        x = stack.pop()
        if isinstance(x, bp.Tensor):
            repr(x)
            if x.dim() <= 32:  # NumPy's (rust-numpy's) limit; beyond it .numpy() raises ValueError
                # (NumPy has no bfloat16: such tensors go through float32)
                assert (x.float() if x.dtype == bp.bfloat16 else x).numpy().size == x.numel()
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return "ok", ""


def test_fuzz_harness_flags_crashes():
    """The classifier below must be able to fail: a BaseException or an odd exception is a BUG."""

    class FakePanic(BaseException):
        pass

    def panics(_):
        raise FakePanic("boom")

    def keyerror(_):
        raise KeyError("x")

    assert _try_load(panics, b"")[0] == "BUG"
    assert _try_load(keyerror, b"")[0] == "BUG"
    assert _try_load(lambda _: {"t": bp.ones(1)}, b"") == ("ok", "")
    assert _try_load(lambda _: bp.load(io.BytesIO(b"")), b"")[0] == "rejected"


def _split(raw):
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _header_text(items):
    """JSON object text from (key, value) pairs, duplicates allowed."""
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in items) + "}"


_HUGE = [2**31, 2**32, 2**53, 2**62, 2**63, 2**64 - 1, 2**64, 10**30, -1, -(2**63)]


def _mutate(rng: random.Random, raw: bytes):
    """One mutation of a valid file: returns (kind, bytes)."""
    header, data = _split(raw)
    names = [k for k in header if k != "__metadata__"]
    kind = rng.choice(
        ["bitflip", "truncate", "extend", "header_len", "offsets", "shape", "dtype", "dup_key", "garbage_json", "random_bytes", "structure", "splice"]
    )
    if kind == "bitflip":
        b = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, raw[: rng.randrange(len(raw))]
    if kind == "extend":
        return kind, raw + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    if kind == "header_len":
        n = int.from_bytes(raw[:8], "little")
        v = rng.choice([0, 1, n - 1, n + 1, n + 8, len(raw) - 8, len(raw) - 7, len(raw), 100_000_000, 100_000_001, 2**32, 2**63, 2**64 - 1, rng.getrandbits(64)])
        return kind, struct.pack("<Q", max(0, min(v, 2**64 - 1))) + raw[8:]
    if kind in ("offsets", "shape", "dtype") and names:
        h = json.loads(json.dumps(header))
        info = h[rng.choice(names)]
        if kind == "offsets":
            s, e = info["data_offsets"]
            info["data_offsets"] = rng.choice(
                [[s, e + 1], [s - 1, e], [e, s], [s + 4, e + 4], [0, e], [s, len(data) + 8], [rng.choice(_HUGE), rng.choice(_HUGE)], [s], [s, e, e], None, [float(s), e], [str(s), e], [s, rng.randrange(len(data) + 16)]]
            )
        elif kind == "shape":
            shape = list(info["shape"])
            info["shape"] = rng.choice(
                [shape + [rng.choice(_HUGE)], [rng.choice(_HUGE)] + shape, [0] + [rng.choice(_HUGE)] * rng.randint(1, 3), [d * 2 for d in shape], shape[:-1], shape + [1] * rng.randint(1, 70), [-1], [1.5], "3", None]
            )
        else:
            info["dtype"] = rng.choice(["F16", "BF16", "U8", "I32", "C64", "F8_E4M3", "f32", "F32 ", "", "Q", 3, None, ["F32"], "BOOL", "F64", "I64", "F32"])
        return kind, pack(json.dumps(h), data)
    if kind == "dup_key" and names:
        items = list(header.items())
        k = rng.choice(items)
        items.insert(rng.randrange(len(items) + 1), k if rng.random() < 0.5 else (k[0], header[rng.choice(names)]))
        return kind, pack(_header_text(items), data)
    if kind == "garbage_json":
        text = json.dumps(header)
        g = rng.choice(
            [
                text[: rng.randrange(len(text))],
                "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randint(0, 80))),
                "[" * rng.randint(1, 20000),
                '{"a":' * rng.randint(1, 5000),
                "null",
                "1e999",
                '"string"',
                text.replace(":", "=", 1),
                text + "}",
                text[:1] + "\x00" + text[1:],
            ]
        )
        return kind, pack(g, data)
    if kind == "structure" and "__metadata__" in header:
        h = json.loads(json.dumps(header))
        s = h["__metadata__"][serialization.STRUCTURE_KEY]
        i = rng.randrange(len(s))
        h["__metadata__"][serialization.STRUCTURE_KEY] = rng.choice(
            [
                s[:i],
                s[:i] + chr(rng.randrange(32, 127)) + s[i + 1 :],
                s[:i] + s[i:].replace('"$tensor"', '"$tuple"', 1),
                s.replace('"$dict"', '"$list"', 1),
                s.replace("[[", "[[[", 1),
                s.replace(str(rng.choice(names or ["w"])), "gone", 1),
                s.replace('"version":1', '"version":2'),
                '{"format":"backprop_rs.checkpoint","version":1,"root":' + "[" * 5000 + "]" * 5000 + "}",
                '{"format":"backprop_rs.checkpoint","version":1,"root":' + '{"$dict":[["k",' * 3000 + "1" + "]]}" * 3000 + "}",
            ]
        )
        return kind, pack(json.dumps(h), data)
    if kind == "splice":
        a, b = sorted(rng.randrange(len(raw)) for _ in range(2))
        return kind, raw[:a] + raw[b:] + raw[a:b]
    # random bytes, sometimes with a plausible length prefix
    body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    if body and rng.random() < 0.5:
        body = struct.pack("<Q", rng.randrange(len(body) + 1)) + body
    return "random_bytes", body


def test_fuzz_mutated_files_never_crash(tmp_path):
    """>= 1000 seeded mutations of valid checkpoints: each either loads or raises ValueError /
    OSError, the file and in-memory loaders agree, and nothing panics or hangs."""
    rng = random.Random(0x5AFE7E45)
    bases = [
        save_bytes({"fc.weight": bp.randn(3, 2), "fc.bias": bp.zeros(3)}),
        save_bytes({"model": {"w": bp.randn(4)}, "optimizer": _optimizer_state(np.random.default_rng(0)), "epoch": 3}),
        save_bytes({"f64": bp.randn(2, dtype=bp.float64), "i": bp.arange(3), "b": bp.tensor([True, False]), "s": bp.tensor(1.0), "e": bp.zeros(0, 4)}),
        write_safetensors({"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([1, 0], dtype=bool)}),
    ]
    faulthandler.dump_traceback_later(120, exit=True)  # a hang kills the run loudly instead of stalling CI
    bugs, counts = [], {}
    t0 = time.perf_counter()
    try:
        n_cases = 4000
        for case in range(n_cases):
            kind, raw = _mutate(rng, rng.choice(bases))
            mem = _try_load(load_bytes, raw)
            p = tmp_path / f"f{case}.safetensors"  # a fresh name: rewriting one file in place is slow on ext4
            p.write_bytes(raw)
            disk = _try_load(bp.load, p)
            p.unlink()
            for where, (outcome, detail) in (("bytes", mem), ("file", disk)):
                if outcome == "BUG":
                    bugs.append(f"case {case} ({kind}, {where}): {detail}; file starts {raw[:120]!r}")
            if mem[0] != disk[0]:
                bugs.append(f"case {case} ({kind}): bytes loader {mem} but file loader {disk}")
            counts.setdefault(kind, {"ok": 0, "rejected": 0, "BUG": 0})[mem[0]] += 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - t0
    assert not bugs, "\n".join(bugs[:20])
    total = sum(sum(c.values()) for c in counts.values())
    assert total == n_cases >= 1000
    rejected = sum(c["rejected"] for c in counts.values())
    loaded = sum(c["ok"] for c in counts.values())
    # the mutations must actually reach both outcomes, and every kind must have been tried
    assert rejected > 3000 and loaded > 50, counts
    assert len(counts) == 12, counts
    assert elapsed < 20, f"fuzzing took {elapsed:.1f}s"


# ------------------------------------------------------------------ where a save writes


def test_save_writes_through_a_symlink(tmp_path):
    target = tmp_path / "real.safetensors"
    bp.save({"w": bp.zeros(2)}, target)
    link = tmp_path / "link.safetensors"
    os.symlink(target.name, link)  # a relative link, as people make them
    bp.save({"w": bp.ones(3)}, link)
    assert link.is_symlink() and os.readlink(link) == target.name
    assert bp.load(target)["w"].tolist() == [1.0, 1.0, 1.0]
    # a dangling link gets its target created
    dangling = tmp_path / "dangling.safetensors"
    os.symlink("made.safetensors", dangling)
    bp.save({"w": bp.ones(1)}, dangling)
    assert dangling.is_symlink() and (tmp_path / "made.safetensors").is_file()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_save_refuses_a_fifo_and_a_directory(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        bp.save({"w": bp.ones(2)}, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left as it was
    with pytest.raises(OSError, match="directory"):
        bp.save({"w": bp.ones(2)}, tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_save_cleans_up_temporaries_of_killed_saves(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    # what a save killed mid-write leaves: a temporary named for a process that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ckpt.safetensors.{int(dead.stdout)}.0.tmp"
    stale.write_bytes(b"x" * 4096)
    # and one of a live process (this one's parent stands in), which must be kept
    live = tmp_path / f".ckpt.safetensors.{os.getppid()}.7.tmp"
    live.write_bytes(b"y")
    bp.save({"w": bp.ones(2)}, path)
    assert not stale.exists() and live.exists()
    assert bp.load(path)["w"].tolist() == [1.0, 1.0]


def test_a_killed_save_leaves_the_old_checkpoint_intact(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    bp.save({"w": bp.ones(4)}, path)
    # a child that starts a big save and is killed mid-way (SIGKILL: no cleanup of its own)
    code = (
        "import backprop_rs as bp, sys\n"
        f"bp.save({{'w': bp.zeros(60_000_000)}}, {str(path)!r})\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while time.time() < deadline and not list(tmp_path.glob(".ckpt.safetensors.*.tmp")):
        time.sleep(0.01)
    child.kill()
    child.wait()
    assert bp.load(path)["w"].tolist() == [1.0] * 4
    bp.save({"w": bp.ones(1)}, path)  # the next save sweeps up after it
    assert not list(tmp_path.glob(".ckpt.safetensors.*.tmp"))
