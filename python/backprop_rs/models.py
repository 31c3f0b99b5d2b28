"""Ready-made networks used by the command line (and handy in examples)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from . import nn
from ._core import Tensor
from .autograd import no_grad


def mlp(in_features: int, hidden: Sequence[int], classes: int, dropout: float = 0.0) -> nn.Sequential:
    """``Linear -> ReLU (-> Dropout)`` for each hidden width, then a ``Linear`` classifier head."""
    layers = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) adapted to the 8x8 digits: the image is upsampled x2
    (nearest) to 16x16, then conv 5x5 (6 maps, 'same' padding) -> max-pool 2 -> conv 5x5
    (16 maps) -> max-pool 2 -> fc 120 -> fc 84 -> fc 10, with ReLU activations. The 16x16 input
    keeps LeNet's layer structure and ratios (its 32x32 input shrinks to 5x5 maps; ours to 2x2).
    """

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 2 * 2, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes)
        )

    def forward(self, x):
        if x.ndim == 2:  # flat 64-pixel rows from load_digits()
            x = x.reshape(x.shape[0], 1, 8, 8)
        return self.classifier(self.features(x))


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention: one ``c_attn`` projection to q, k, v, causal
    ``scaled_dot_product_attention`` over ``n_head`` heads, ``c_proj`` back."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.reshape(B, T, self.n_head, hs).transpose(1, 2)
        k = k.reshape(B, T, self.n_head, hs).transpose(1, 2)
        v = v.reshape(B, T, self.n_head, hs).transpose(1, 2)
        y = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                                       is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A decoder-only transformer laid out as nanoGPT's ``model.py`` (same parameter names, so its
    checkpoints' tensors map one to one): token (``transformer.wte``) and position
    (``transformer.wpe``) embeddings, ``n_layer`` pre-norm blocks, a final LayerNorm and a head
    (``lm_head``) whose weight *is* the token embedding (weight tying). Initialised N(0, 0.02),
    residual projections N(0, 0.02/sqrt(2 n_layer)), biases zero."""

    def __init__(self, vocab_size: int, block_size: int = 64, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                 dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList([Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd, bias=bias),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            else:
                nn.init.zeros_(p) if name.endswith(".bias") else nn.init.ones_(p)

    def num_parameters(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: Tensor, targets: Optional[Tensor] = None):
        """``idx`` ``(B, T)`` int64 -> logits ``(B, T, vocab)``; with ``targets`` also the mean
        cross-entropy: ``(logits, loss)``."""
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"cannot forward a sequence of length {T}: block size is only {self.block_size}")
        from . import _core

        pos = _core.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits
        loss = nn.functional.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: Optional[int] = None,
                 rng: Optional[np.random.Generator] = None) -> Tensor:
        return generate(self, idx, max_new_tokens, self.block_size, temperature, top_k, rng)


class CharLSTM(nn.Module):
    """Character LSTM: ``Embedding`` -> ``LSTM`` (``num_layers``, batch_first) -> ``Linear`` head."""

    def __init__(self, vocab_size: int, n_embd: int = 128, hidden_size: int = 256, num_layers: int = 2,
                 dropout: float = 0.0, block_size: int = 64) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.lstm = nn.LSTM(n_embd, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.lm_head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: Tensor, targets: Optional[Tensor] = None):
        B, T = idx.shape
        out, _ = self.lstm(self.wte(idx))
        logits = self.lm_head(out)
        if targets is None:
            return logits
        return logits, nn.functional.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: Optional[int] = None,
                 rng: Optional[np.random.Generator] = None) -> Tensor:
        return generate(self, idx, max_new_tokens, self.block_size, temperature, top_k, rng)


def sample_next(logits: np.ndarray, temperature: float, top_k: Optional[int], rng: np.random.Generator) -> int:
    """One id drawn from ``softmax(logits / temperature)`` restricted to the ``top_k`` largest."""
    z = np.asarray(logits, dtype=np.float64) / max(float(temperature), 1e-8)
    if top_k is not None and 0 < top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(z.size, p=p))


def generate(model: nn.Module, idx: Tensor, max_new_tokens: int, block_size: int, temperature: float = 1.0,
             top_k: Optional[int] = None, rng: Optional[np.random.Generator] = None) -> Tensor:
    """Autoregressive sampling (batch of one): crops the context to ``block_size``, takes the
    last position's logits, samples, appends. Returns ``(1, T + max_new_tokens)`` ids."""
    from . import _core

    rng = rng if rng is not None else np.random.default_rng()
    ids = [int(i) for i in idx.reshape(-1).tolist()]
    was_training = model.training
    model.eval()
    with no_grad():
        for _ in range(max_new_tokens):
            ctx = _core.tensor([ids[-block_size:]], dtype=_core.int64, device=idx.device)
            logits = model(ctx)
            ids.append(sample_next(logits[0, -1].numpy(), temperature, top_k, rng))
    model.train(was_training)
    return _core.tensor([ids], dtype=_core.int64)


def build(config: dict) -> nn.Module:
    """Rebuilds a model from the ``config`` stored in a checkpoint."""
    kind = config.get("model", "mlp")
    if kind == "mlp":
        return mlp(int(config["in_features"]), [int(h) for h in config["hidden"]], int(config["classes"]), float(config.get("dropout", 0.0)))
    if kind == "lenet":
        return LeNet5(int(config.get("classes", 10)))
    if kind == "gpt":
        return GPT(len(config["vocab"]), int(config["block_size"]), int(config["n_layer"]), int(config["n_head"]),
                   int(config["n_embd"]), float(config.get("dropout", 0.0)), bool(config.get("bias", False)))
    if kind == "lstm":
        return CharLSTM(len(config["vocab"]), int(config["n_embd"]), int(config["hidden_size"]),
                        int(config["n_layer"]), float(config.get("dropout", 0.0)), int(config["block_size"]))
    raise ValueError(f"unknown model kind '{kind}' in checkpoint config")
