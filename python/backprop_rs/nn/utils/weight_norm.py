"""The hook-based ``torch.nn.utils.weight_norm`` / ``remove_weight_norm`` and
``spectral_norm`` / ``remove_spectral_norm`` (deprecated in PyTorch in favour of
:mod:`parametrizations`, still common in checkpoints: the state-dict keys are ``weight_g`` /
``weight_v``, and ``weight_orig`` / ``weight_u`` / ``weight_v``)."""

from __future__ import annotations

from typing import Any, Optional

from ... import _core
from ..._core import Tensor
from ...autograd import no_grad
from .. import functional as F
from ..module import Module
from ..parameter import Parameter
from .parametrizations import _norm_except_dim

__all__ = ["weight_norm", "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]


class _WeightNormHook:
    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def compute_weight(self, module: Module) -> Tensor:
        g, v = getattr(module, self.name + "_g"), getattr(module, self.name + "_v")
        return v * (g / _norm_except_dim(v, self.dim))

    def __call__(self, module: Module, inputs: Any) -> None:
        object.__setattr__(module, self.name, self.compute_weight(module))


def weight_norm(module: Module, name: str = "weight", dim: Optional[int] = 0) -> Module:
    """Splits ``module.<name>`` into ``<name>_g`` (the norms) and ``<name>_v`` (the direction);
    a forward pre-hook recomputes ``<name> = g * v / ||v||`` before each call."""
    if dim is None:
        dim = -1
    for hook in module.__dict__.get("_forward_pre_hooks", {}).values():
        if isinstance(hook, _WeightNormHook) and hook.name == name:
            raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
    weight = getattr(module, name)
    hook = _WeightNormHook(name, dim)
    delattr(module, name)
    module.register_parameter(name + "_g", Parameter(_norm_except_dim(weight, dim).detach().clone()))
    module.register_parameter(name + "_v", Parameter(weight.detach().clone()))
    object.__setattr__(module, name, hook.compute_weight(module))
    handle = module.register_forward_pre_hook(hook)
    module.__dict__.setdefault("_weight_norm_handles", {})[name] = (hook, handle)
    return module


def _fold_back(module: Module, kind: str, name: str, parts: Any, compute: Any) -> Module:
    """Removes a ``kind`` hook of ``name``: the recomputed weight becomes a plain parameter again
    and the ``<name><suffix>`` parts go."""
    entry = module.__dict__.get(f"_{kind}_handles", {}).pop(name, None)
    if entry is None:
        raise ValueError(f"{kind} of '{name}' not found in {module}")
    hook, handle = entry
    with no_grad():
        weight = compute(hook)
    handle.remove()
    module.__dict__.pop(name, None)
    for suffix in parts:
        delattr(module, name + suffix)
    module.register_parameter(name, Parameter(weight.detach().clone()))
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    """Folds ``g`` and ``v`` back into one ``<name>`` parameter."""
    return _fold_back(module, "weight_norm", name, ("_g", "_v"), lambda hook: hook.compute_weight(module))


class _SpectralNormHook:
    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        self.name, self.n, self.dim, self.eps = name, n_power_iterations, dim, eps

    def matrix(self, weight: Tensor) -> Tensor:
        w = weight.movedim(self.dim, 0) if self.dim else weight
        return w.flatten(1)

    def compute_weight(self, module: Module, do_power_iteration: bool) -> Tensor:
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        mat = self.matrix(weight)
        if do_power_iteration:
            with no_grad():
                for _ in range(self.n):
                    v.copy_(F.normalize(mat.detach().T @ u, dim=0, eps=self.eps))
                    u.copy_(F.normalize(mat.detach() @ v, dim=0, eps=self.eps))
        sigma = (u.clone() * (mat @ v.clone())).sum()
        return weight / sigma

    def __call__(self, module: Module, inputs: Any) -> None:
        object.__setattr__(module, self.name, self.compute_weight(module, module.training))


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: Optional[int] = None) -> Module:
    """``<name> = <name>_orig / sigma``, ``sigma`` by power iteration on the buffers
    ``<name>_u`` / ``<name>_v`` (one step per training forward)."""
    if dim is None:
        dim = 1 if type(module).__name__.startswith("ConvTranspose") else 0
    weight = getattr(module, name)
    hook = _SpectralNormHook(name, n_power_iterations, dim, eps)
    mat = hook.matrix(weight)
    h, w = mat.shape
    u = F.normalize(_core.randn(h, dtype=weight.dtype).to(weight.device), dim=0, eps=eps)
    v = F.normalize(_core.randn(w, dtype=weight.dtype).to(weight.device), dim=0, eps=eps)
    delattr(module, name)
    module.register_parameter(name + "_orig", weight if isinstance(weight, Parameter) else Parameter(weight))
    object.__setattr__(module, name, weight.detach())
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    handle = module.register_forward_pre_hook(hook)
    module.__dict__.setdefault("_spectral_norm_handles", {})[name] = (hook, handle)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Folds the normalisation into a plain ``<name>`` parameter again."""
    return _fold_back(module, "spectral_norm", name, ("_orig", "_u", "_v"),
                      lambda hook: hook.compute_weight(module, False))
