"""The second main job: character-level language models on the bundled tinyshakespeare text.

``train_lm`` trains a GPT (nanoGPT's ``shakespeare_char`` recipe, at its documented CPU size) or
a character LSTM: random windows of the first 90% of the text, AdamW (decay on matrices only)
with linear warm-up and cosine decay, gradient clipping, periodic loss estimates on both splits,
a progress bar with loss and tokens/s, a checkpoint at the end. ``generate_text`` samples from
a checkpoint. ``python -m backprop_rs train --model gpt`` / ``generate CHECKPOINT`` call them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from . import _core, models, nn, optim
from ._core import Tensor
from .autograd import no_grad
from .data.shakespeare import CharCorpus, load_shakespeare


@dataclass
class LMConfig:
    """Defaults: nanoGPT's CPU run of ``shakespeare_char`` (README: ``--device=cpu --compile=False
    --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
    --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``) on top of
    ``config/train_shakespeare_char.py`` (lr 1e-3, min_lr 1e-4, warmup 100, beta2 0.99,
    eval_interval 250) and ``train.py`` (weight_decay 0.1, grad_clip 1.0, bias False)."""

    model: str = "gpt"
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    hidden_size: int = 256  # lstm only
    block_size: int = 64
    batch_size: int = 12
    dropout: float = 0.0
    bias: bool = False
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: Optional[int] = None  # None: max_iters
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    device: str = "cpu"


@dataclass
class LMResult:
    model: nn.Module
    optimizer: optim.Optimizer
    config: LMConfig
    corpus: CharCorpus
    train_loss: float
    val_loss: float
    seconds: float
    tokens_per_s: float
    history: List[Dict[str, float]] = field(default_factory=list)


def lr_at(it: int, cfg: LMConfig) -> float:
    """nanoGPT's ``get_lr``: linear warm-up over ``warmup_iters``, cosine decay to ``min_lr`` at
    ``lr_decay_iters``, ``min_lr`` after."""
    decay = cfg.lr_decay_iters or cfg.max_iters
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / (cfg.warmup_iters + 1)
    if it > decay:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, decay - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


def build_model(cfg: LMConfig, vocab_size: int) -> nn.Module:
    if cfg.model == "gpt":
        return models.GPT(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout, cfg.bias)
    if cfg.model == "lstm":
        return models.CharLSTM(vocab_size, cfg.n_embd, cfg.hidden_size, cfg.n_layer, cfg.dropout, cfg.block_size)
    raise ValueError(f"unknown language model '{cfg.model}' (gpt or lstm)")


def model_config(cfg: LMConfig, chars: str) -> dict:
    """What ``models.build`` needs to rebuild the network from a checkpoint."""
    return {"model": cfg.model, "vocab": chars, "block_size": cfg.block_size, "n_layer": cfg.n_layer,
            "n_head": cfg.n_head, "n_embd": cfg.n_embd, "hidden_size": cfg.hidden_size, "dropout": cfg.dropout,
            "bias": cfg.bias, "dataset": "tinyshakespeare"}


def get_batch(data: np.ndarray, cfg: LMConfig, rng: np.random.Generator):
    """``batch_size`` random windows: inputs ``(B, T)`` and the next characters ``(B, T)``."""
    ix = rng.integers(0, len(data) - cfg.block_size, size=cfg.batch_size)
    rows = ix[:, None] + np.arange(cfg.block_size + 1)[None, :]
    w = data[rows]
    x = _core.tensor(np.ascontiguousarray(w[:, :-1]), dtype=_core.int64, device=cfg.device)
    y = _core.tensor(np.ascontiguousarray(w[:, 1:]), dtype=_core.int64, device=cfg.device)
    return x, y


def estimate_loss(model: nn.Module, corpus: CharCorpus, cfg: LMConfig, rng: np.random.Generator,
                  iters: Optional[int] = None) -> Dict[str, float]:
    """Mean loss over ``iters`` (default ``eval_iters``) random batches of each split, in eval mode."""
    out = {}
    was = model.training
    model.eval()
    with no_grad():
        for split, data in (("train", corpus.train), ("val", corpus.val)):
            losses = [float(model(*get_batch(data, cfg, rng))[1].item()) for _ in range(iters or cfg.eval_iters)]
            out[split] = float(np.mean(losses))
    model.train(was)
    return out


def split_loss(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int = 64,
               device: str = "cpu") -> float:
    """Mean next-character loss over all non-overlapping ``block_size`` windows of ``data`` (the
    whole split, not a random sample), in eval mode."""
    n = (len(data) - 1) // block_size
    if n <= 0:
        raise ValueError(f"the split has {len(data)} characters, fewer than one window of {block_size} + 1")
    x = data[: n * block_size].reshape(n, block_size)
    y = data[1: n * block_size + 1].reshape(n, block_size)
    total = 0.0
    was = model.training
    model.eval()
    with no_grad():
        for s in range(0, n, batch_size):
            xb = _core.tensor(np.ascontiguousarray(x[s:s + batch_size]), dtype=_core.int64, device=device)
            yb = _core.tensor(np.ascontiguousarray(y[s:s + batch_size]), dtype=_core.int64, device=device)
            total += float(model(xb, yb)[1].item()) * xb.shape[0]
    model.train(was)
    return total / n


def configure_optimizer(model: nn.Module, cfg: LMConfig) -> optim.AdamW:
    """AdamW with weight decay on the 2-D parameters (matrices, embeddings) only, as nanoGPT."""
    params = list(model.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def train_lm(cfg: LMConfig, progress: bool = True, log: Callable[[str], None] = print) -> LMResult:
    """Trains ``cfg.model`` on the first 90% of tinyshakespeare; returns the model and numbers.
    ``val_loss`` is the final estimate over ``eval_iters`` random validation batches (nanoGPT's
    measure)."""
    corpus = load_shakespeare()
    _core.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    eval_rng = np.random.default_rng(cfg.seed + 1)
    model = build_model(cfg, corpus.vocab_size).to(cfg.device)
    opt = configure_optimizer(model, cfg)
    params = list(model.parameters())
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_iters, desc=f"{cfg.model} iters", dynamic_ncols=True, mininterval=0.5)
        except ImportError:
            bar = None
    history: List[Dict[str, float]] = []
    tokens_per_iter = cfg.batch_size * cfg.block_size
    train_seconds = 0.0  # optimisation only, without the periodic loss estimates
    t_start = time.perf_counter()
    smooth = None
    losses = {"train": float("nan"), "val": float("nan")}
    for it in range(cfg.max_iters + 1):
        if (cfg.eval_interval > 0 and it % cfg.eval_interval == 0) or it == cfg.max_iters:
            losses = estimate_loss(model, corpus, cfg, eval_rng)
            history.append({"iter": it, **losses})
            msg = f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
            if bar is not None:
                bar.write(msg)
            else:
                log(msg)
        if it == cfg.max_iters:
            break
        t0 = time.perf_counter()
        lr = lr_at(it, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(corpus.train, cfg, rng)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0.0:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        lv = float(loss.item())
        if not math.isfinite(lv):
            raise FloatingPointError(f"training diverged at iteration {it} (loss = {lv}); try a smaller --lr")
        dt = time.perf_counter() - t0
        train_seconds += dt
        smooth = lv if smooth is None else 0.9 * smooth + 0.1 * lv
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr:.1e}", tok_s=f"{tokens_per_iter / max(dt, 1e-9):,.0f}",
                            refresh=False)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t_start
    tps = tokens_per_iter * cfg.max_iters / max(train_seconds, 1e-9)
    return LMResult(model, opt, cfg, corpus, losses["train"], losses["val"], wall, tps, history)


def save_checkpoint(res: LMResult, path: str) -> None:
    from .serialization import save

    metrics = {"train_loss": res.train_loss, "val_loss": res.val_loss, "seconds": res.seconds,
               "tokens_per_s": res.tokens_per_s, "history": res.history}
    save({"model": res.model.state_dict(), "optimizer": res.optimizer.state_dict(),
          "config": model_config(res.config, res.corpus.chars), "train_config": asdict(res.config),
          "metrics": metrics}, path)


def load_model(path: str, device: str = "cpu"):
    """``(model, config)`` from a checkpoint written by ``train --model gpt|lstm``."""
    from .serialization import load

    ck = load(path)
    if not isinstance(ck, dict) or "model" not in ck or "config" not in ck or "vocab" not in ck["config"]:
        raise SystemExit(f"{path} is not a language-model checkpoint of backprop-rs train --model gpt|lstm")
    model = models.build(ck["config"])
    model.load_state_dict(ck["model"])
    return model.to(device), ck["config"]


def generate_text(model: nn.Module, chars: str, prompt: str, tokens: int, temperature: float = 0.8,
                  top_k: Optional[int] = 40, seed: int = 0, device: str = "cpu") -> str:
    """``prompt`` followed by ``tokens`` sampled characters."""
    from .data.shakespeare import decode, encode

    ids = encode(prompt, chars) if prompt else [0]  # id 0 is '\n' in tinyshakespeare's vocabulary
    idx: Tensor = _core.tensor([ids], dtype=_core.int64, device=device)
    out = model.generate(idx, tokens, temperature=temperature, top_k=top_k, rng=np.random.default_rng(seed))
    text = decode(out[0].tolist(), chars)
    return text if prompt else text[1:]
