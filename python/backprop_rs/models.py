"""Ready-made networks used by the command line (and handy in examples)."""

from __future__ import annotations

from typing import Sequence

from . import nn


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


def build(config: dict) -> nn.Module:
    """Rebuilds a model from the ``config`` stored in a checkpoint."""
    kind = config.get("model", "mlp")
    if kind == "mlp":
        return mlp(int(config["in_features"]), [int(h) for h in config["hidden"]], int(config["classes"]), float(config.get("dropout", 0.0)))
    raise ValueError(f"unknown model kind '{kind}' in checkpoint config")
