"""Neural-network building blocks with ``torch.nn``'s names: ``Module``, ``Parameter``, layers,
losses, ``functional``, ``init`` and ``utils``."""

from . import functional, init, utils
from .activation import GELU, Dropout, Flatten, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .container import ModuleList, Sequential
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .normalization import BatchNorm1d, Embedding, LayerNorm
from .parameter import Parameter

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "Linear", "Identity", "ReLU", "LeakyReLU", "Tanh",
    "Sigmoid", "GELU", "Softplus", "Softmax", "LogSoftmax", "Dropout", "Flatten", "Embedding", "LayerNorm",
    "BatchNorm1d", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss",
    "functional", "init", "utils",
]
