"""Data: datasets, ``DataLoader``, the bundled digits, and the four ways to feed backprop
(``batch``, ``stochastic``, ``minibatch``, ``online``; see :mod:`backprop_rs.data.modes`)."""

from .dataloader import DataLoader, default_collate
from .dataset import Dataset, TensorDataset
from .digits import Digits, load_digits
from .modes import MODES, as_stream, loader_for, stream

__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate", "load_digits", "Digits", "MODES", "loader_for", "stream", "as_stream"]
