"""Variable-length sequences as ``torch.nn.utils.rnn``: ``pad_sequence`` / ``unpad_sequence``,
``PackedSequence``, ``pack_padded_sequence``, ``pad_packed_sequence``, ``pack_sequence``,
``unpack_sequence``. The recurrent layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) accept a
``PackedSequence`` and return one."""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Union

import numpy as np

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


class PackedSequence(NamedTuple):
    """Time-major packed data: ``data`` holds, step by step, the rows of the sequences still alive
    at that step (``batch_sizes[t]`` of them, an int64 CPU tensor); the batch is sorted by
    decreasing length (``sorted_indices`` maps sorted -> original, ``unsorted_indices`` back;
    both ``None`` when the input was already sorted)."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Optional[Tensor] = None
    unsorted_indices: Optional[Tensor] = None

    def to(self, *args, **kwargs) -> "PackedSequence":
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        dev = data.device
        return PackedSequence(data, self.batch_sizes,
                              None if self.sorted_indices is None else self.sorted_indices.to(dev),
                              None if self.unsorted_indices is None else self.unsorted_indices.to(dev))

    def cpu(self) -> "PackedSequence":
        return self.to("cpu")

    def double(self) -> "PackedSequence":
        return self._replace(data=self.data.double())

    def float(self) -> "PackedSequence":
        return self._replace(data=self.data.float())

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def invert_permutation(permutation: Optional[Tensor]) -> Optional[Tensor]:
    if permutation is None:
        return None
    p = np.asarray(permutation.tolist(), dtype=np.int64)
    out = np.empty_like(p)
    out[p] = np.arange(p.size, dtype=np.int64)
    return _core.tensor(out, dtype=_core.int64, device=permutation.device)


def _lengths_list(lengths) -> List[int]:
    if isinstance(lengths, Tensor):
        return [int(v) for v in lengths.reshape(-1).tolist()]
    return [int(v) for v in lengths]


def pack_padded_sequence(input: Tensor, lengths: Union[Tensor, Sequence[int]], batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Packs a padded ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``) batch of sequences of the
    given ``lengths``. With ``enforce_sorted`` the lengths must be decreasing; otherwise the batch
    is sorted here and the permutation kept in the result."""
    lens = _lengths_list(lengths)
    bdim = 0 if batch_first else 1
    if len(lens) != input.shape[bdim]:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lens)} (batch_size="
                           f"{input.shape[bdim]})")
    if any(n <= 0 for n in lens):
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if enforce_sorted:
        if any(a < b for a, b in zip(lens, lens[1:])):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                               "sidestep this requirement if you do not need ONNX exportability.")
        sorted_indices = None
    else:
        order = np.argsort(-np.asarray(lens, dtype=np.int64), kind="stable")
        sorted_indices = _core.tensor(order.astype(np.int64), dtype=_core.int64, device=input.device)
        input = input.index_select(bdim, sorted_indices)
        lens = [lens[i] for i in order]
    if batch_first:
        input = input.transpose(0, 1)
    if lens[0] > input.shape[0]:
        raise RuntimeError(f"lengths reach {lens[0]} but the input has only {input.shape[0]} time steps")
    batch_sizes = [sum(1 for n in lens if n > t) for t in range(lens[0])]
    rows = [input[t].narrow(0, 0, b) for t, b in enumerate(batch_sizes)]
    data = rows[0] if len(rows) == 1 else _core.cat(rows, 0)
    return PackedSequence(data, _core.tensor(batch_sizes, dtype=_core.int64), sorted_indices,
                          invert_permutation(sorted_indices))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: Optional[int] = None):
    """The inverse of :func:`pack_padded_sequence`: ``(padded, lengths)`` in the original batch
    order, padded to ``total_length`` steps when given."""
    data, sizes = sequence.data, [int(b) for b in sequence.batch_sizes.tolist()]
    T, B = len(sizes), sizes[0]
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence ({T}), but "
                             f"got total_length={total_length}")
    trailing = tuple(data.shape[1:])
    steps, off = [], 0
    for b in sizes:
        row = data.narrow(0, off, b)
        if b < B:
            row = _core.cat([row, _core.full((B - b, *trailing), padding_value, dtype=data.dtype,
                                             device=data.device)], 0)
        steps.append(row)
        off += b
    if total_length is not None and total_length > T:
        steps += [_core.full((B, *trailing), padding_value, dtype=data.dtype, device=data.device)] * (total_length - T)
    padded = _core.stack(steps, 0)
    lengths = np.array([sum(1 for b in sizes if b > i) for i in range(B)], dtype=np.int64)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(1, sequence.unsorted_indices)
        lengths = lengths[np.asarray(sequence.unsorted_indices.tolist(), dtype=np.int64)]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, _core.tensor(lengths, dtype=_core.int64)


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Packs a list of ``(L_i, *)`` tensors (decreasing lengths unless ``enforce_sorted=False``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> List[Tensor]:
    """The list of ``(L_i, *)`` tensors a :class:`PackedSequence` holds, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


__all__ = ["pad_sequence", "unpad_sequence", "PackedSequence", "pack_padded_sequence", "pad_packed_sequence",
           "pack_sequence", "unpack_sequence", "invert_permutation"]
