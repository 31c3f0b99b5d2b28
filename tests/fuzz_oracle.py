"""The oracle, profiles and watchdog of the property-based suite (tests/test_properties.py).

Every fuzzed call goes through ``Oracle.check(desc, call, ref)``:

* ``call()`` runs the engine; ``ref()`` says what PyTorch's documented semantics give for the
  same input, computed with NumPy. ``ref`` returns the expected value, raises :class:`Invalid`
  (PyTorch raises for this input), or returns :class:`Either` (PyTorch's behaviour is
  version-dependent or undocumented here, or it raises where NumPy returns a value: a raise is
  fine, a returned value must match).
* The outcome is one of: ``ok``; ``panic`` (a ``BaseException`` that is not an ``Exception``,
  i.e. pyo3's PanicException, always a failure); ``wrong-value``; ``raises-where-pytorch-works``
  (an ordinary exception for a valid input); ``accepts-invalid`` (a value where PyTorch raises).
  An abort or a hang kills the process: the watchdog (faulthandler, a C thread, so it fires even
  while the engine holds the GIL) dumps the stack and exits, and with BACKPROP_FUZZ_TRACE set the
  last call's reproducer is in that file (tests/fuzz_long.py reads it).

In the default mode a finding is an AssertionError (Hypothesis shrinks it). With
BACKPROP_FUZZ_COLLECT=<file> findings are appended to that JSON-lines file instead, so one long
run lists every distinct defect rather than stopping at the first.
"""

from __future__ import annotations

import atexit
import faulthandler
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np
from hypothesis import HealthCheck, settings

import backprop_rs as bp

# ---------------------------------------------------------------------------- profiles

PROFILE = os.environ.get("BACKPROP_FUZZ_PROFILE", "ci")
LONG = PROFILE == "long"
# The long profile's examples per family (>= 10,000 is the documented figure; smaller values are
# for trying a change quickly).
LONG_EXAMPLES = int(os.environ.get("BACKPROP_FUZZ_EXAMPLES", "10000"))

_common = dict(
    deadline=None,
    database=None,  # nothing written next to the tests; reproducers are printed instead
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
settings.register_profile("ci", max_examples=20, derandomize=True, **_common)
settings.register_profile("long", max_examples=LONG_EXAMPLES, derandomize=False, **_common)
settings.load_profile("long" if LONG else "ci")


def budget(ci: int, long_factor: float = 1.0) -> settings:
    """Per-test example count: ``ci`` in the CI profile; ``LONG_EXAMPLES * long_factor`` in the
    long one (a parametrised family divides the total between its cases with long_factor)."""
    if LONG:
        return settings(max_examples=max(1, math.ceil(LONG_EXAMPLES * long_factor)))
    return settings(max_examples=ci)


# ---------------------------------------------------------------------------- watchdog

CALL_TIMEOUT_S = float(os.environ.get("BACKPROP_FUZZ_TIMEOUT", "60"))
_TRACE_PATH = os.environ.get("BACKPROP_FUZZ_TRACE")
_trace_fd: Optional[int] = os.open(_TRACE_PATH, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if _TRACE_PATH else None


MEM_HEADROOM = int(os.environ.get("BACKPROP_FUZZ_MEM_HEADROOM", str(2 << 30)))


class memory_cap:
    """Caps the address space while a call runs (current size + MEM_HEADROOM), so a huge size
    fails fast as MemoryError, or as an abort tests/fuzz_long.py reports, instead of taking the
    machine's memory. The soft limit goes back afterwards (raising it to the hard limit is always
    allowed)."""

    def __enter__(self):
        self.old = None
        try:
            import resource

            self.resource = resource
            old = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as f:
                vm = int(f.read().split()[0]) * resource.getpagesize()
            cap = vm + MEM_HEADROOM
            if old[0] == resource.RLIM_INFINITY or cap < old[0]:
                resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
                self.old = old
        except (ImportError, OSError, ValueError):
            pass
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            self.resource.setrlimit(self.resource.RLIMIT_AS, self.old)
        return False


class watchdog:
    """Arms a hard timeout around one engine call. faulthandler's timer runs in a C thread, so it
    fires even while Rust code holds the GIL; it dumps every thread's stack and exits the
    process (a hang is a failure, never a stuck CI job). With BACKPROP_FUZZ_TRACE the call's
    reproducer is written first, so a hang or an abort can be reported with it. The address
    space is capped meanwhile (memory_cap)."""

    def __init__(self, desc: str):
        self.desc = desc
        self.cap = memory_cap()

    def __enter__(self):
        if _trace_fd is not None:
            data = self.desc.encode("utf-8", "backslashreplace")
            os.ftruncate(_trace_fd, 0)
            os.pwrite(_trace_fd, data, 0)
        self.cap.__enter__()
        faulthandler.dump_traceback_later(CALL_TIMEOUT_S, exit=True)
        return self

    def __exit__(self, *exc):
        faulthandler.cancel_dump_traceback_later()
        self.cap.__exit__(*exc)
        return False


# ---------------------------------------------------------------------------- references


class Invalid(Exception):
    """Raised by a reference: PyTorch raises for this input, so the engine must raise too."""


class Unspecified(Exception):
    """Raised by a reference: PyTorch's behaviour for this input is undocumented or
    version-dependent (same as returning ``Either(None)``)."""


@dataclass
class Either:
    """PyTorch may raise here (or the behaviour is undocumented / version-dependent): the engine
    may raise an ordinary exception; if it returns, the value must match ``value`` (None: any
    value is accepted)."""

    value: Any
    why: str = ""


# ---------------------------------------------------------------------------- comparison

NP_OF = {bp.float32: np.float32, bp.float64: np.float64, bp.int64: np.int64, bp.bool: np.bool_}
BP_OF = {np.dtype(v): k for k, v in NP_OF.items()}


@dataclass
class Tol:
    atol: float = 0.0
    rtol: float = 0.0
    signed_zero: bool = False  # -0.0 vs 0.0 must match (ops that only move data)
    check_dtype: bool = True


EXACT = Tol(signed_zero=True)


def default_tol(dtype) -> Tol:
    if dtype == np.float32:
        return Tol(atol=1e-30, rtol=2e-6)
    if dtype == np.float64:
        return Tol(atol=1e-300, rtol=1e-12)
    return EXACT


class Mismatch(AssertionError):
    pass


@dataclass
class ShapeOnly:
    """What a tensor that must not be read is reduced to: only its shape and dtype compare
    (a huge result, or an empty one whose .numpy() would crash: D22)."""

    shape: tuple
    dtype: np.dtype


def numpy_would_crash(t: bp.Tensor) -> bool:
    """D22: .numpy() of an empty tensor whose other dims multiply past ~2**62 bytes segfaults."""
    if t.numel():
        return False
    return math.prod(d for d in t.shape if d) * t.element_size() >= 2**62


def to_numpy(x: Any) -> Any:
    """A copy, so later in-place ops on the tensor cannot change what was compared."""
    if isinstance(x, bp.Tensor):
        if numpy_would_crash(x):
            KNOWN_HITS["D22"] = KNOWN_HITS.get("D22", 0) + 1
            return ShapeOnly(tuple(x.shape), NP_OF[x.dtype])
        return np.array(x.detach().numpy(), copy=True)
    return x


def assert_same(got: Any, want: Any, tol: Optional[Tol] = None, where: str = "result") -> None:
    """``got`` (engine output, already converted with to_numpy) against ``want``."""
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            raise Mismatch(f"{where}: expected a sequence of {len(want)}, got {type(got).__name__} {_short(got)}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, tol, f"{where}[{i}]")
        return
    if isinstance(want, (bool, int, float)) and not isinstance(want, np.generic):
        if type(got) is not type(want) and not (isinstance(want, float) and isinstance(got, float)):
            raise Mismatch(f"{where}: expected Python {type(want).__name__} {want!r}, got {type(got).__name__} {got!r}")
        if isinstance(want, float) and math.isnan(want):
            if not math.isnan(got):
                raise Mismatch(f"{where}: expected nan, got {got!r}")
        elif got != want:
            raise Mismatch(f"{where}: expected {want!r}, got {got!r}")
        return
    want = np.asarray(want)
    if isinstance(got, ShapeOnly):  # empty (or not to be read): shape and dtype are all there is
        if got.shape != want.shape or (tol is None or tol.check_dtype) and got.dtype != want.dtype:
            raise Mismatch(f"{where}: shape/dtype {got.shape}/{got.dtype}, expected {want.shape}/{want.dtype}")
        if want.size:
            raise Mismatch(f"{where}: an unreadable result where {want.size} values were due")
        return
    if not isinstance(got, np.ndarray):
        raise Mismatch(f"{where}: expected an array of shape {want.shape}, got {type(got).__name__} {_short(got)}")
    tol = tol or default_tol(want.dtype)
    if got.shape != want.shape:
        raise Mismatch(f"{where}: shape {got.shape}, expected {want.shape}")
    if tol.check_dtype and got.dtype != want.dtype:
        raise Mismatch(f"{where}: dtype {got.dtype}, expected {want.dtype}")
    if want.dtype.kind in "biu" or got.dtype.kind in "biu":
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[:3].tolist()
            raise Mismatch(f"{where}: values differ at {bad}: got {_short(got)}, expected {_short(want)}")
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    gn, wn = np.isnan(g), np.isnan(w)
    bad = gn != wn
    fin = ~(gn | wn)
    with np.errstate(all="ignore"):
        inf_w = np.isinf(w) & fin
        bad |= inf_w & (g != w)
        inf_g = np.isinf(g) & fin & ~inf_w
        bad |= inf_g & (np.abs(w) < np.finfo(want.dtype).max * (1 - tol.rtol))  # inf where a finite value was due
        both = fin & ~inf_w & ~inf_g
        bad |= both & (np.abs(g - w) > tol.atol + tol.rtol * np.abs(w))
        if tol.signed_zero:
            bad |= both & (g == 0) & (w == 0) & (np.signbit(g) != np.signbit(w))
    if bad.any():
        idx = np.argwhere(bad)[:3]
        pairs = [f"{tuple(i)}: got {g[tuple(i)]!r} expected {w[tuple(i)]!r}" for i in idx]
        raise Mismatch(f"{where}: {int(bad.sum())} of {bad.size} values differ ({'; '.join(pairs)})")


def _short(x: Any, n: int = 160) -> str:
    s = repr(x).replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."


# ---------------------------------------------------------------------------- the oracle

_COLLECT = os.environ.get("BACKPROP_FUZZ_COLLECT")
_NO_EXCLUDE = os.environ.get("BACKPROP_FUZZ_NO_EXCLUDE") == "1"
_STATS = os.environ.get("BACKPROP_FUZZ_STATS")
CALLS: Dict[str, int] = {}
EXAMPLES: Dict[str, int] = {}
KNOWN_HITS: Dict[str, int] = {}  # findings excused because they are a known defect


def is_panic(e: BaseException) -> bool:
    return not isinstance(e, Exception) and not isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit))


class Oracle:
    """One per family; counts its calls and examples for the long profile's figures."""

    def __init__(self, family: str):
        self.family = family
        self._known: Optional[str] = None
        CALLS.setdefault(family, 0)
        EXAMPLES.setdefault(family, 0)

    def example(self) -> None:
        EXAMPLES[self.family] += 1
        if _STATS and EXAMPLES[self.family] % 250 == 0:
            write_stats()  # a crash loses the atexit write; keep the figures current

    def excluded(self, defect: str) -> bool:
        """Whether to step around a known crash (a panic, abort or segfault: those cannot be
        excused after the fact); counted like a known finding. BACKPROP_FUZZ_NO_EXCLUDE=1 runs
        into them instead (tests/fuzz_long.py --no-exclude), to see them still crash."""
        if _NO_EXCLUDE:
            return False
        KNOWN_HITS[defect] = KNOWN_HITS.get(defect, 0) + 1
        return True

    def check(
        self,
        desc: str,
        call: Callable[[], Any],
        ref: Any = None,
        tol: Optional[Tol] = None,
        compare: Optional[Callable[[Any, Any], None]] = None,
        convert: Callable[[Any], Any] = None,
        known: Optional[str] = None,
    ) -> Any:
        """Runs ``call`` (the engine) and judges it against ``ref`` (a callable giving the
        reference, see the module doc; None: any ordinary exception or value is fine, only
        panics, aborts and hangs fail). Returns the engine's raw result, or None if it raised.

        ``known`` names a known defect (test_properties.DEFECTS) whose region this call is in:
        a wrong value or a wrong raise/no-raise is then counted against it instead of failing
        (the defect's strict xfail keeps it visible). A panic is never excused."""
        CALLS[self.family] += 1
        self._known = known
        want: Any = None
        expect_raise = False
        may_raise = ref is None
        if ref is not None:
            try:
                with np.errstate(all="ignore"):
                    want = ref() if callable(ref) else ref
            except Invalid as e:
                expect_raise, want = True, str(e)
            except Unspecified as e:
                want = Either(None, str(e))
            if isinstance(want, Either):
                may_raise, want = True, want.value
        conv = convert or _convert
        try:
            with watchdog(desc):
                raw = call()
                got = conv(raw)
        except BaseException as e:  # noqa: BLE001 - the point is to see what escapes
            if is_panic(e):
                return self._finding("panic", desc, f"{type(e).__module__}.{type(e).__name__}: {e}")
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            if not (expect_raise or may_raise):
                return self._finding("raises-where-pytorch-works", desc, f"{type(e).__name__}: {e}")
            return None
        if expect_raise:
            return self._finding("accepts-invalid", desc, f"returned {_short(got)} where PyTorch raises ({want})")
        if ref is None or want is None:
            return raw
        try:
            (compare or (lambda g, w: assert_same(g, w, tol)))(got, want)
        except Mismatch as e:
            return self._finding("wrong-value", desc, str(e))
        return raw

    def _finding(self, kind: str, desc: str, msg: str) -> None:
        if self._known and kind != "panic":
            KNOWN_HITS[self._known] = KNOWN_HITS.get(self._known, 0) + 1
            return None
        if _COLLECT:
            with open(_COLLECT, "a", encoding="utf-8") as f:
                f.write(json.dumps({"family": self.family, "kind": kind, "call": desc, "msg": msg[:2000]}) + "\n")
            return None
        raise AssertionError(f"[{kind}] {desc}\n    {msg}")


def _convert(x: Any) -> Any:
    if isinstance(x, bp.Tensor):
        return to_numpy(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # values/indices named tuples
        return tuple(_convert(v) for v in x)
    if isinstance(x, (list, tuple)):
        return type(x)(_convert(v) for v in x)
    return x


def write_stats() -> None:
    if _STATS:
        with open(_STATS, "w", encoding="utf-8") as f:
            json.dump({"calls": CALLS, "examples": EXAMPLES, "known": KNOWN_HITS}, f)


if _STATS:
    atexit.register(write_stats)


def note(msg: str) -> None:
    print(msg, file=sys.stderr)
