"""Training utilities with ``torch.nn.utils``'s names: gradient clipping, parameter/vector
conversion, sequence padding (``nn.utils.rnn``), parametrizations (``parametrize``,
``parametrizations.weight_norm/spectral_norm``) and the hook-based ``weight_norm`` /
``spectral_norm``."""

from . import parametrizations, parametrize, rnn
from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters
from .weight_norm import remove_spectral_norm, remove_weight_norm, spectral_norm, weight_norm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "parameters_to_vector", "vector_to_parameters", "rnn", "parametrize", "parametrizations", "weight_norm",
           "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]
