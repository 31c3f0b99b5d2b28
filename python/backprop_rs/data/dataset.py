"""Datasets: the classes live in :mod:`backprop_rs.utils.data` (PyTorch's place for them); this
module keeps the ``backprop_rs.data`` names working."""

from ..utils.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "StackDataset", "ConcatDataset", "ChainDataset", "Subset",
           "random_split"]
