"""Optimisers and learning-rate schedulers with ``torch.optim``'s names. SGD, Adam(W), RMSprop and
Adagrad update a whole parameter group with one fused Rust kernel call; Adadelta, Adamax, NAdam,
RAdam, ASGD, Rprop and LBFGS are written as tensor ops under no_grad."""

from . import lr_scheduler, swa_utils
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD",
           "LBFGS", "Rprop", "lr_scheduler", "swa_utils"]
