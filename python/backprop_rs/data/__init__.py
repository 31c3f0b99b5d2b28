"""Data: datasets, ``DataLoader``, the bundled digits, and the four ways to feed backprop
(``batch``, ``stochastic``, ``minibatch``, ``online``; see :mod:`backprop_rs.data.modes`).

The datasets, samplers and the loader itself live in :mod:`backprop_rs.utils.data`, under
PyTorch's names; this package re-exports them beside the feeding modes and the digits."""

from ..utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    WeightedRandomSampler,
    default_convert,
    get_worker_info,
    random_split,
)
from .dataloader import DataLoader, default_collate
from .dataset import TensorDataset
from .digits import Digits, load_digits
from .modes import MODES, as_stream, loader_for, stream
from .shakespeare import CharCorpus, load_shakespeare

__all__ = [
    "CharCorpus", "load_shakespeare",
    "Dataset", "IterableDataset", "TensorDataset", "StackDataset", "ConcatDataset", "ChainDataset", "Subset",
    "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
    "BatchSampler", "DistributedSampler", "DataLoader", "default_collate", "default_convert", "get_worker_info", "load_digits", "Digits",
    "MODES", "loader_for", "stream", "as_stream",
]
