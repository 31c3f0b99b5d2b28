"""Random sampling from given probabilities: ``bernoulli`` and ``multinomial`` (PyTorch's
semantics), composites of the engine's ops. The uniform draws come from ``generator`` when one
is given (``bp.Generator``), else from the global generator that ``bp.manual_seed`` seeds, so a
seeded program repeats itself.
"""

from __future__ import annotations

import operator
from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._core import Tensor
from .autograd import no_grad
from .generator import Generator, _resolve

__all__ = ["bernoulli", "multinomial", "normal", "randint_like"]


def _uniform(shape, like: Tensor, generator: Optional[Generator]) -> Tensor:
    """Uniform [0, 1) samples of ``shape`` in ``like``'s dtype (the default float dtype for an
    integer ``like``) on ``like``'s device."""
    dtype = like.dtype if like.is_floating_point() else _core._get_default_dtype()
    if generator is None:
        u = _core.rand(*shape, dtype=dtype)
    else:
        u = _core.tensor(_resolve(generator).random(tuple(shape)), dtype=dtype)
    return u.to(like.device) if str(like.device) != "cpu" else u


def bernoulli(input: Tensor, p: Optional[float] = None, *, generator: Optional[Generator] = None) -> Tensor:
    """0/1 draws: element ``i`` is 1 with probability ``input[i]`` (or ``p`` for every element
    when given), in ``input``'s dtype, as ``torch.bernoulli``. Probabilities must lie in [0, 1]."""
    if not isinstance(input, Tensor):
        raise TypeError(f"bernoulli(): argument 'input' must be Tensor, not {type(input).__name__}")
    with no_grad():
        probs = input.detach() if p is None else _core.full(tuple(input.shape), float(p), dtype=_core.float64)
        if probs.numel() and not bool(((probs >= 0) & (probs <= 1)).all()):
            raise RuntimeError("bernoulli: the probabilities must be in [0, 1]")
        u = _uniform(tuple(input.shape), input, generator)
        out = (u.to(_core.float64) < probs.to(_core.float64)).to(input.dtype)
    return out.to(input.device) if str(out.device) != str(input.device) else out


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator: Optional[Generator] = None) -> Tensor:
    """Category indices (int64) drawn from the rows of ``input`` (1-d or 2-d, non-negative weights
    that need not sum to 1), as ``torch.multinomial``: with ``replacement`` each draw inverts the
    row's cumulative distribution at a uniform sample; without, the ``num_samples`` categories
    with the smallest exponential race times ``-log(u) / w`` win, which draws them one by one in
    proportion to the remaining weights (a zero weight is never drawn)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got {input.ndim}")
    if not input.is_floating_point():
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got {input.dtype}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample n_sample <= 0 samples (got {num_samples!r})")
    num_samples = int(num_samples)
    with no_grad():
        w = input.detach().to(_core.float64)
        rows = w if w.ndim == 2 else w.reshape(1, -1)
        n_cat = rows.shape[1]
        if n_cat == 0:
            raise RuntimeError("multinomial: the number of categories must be positive")
        if not bool(rows.isfinite().all()) or bool((rows < 0).any()):
            raise RuntimeError("multinomial: probability tensor contains either inf, nan or element < 0")
        total = rows.sum(1, keepdim=True)
        if bool((total <= 0).any()):
            raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and num_samples > n_cat:
            raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        u = _uniform((rows.shape[0], num_samples if replacement else n_cat), w, generator).to(_core.float64)
        if replacement:
            cdf = rows.cumsum(1) / total
            idx = _core.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
            out = idx.clamp(max=n_cat - 1)  # u * total can round past the last edge
        else:
            if bool(((rows > 0).sum(1) < num_samples).any()):
                raise RuntimeError("multinomial: invalid multinomial distribution (with replacement=False, "
                                   "not enough non-negative category to sample)")
            race = (-(1.0 - u).log()) / rows  # 1 - u in (0, 1]: a finite time for a positive weight
            out = race.topk(num_samples, 1, largest=False).indices
        out = out if input.ndim == 2 else out.reshape(-1)
    return out.to(input.device) if str(out.device) != str(input.device) else out


# ------------------------------------------------------------------ in-place draws and torch.normal


def _draw_uniform(self: Tensor, generator: Optional[Generator]) -> Tensor:
    """Uniform [0, 1) draws of ``self``'s shape in float64 on the CPU (so the transforms below keep
    their precision), from ``generator`` or the global stream."""
    if generator is None:
        return _core.rand(*self.shape, dtype=_core.float64)
    return _core.tensor(_resolve(generator).random(tuple(self.shape)), dtype=_core.float64)


def _fill(self: Tensor, values: Tensor) -> Tensor:
    with no_grad():
        return self.copy_(values.to(device=self.device, dtype=self.dtype))


def exponential_(self: Tensor, lambd: float = 1.0, *, generator: Optional[Generator] = None) -> Tensor:
    """``Tensor.exponential_``: exponential draws of rate ``lambd`` (``-log(1 - U) / lambd``)."""
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambd > 0.0, but found lambd={lambd}")
    return _fill(self, -(1.0 - _draw_uniform(self, generator)).log() / lambd)


def geometric_(self: Tensor, p: float, *, generator: Optional[Generator] = None) -> Tensor:
    """``Tensor.geometric_``: the number of Bernoulli(``p``) trials up to the first success (>= 1)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    u = _draw_uniform(self, generator)
    return _fill(self, ((1.0 - u).log() / np.log1p(-p)).ceil().clamp(min=1.0))


def log_normal_(self: Tensor, mean: float = 1.0, std: float = 2.0, *, generator: Optional[Generator] = None) -> Tensor:
    """``Tensor.log_normal_``: ``exp`` of normal(``mean``, ``std``) draws."""
    if std <= 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    z = _core.randn(*self.shape, dtype=_core.float64) if generator is None else \
        _core.tensor(_resolve(generator).standard_normal(tuple(self.shape)))
    return _fill(self, (z * std + mean).exp())


def cauchy_(self: Tensor, median: float = 0.0, sigma: float = 1.0, *, generator: Optional[Generator] = None) -> Tensor:
    """``Tensor.cauchy_``: ``median + sigma * tan(pi * (U - 1/2))``."""
    u = _draw_uniform(self, generator)
    return _fill(self, ((u - 0.5) * np.pi).tan() * sigma + median)


def random_(self: Tensor, from_: Any = 0, to: Any = None, *, generator: Optional[Generator] = None) -> Tensor:
    """``Tensor.random_([from,] to)``: integers uniform in ``[from, to)``; with one argument,
    ``[0, from)``; with none, ``[0, 2**mantissa]`` for floats (PyTorch's range) or the dtype's
    non-negative range for integers."""
    if to is None and from_ != 0:
        from_, to = 0, from_
    if to is None:
        if self.is_floating_point():
            digits = {"float16": 11, "bfloat16": 8, "float32": 24}.get(str(self.dtype).split(".")[-1], 53)
            to = 2 ** digits + 1
        elif self.dtype == _core.bool_:
            to = 2
        else:
            to = {"uint8": 2 ** 8, "int8": 2 ** 7, "int16": 2 ** 15, "int32": 2 ** 31}.get(
                str(self.dtype).split(".")[-1], 2 ** 63)
    if to <= from_:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={from_} >= to={to}")
    rng = _resolve(generator) if generator is not None else np.random.default_rng(
        int(_core.randint(0, 2 ** 62, (1,)).item()))
    vals = rng.integers(int(from_), int(to), size=tuple(self.shape), dtype=np.int64)
    with no_grad():
        return self.copy_(_core.tensor(vals).to(device=self.device, dtype=self.dtype))


def normal(mean: Any, std: Any = 1.0, size: Any = None, *, generator: Optional[Generator] = None,
           out: Optional[Tensor] = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``torch.normal``: draws with the given (broadcast) ``mean`` and ``std`` (tensors or numbers);
    with two numbers, ``size`` gives the shape. ``mean + std * z``, so a tensor ``mean`` or
    ``std`` that requires grad gets the reparameterised gradient."""
    if not isinstance(mean, Tensor) and not isinstance(std, Tensor):
        if size is None:
            raise TypeError("normal(): with a float mean and std, size is required")
        shape = tuple(size)
        z = _core.randn(*shape, dtype=dtype, device=device) if generator is None else \
            _core.tensor(_resolve(generator).standard_normal(shape), dtype=dtype or _core._get_default_dtype(),
                         device=device)
        r = z * float(std) + float(mean)
        if requires_grad:
            r = r.detach().requires_grad_()
    else:
        like = mean if isinstance(mean, Tensor) else std
        if isinstance(std, Tensor) and bool((std < 0).any().item()):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        shape = tuple((mean if isinstance(mean, Tensor) else _core.zeros(())).shape)
        if isinstance(std, Tensor):
            shape = tuple(np.broadcast_shapes(shape, tuple(std.shape)))
        dt = like.dtype if like.is_floating_point() else _core._get_default_dtype()
        z = _core.randn(*shape, dtype=dt) if generator is None else \
            _core.tensor(_resolve(generator).standard_normal(shape), dtype=dt)
        r = z.to(like.device) * std + mean
    if out is not None:
        out.copy_(r)
        return out
    return r


def randint_like(input: Tensor, low: int = 0, high: Optional[int] = None, *, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """``torch.randint_like(input, [low,] high)``: integers of ``input``'s shape in ``[low, high)``."""
    if high is None:
        low, high = 0, low
    r = _core.randint(low, high, tuple(input.shape)).to(dtype=dtype or input.dtype, device=device or input.device)
    return r.requires_grad_() if requires_grad else r


def _size_args(size: Tuple[Any, ...], kw_size: Any) -> Tuple[int, ...]:
    if kw_size is not None:
        if size:
            raise TypeError("pass the size either positionally or as size=, not both")
        size = (kw_size,)
    if len(size) == 1 and hasattr(size[0], "__len__"):
        size = tuple(size[0])
    dims = []
    for d in size:
        try:
            dims.append(operator.index(d))  # ints, NumPy ints and one-element integer tensors, as PyTorch
        except TypeError:
            raise TypeError(f"size must be a tuple of ints, but got {type(d).__name__} ({d!r})") from None
    return tuple(dims)


def _finish(t: Tensor, out: Optional[Tensor], requires_grad: bool) -> Tensor:
    if requires_grad:
        t = t.requires_grad_()
    if out is not None:
        from .autograd import no_grad

        if tuple(out.shape) != tuple(t.shape):
            raise RuntimeError(f"out= has shape {tuple(out.shape)} but the result has shape {tuple(t.shape)} "
                               "(backprop_rs does not resize out=)")
        with no_grad():
            out.copy_(t)
        return out
    return t


def _host_draw(values: np.ndarray, dtype: Any, device: Any, default: Any) -> Tensor:
    return _core.tensor(values, dtype=dtype or default).to(device) if device is not None else \
        _core.tensor(values, dtype=dtype or default)


def rand(*size: Any, generator: Optional[Generator] = None, out: Optional[Tensor] = None, dtype: Any = None,
         layout: Any = None, device: Any = None, requires_grad: bool = False, pin_memory: bool = False,
         **kw: Any) -> Tensor:
    """``torch.rand``: uniform draws in ``[0, 1)``; from ``generator`` when one is given."""
    shape = _size_args(size, kw.pop("size", None))
    _no_extra("rand", kw)
    if generator is None:
        t = _core.rand(*shape, dtype=dtype, device=device)
    else:
        t = _host_draw(_resolve(generator).random(shape), dtype, device, _core._get_default_dtype())
    return _finish(t, out, requires_grad)


def randn(*size: Any, generator: Optional[Generator] = None, out: Optional[Tensor] = None, dtype: Any = None,
          layout: Any = None, device: Any = None, requires_grad: bool = False, pin_memory: bool = False,
          **kw: Any) -> Tensor:
    """``torch.randn``: standard normal draws; from ``generator`` when one is given."""
    shape = _size_args(size, kw.pop("size", None))
    _no_extra("randn", kw)
    if generator is None:
        t = _core.randn(*shape, dtype=dtype, device=device)
    else:
        t = _host_draw(_resolve(generator).standard_normal(shape), dtype, device, _core._get_default_dtype())
    return _finish(t, out, requires_grad)


def randint(*args: Any, size: Any = None, generator: Optional[Generator] = None, out: Optional[Tensor] = None,
            dtype: Any = None, layout: Any = None, device: Any = None, requires_grad: bool = False,
            pin_memory: bool = False, low: Any = None, high: Any = None) -> Tensor:
    """``torch.randint([low=0,] high, size)``: integers in ``[low, high)`` (int64 by default)."""
    pos = list(args)
    if size is None and pos and hasattr(pos[-1], "__len__"):
        size = pos.pop()
    if high is None and pos:
        high = pos.pop()
    if low is None:
        low = pos.pop() if pos else 0
    if pos or high is None or size is None:
        raise TypeError("randint() expects (high, size) or (low, high, size)")
    shape = tuple(int(d) for d in size)
    if generator is None:
        t = _core.randint(int(low), int(high), shape, dtype=dtype, device=device)
    else:
        if int(high) <= int(low):
            raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
        t = _host_draw(_resolve(generator).integers(int(low), int(high), size=shape, dtype=np.int64), dtype, device,
                       _core.int64)
    return _finish(t, out, requires_grad)


def randperm(n: int, *, generator: Optional[Generator] = None, out: Optional[Tensor] = None, dtype: Any = None,
             layout: Any = None, device: Any = None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """``torch.randperm(n)``: a random permutation of ``0..n-1`` (int64 by default)."""
    if generator is None:
        t = _core.randperm(int(n), dtype=dtype, device=device)
    else:
        if int(n) < 0:
            raise RuntimeError(f"randperm: n must be non-negative, got {n}")
        t = _host_draw(_resolve(generator).permutation(int(n)).astype(np.int64), dtype, device, _core.int64)
    return _finish(t, out, requires_grad)


def rand_like(input: Tensor, *, generator: Optional[Generator] = None, dtype: Any = None, layout: Any = None,
              device: Any = None, requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """``torch.rand_like``: uniform draws of ``input``'s shape, dtype and device (and layout:
    ``memory_format=preserve_format``, the default, keeps a channels-last input's)."""
    out = rand(*tuple(input.shape), generator=generator, dtype=dtype or input.dtype, device=device or input.device)
    return _laid_out_like(input, out, memory_format, requires_grad)


def randn_like(input: Tensor, *, generator: Optional[Generator] = None, dtype: Any = None, layout: Any = None,
               device: Any = None, requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """``torch.randn_like``: standard normal draws of ``input``'s shape, dtype and device (and
    layout, as :func:`rand_like`)."""
    out = randn(*tuple(input.shape), generator=generator, dtype=dtype or input.dtype, device=device or input.device)
    return _laid_out_like(input, out, memory_format, requires_grad)


def _laid_out_like(input: Tensor, out: Tensor, memory_format: Any, requires_grad: bool) -> Tensor:
    # preserve_format (None too) resolves to the input's layout, as the core *_like factories do
    fmt = memory_format
    if fmt is None or fmt == _core.preserve_format:
        fmt = _core.contiguous_format
        if not input.is_contiguous():
            for f in (_core.channels_last, _core.channels_last_3d):
                if input.is_contiguous(memory_format=f):
                    fmt = f
    if fmt != _core.contiguous_format:
        out = out.contiguous(memory_format=fmt)
    return out.requires_grad_() if requires_grad else out


def _no_extra(name: str, kw: Any) -> None:
    if kw:
        raise TypeError(f"{name}() got an unexpected keyword argument '{next(iter(kw))}'")
