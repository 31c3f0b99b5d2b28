"""The bundled tinyshakespeare text (Karpathy's char-rnn ``input.txt``, MIT; the plays are in the
public domain; see datasets/README.md), encoded character by character for language models."""

from __future__ import annotations

import gzip
from typing import List, NamedTuple

import numpy as np

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"  # of the uncompressed text


class CharCorpus(NamedTuple):
    """``train`` and ``val`` are int64 NumPy arrays of character ids (the first 90% of the text
    and the last 10%, as nanoGPT's ``shakespeare_char``); ``chars`` is the sorted vocabulary."""

    train: np.ndarray
    val: np.ndarray
    chars: str

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> List[int]:
        return encode(s, self.chars)

    def decode(self, ids) -> str:
        return decode(ids, self.chars)


def load_text() -> str:
    """The whole text (1,115,394 characters, 65 distinct)."""
    from importlib import resources  # here, not at the top: it costs ~5 ms of every import

    path = resources.files("backprop_rs").joinpath("datasets/tinyshakespeare.txt.gz")
    with path.open("rb") as f, gzip.open(f, "rt", encoding="utf-8", newline="") as g:
        return g.read()


def encode(s: str, chars: str) -> List[int]:
    stoi = {c: i for i, c in enumerate(chars)}
    missing = sorted(set(s) - set(stoi))
    if missing:
        raise ValueError(f"characters {missing!r} are not in the vocabulary of {len(chars)} characters")
    return [stoi[c] for c in s]


def decode(ids, chars: str) -> str:
    return "".join(chars[int(i)] for i in ids)


def load_shakespeare(val_fraction: float = 0.1) -> CharCorpus:
    """The text as character ids, split into the first ``1 - val_fraction`` (train) and the rest (val)."""
    text = load_text()
    chars = "".join(sorted(set(text)))
    lut = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
    lut[[ord(c) for c in chars]] = np.arange(len(chars))
    ids = lut[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
    n = int(len(ids) * (1.0 - val_fraction))
    return CharCorpus(ids[:n], ids[n:], chars)
