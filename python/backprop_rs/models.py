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


def build(config: dict) -> nn.Module:
    """Rebuilds a model from the ``config`` stored in a checkpoint."""
    kind = config.get("model", "mlp")
    if kind == "mlp":
        return mlp(int(config["in_features"]), [int(h) for h in config["hidden"]], int(config["classes"]), float(config.get("dropout", 0.0)))
    if kind == "lenet":
        return LeNet5(int(config.get("classes", 10)))
    raise ValueError(f"unknown model kind '{kind}' in checkpoint config")
