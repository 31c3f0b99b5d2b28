"""Tensor printing follows PyTorch's documented algorithm (``torch.set_printoptions`` and
``torch._tensor_str``): one formatter per tensor chosen from its nonzero finite values (integer,
fixed or scientific mode, a common width), rows wrapped at ``linewidth``, tensors with more than
``threshold`` elements summarised to ``edgeitems`` per end of each dim, suffixes wrapped onto a new
line when they would overflow.

The reference below is written from that description in plain Python over NumPy arrays,
independently of the Rust formatter in ``rust/backprop/src/display.rs``; random tensors of every
rank and option setting must print identically. The two examples from PyTorch's own
``set_printoptions`` documentation are checked too (PyTorch's real output puts two spaces before
the ``...`` of a summarised row, where the hand-typed docstring shows one).
"""

import math

import numpy as np
import pytest

import backprop_rs as bp

# ---------------------------------------------------------------- the independent reference


def _summarized(a, edge):
    """The elements a summarised print shows: edge items from each end of every dim."""
    if a.ndim == 0:
        return a
    if a.shape[0] > 2 * edge:
        a = np.concatenate([a[:edge], a[-edge:]])
    return np.stack([_summarized(s, edge) for s in a]) if a.ndim > 1 else a


class _Fmt:
    def __init__(self, values, kind, precision, sci_opt):
        self.kind, self.p = kind, precision
        self.int_mode, self.sci, self.width = True, False, 1
        flat = [v.item() for v in values.reshape(-1)]
        if kind != "float":
            self.width = max([len(self._plain(v)) for v in flat] + [1])
        else:
            finite = [abs(v) for v in flat if math.isfinite(v) and v != 0]
            if finite:
                lo, hi = min(finite), max(finite)
                self.int_mode = all(v == math.ceil(v) for v in finite)
                big = hi / lo > 1000.0 or hi > 1e8
                self.sci = big if self.int_mode else (big or lo < 1e-4)
                # the widths come from the signed values, as PyTorch's formatter measures them
                signed = [v for v in flat if math.isfinite(v) and v != 0]
                if self.int_mode and not big:
                    widths = [len(f"{v:.0f}") + 1 for v in signed]
                elif self.sci:
                    widths = [len(f"{v:.{self.p}e}") for v in signed]
                else:
                    widths = [len(f"{v:.{self.p}f}") for v in signed]
                self.width = max(widths)
                # a tensor with no nonzero finite value keeps integer mode even under a forced
                # sci_mode: PyTorch's formatter returns before it reads the option
                if sci_opt is not None:
                    self.sci = sci_opt

    def _plain(self, v):
        return str(v) if self.kind == "bool" else str(int(v))

    def __call__(self, v):
        v = v.item()
        if self.kind != "float":
            s = self._plain(v)
        elif self.sci:
            s = f"{v:.{self.p}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{self.p}f}"
        return " " * (self.width - len(s)) + s


def _body(a, indent, summarize, fmt, edge, linewidth):
    if a.ndim == 0:
        return fmt(a)
    if a.ndim == 1:
        items = [fmt(v) for v in a]
        if summarize and a.shape[0] > 2 * edge:
            items = items[:edge] + [" ..."] + items[-edge:]
        per_line = max(1, (linewidth - indent) // (fmt.width + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    if summarize and a.shape[0] > 2 * edge:
        parts = ([_body(a[i], indent + 1, summarize, fmt, edge, linewidth) for i in range(edge)] + ["..."]
                 + [_body(a[i], indent + 1, summarize, fmt, edge, linewidth)
                    for i in range(a.shape[0] - edge, a.shape[0])])
    else:
        parts = [_body(s, indent + 1, summarize, fmt, edge, linewidth) for s in a]
    sep = "," + "\n" * (a.ndim - 1) + " " * (indent + 1)
    return "[" + sep.join(parts) + "]"


def reference_repr(a, *, precision=4, threshold=1000, edgeitems=3, linewidth=80, sci_mode=None,
                   dtype_suffix=None):
    kind = "bool" if a.dtype == np.bool_ else ("float" if a.dtype.kind == "f" else "int")
    indent = len("tensor(")
    summarize = a.size > threshold
    if a.size == 0:
        body = "[]"
    else:
        shown = _summarized(a, edgeitems) if summarize else a
        fmt = _Fmt(shown, kind, precision, sci_mode)
        body = _body(a, indent, summarize, fmt, edgeitems, linewidth)
    out = "tensor(" + body
    suffixes = []
    if a.size == 0 and a.shape != (0,):
        suffixes.append("size=" + str(tuple(a.shape)))
    if a.size == 0 and not dtype_suffix and a.dtype != np.float32:
        # an empty tensor has no elements to show its dtype, so PyTorch names every non-default one
        dtype_suffix = str(a.dtype)
    if dtype_suffix:
        suffixes.append("dtype=" + dtype_suffix)
    last = len(out) - out.rfind("\n") - 1 if "\n" in out else len(out)
    for s in suffixes:
        if last + len(s) + 2 > linewidth:
            out += ",\n" + " " * indent + s
            last = indent + len(s)
        else:
            out += ", " + s
            last += len(s) + 2
    return out + ")"


# ---------------------------------------------------------------- the comparisons


@pytest.fixture(autouse=True)
def _restore_print_options():
    saved = bp.get_printoptions()
    yield
    bp.set_printoptions(**saved)


def _random_array(rng):
    ndim = int(rng.integers(0, 4))
    shape = tuple(int(rng.integers(0, 7 if ndim > 1 else 40)) for _ in range(ndim))
    kind = rng.choice(["small", "mixed", "ints", "wide", "tiny", "special", "intdtype", "bool"])
    n = int(np.prod(shape)) if shape else 1
    if kind == "small":
        v = rng.standard_normal(n)
    elif kind == "mixed":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)
    elif kind == "ints":
        v = rng.integers(-50, 50, n).astype(np.float64)
    elif kind == "wide":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 10, n)
    elif kind == "tiny":
        v = rng.standard_normal(n) * 1e-6
    elif kind == "special":
        v = rng.standard_normal(n)
        pick = rng.integers(0, 5, n)
        v[pick == 0] = np.nan
        v[pick == 1] = np.inf
        v[pick == 2] = -np.inf
        v[pick == 3] = 0.0
    elif kind == "intdtype":
        return rng.integers(-(10 ** int(rng.integers(1, 9))), 10 ** 6, n).reshape(shape)
    else:
        return (rng.random(n) < 0.5).reshape(shape)
    return v.astype(np.float32).reshape(shape)


def test_random_tensors_print_as_the_reference_at_default_options():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = _random_array(rng)
        assert repr(bp.tensor(a)) == reference_repr(a), a


@pytest.mark.parametrize("opts", [
    dict(precision=2), dict(precision=7), dict(precision=0),
    dict(threshold=10, edgeitems=2), dict(threshold=5, edgeitems=1), dict(linewidth=40),
    dict(linewidth=120, precision=3), dict(sci_mode=True), dict(sci_mode=False),
])
def test_random_tensors_print_as_the_reference_under_options(opts):
    bp.set_printoptions(**opts)
    rng = np.random.default_rng(hash(tuple(sorted(opts.items()))) % 2 ** 32)
    ref = dict(bp.get_printoptions())
    for _ in range(120):
        a = _random_array(rng)
        assert repr(bp.tensor(a)) == reference_repr(a, **ref), (opts, a)


def test_large_tensor_is_summarised_from_its_edges():
    a = np.arange(2000, dtype=np.float32).reshape(40, 50)
    assert repr(bp.tensor(a)) == reference_repr(a)
    assert "..." in repr(bp.tensor(a))


def test_dtype_suffix_wraps_like_pytorch():
    for width in (5, 9, 13):
        a = (np.arange(width, dtype=np.float64) * 1.25).astype(np.float64)
        assert repr(bp.tensor(a, dtype=bp.float64)) == reference_repr(a, dtype_suffix="float64")
    a = np.arange(3, dtype=np.int32)
    assert repr(bp.tensor(a, dtype=bp.int32)) == reference_repr(a, dtype_suffix="int32")


def test_pytorch_documented_examples():
    # torch.set_printoptions's own examples
    bp.set_printoptions(precision=2)
    assert repr(bp.tensor([1.12345])) == "tensor([1.12])"
    bp.set_printoptions(threshold=5)
    assert repr(bp.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    bp.set_printoptions(profile="default")
    assert repr(bp.tensor([1.12345])) == "tensor([1.1235])"
    assert repr(bp.arange(10)) == "tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"


def test_options_round_trip_and_profiles():
    bp.set_printoptions(profile="short")
    assert bp.get_printoptions()["precision"] == 2 and bp.get_printoptions()["edgeitems"] == 2
    bp.set_printoptions(profile="full")
    assert math.isinf(bp.get_printoptions()["threshold"])
    a = np.arange(3000, dtype=np.int64)
    assert "..." not in repr(bp.tensor(a))
    bp.set_printoptions(profile="default")
    assert bp.get_printoptions() == dict(precision=4, threshold=1000, edgeitems=3, linewidth=80, sci_mode=None)


def test_printoptions_context_restores():
    before = repr(bp.tensor([1.12345]))
    with bp.printoptions(precision=1):
        assert repr(bp.tensor([1.12345])) == "tensor([1.1])"
    assert repr(bp.tensor([1.12345])) == before


def test_bad_options_raise_and_change_nothing():
    before = bp.get_printoptions()
    with pytest.raises(ValueError, match="profile"):
        bp.set_printoptions(profile="loud")
    with pytest.raises(ValueError, match="precision"):
        bp.set_printoptions(precision=-1)
    assert bp.get_printoptions() == before


def test_suffixes_for_grad_and_empty():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward0>)"
    assert repr(bp.zeros(0, 3)) == "tensor([], size=(0, 3))"
    assert repr(bp.zeros(0)) == "tensor([])"


def test_format_spec_on_one_element_tensor():
    assert f"{bp.tensor(0.123456):.3f}" == "0.123"
    assert str(bp.tensor(2.5)) == "tensor(2.5000)"
