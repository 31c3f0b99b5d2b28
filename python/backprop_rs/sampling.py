"""Random sampling from given probabilities: ``bernoulli`` and ``multinomial`` (PyTorch's
semantics), composites of the engine's ops. The uniform draws come from ``generator`` when one
is given (``bp.Generator``), else from the global generator that ``bp.manual_seed`` seeds, so a
seeded program repeats itself.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._core import Tensor
from .autograd import no_grad
from .generator import Generator, _resolve

__all__ = ["bernoulli", "multinomial"]


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
