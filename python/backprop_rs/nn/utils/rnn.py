"""Padding of variable-length sequences: ``pad_sequence`` and ``unpad_sequence``. (Packed
sequences are not provided: backprop_rs has no recurrent layers to consume them.)"""

from __future__ import annotations

from typing import List, Sequence, Union

from ... import _core
from ..._core import Tensor


def pad_sequence(sequences: Union[Tensor, Sequence[Tensor]], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stacks tensors of shape ``(L_i, *)`` into ``(L_max, B, *)`` (``(B, L_max, *)`` with
    ``batch_first``), filling with ``padding_value`` on the ``padding_side`` ('right' or 'left')."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    seqs = list(sequences.unbind(0)) if isinstance(sequences, Tensor) else list(sequences)
    if not seqs:
        raise RuntimeError("received an empty list of sequences")
    trailing = seqs[0].shape[1:]
    for s in seqs:
        if s.shape[1:] != trailing:
            raise RuntimeError(f"The size of tensor a ({list(s.shape[1:])}) must match the size of tensor b "
                               f"({list(trailing)}) at trailing dimensions")
    longest = max(s.shape[0] for s in seqs)
    out = []
    for s in seqs:
        n = longest - s.shape[0]
        if n == 0:
            out.append(s)
            continue
        fill = _core.full((n, *trailing), padding_value, dtype=s.dtype, device=s.device)
        out.append(_core.cat([s, fill] if padding_side == "right" else [fill, s], 0))
    return _core.stack(out, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths: Union[Tensor, Sequence[int]],
                   batch_first: bool = False) -> List[Tensor]:
    """The inverse of right-side :func:`pad_sequence`: the list of ``(L_i, *)`` tensors."""
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    lens = lengths.tolist() if isinstance(lengths, Tensor) else list(lengths)
    return [seq[: int(n)] for seq, n in zip(padded_sequences.unbind(0), lens)]
