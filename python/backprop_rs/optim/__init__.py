"""Optimisers and learning-rate schedulers with ``torch.optim``'s names. Every ``step()`` updates
a whole parameter group with one fused Rust kernel call."""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
