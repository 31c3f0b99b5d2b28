"""Neural-network building blocks with ``torch.nn``'s names: ``Module``, ``Parameter``, layers,
losses, ``functional``, ``init`` and ``utils``."""

from . import functional, init, utils
from .activation import GELU, Dropout, Flatten, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, ConvTranspose2d, Dropout2d, MaxPool2d, Upsample
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, Embedding, LayerNorm
from .parameter import Parameter

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Linear",
    "Identity", "ReLU", "LeakyReLU", "Tanh",
    "Sigmoid", "GELU", "Softplus", "Softmax", "LogSoftmax", "Dropout", "Flatten", "Embedding", "LayerNorm",
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Dropout2d",
    "Upsample", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss",
    "functional", "init", "utils",
]
