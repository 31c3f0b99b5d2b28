"""Lazy layers (``LazyLinear``, ``LazyConv1d/2d/3d``, ``LazyBatchNorm1d/2d/3d``): the input
size is read from the first input; until then the weights are uninitialised parameters. At the
first call the layer becomes the ordinary one (its class changes, as PyTorch's does) with
PyTorch's default initialisation, so an optimizer must be built after that first call."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._core import Tensor
from .module import Module
from .parameter import Parameter

__all__ = ["LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
           "LazyBatchNorm3d", "UninitializedParameter"]


class UninitializedParameter(Parameter):
    """A parameter whose shape is not known yet (an empty placeholder)."""


def _placeholder() -> Parameter:
    return UninitializedParameter(_core.empty((0,)))


class _Lazy(Module):
    cls_to_become: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._lazy_args, self._lazy_kwargs = args, kwargs
        self.weight = _placeholder()

    def has_uninitialized_params(self) -> bool:
        return isinstance(self._parameters.get("weight"), UninitializedParameter)

    def _materialize(self, x: Tensor) -> None:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.has_uninitialized_params():
            self._materialize(args[0])
        return Module.__call__(self, *args, **kwargs)  # the class may have just changed

    def _become(self, built: Module) -> None:
        training = self.training
        hooks = {k: v for k, v in self.__dict__.items() if k.endswith("hooks")}
        self.__dict__.clear()
        self.__dict__.update(built.__dict__)
        self.__dict__.update(hooks)
        self.__class__ = type(built)
        self.train(training)

    def extra_repr(self) -> str:
        return "uninitialized"


class LazyLinear(_Lazy):
    """``Linear`` with ``in_features`` from the first input's last dim."""

    def __init__(self, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(out_features, bias=bias, device=device, dtype=dtype)

    def _materialize(self, x: Tensor) -> None:
        from .linear import Linear

        (out,), kw = self._lazy_args, self._lazy_kwargs
        self._become(Linear(x.shape[-1], out, **kw))


def _lazy_conv(name: str, conv: str, channel_dim_rank: int) -> type:
    def __init__(self, out_channels: int, kernel_size: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore
        _Lazy.__init__(self, out_channels, kernel_size, *args, **kwargs)

    def _materialize(self, x: Tensor) -> None:  # type: ignore[no-untyped-def]
        from . import conv as conv_mod

        cin = x.shape[0] if x.ndim == channel_dim_rank else x.shape[1]
        self._become(getattr(conv_mod, conv)(cin, *self._lazy_args, **self._lazy_kwargs))

    return type(name, (_Lazy,), {"__init__": __init__, "_materialize": _materialize, "__module__": __name__,
                                 "__doc__": f"``{conv}`` with ``in_channels`` from the first input."})


LazyConv1d = _lazy_conv("LazyConv1d", "Conv1d", 2)
LazyConv2d = _lazy_conv("LazyConv2d", "Conv2d", 3)
LazyConv3d = _lazy_conv("LazyConv3d", "Conv3d", 4)


def _lazy_bn(name: str, bn: str) -> type:
    def __init__(self, eps: float = 1e-5, momentum: Any = 0.1, affine: bool = True,  # type: ignore
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None) -> None:
        _Lazy.__init__(self, eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats,
                       device=device, dtype=dtype)

    def _materialize(self, x: Tensor) -> None:  # type: ignore[no-untyped-def]
        from . import normalization

        self._become(getattr(normalization, bn)(x.shape[1], **self._lazy_kwargs))

    return type(name, (_Lazy,), {"__init__": __init__, "_materialize": _materialize, "__module__": __name__,
                                 "__doc__": f"``{bn}`` with ``num_features`` from the first input."})


LazyBatchNorm1d = _lazy_bn("LazyBatchNorm1d", "BatchNorm1d")
LazyBatchNorm2d = _lazy_bn("LazyBatchNorm2d", "BatchNorm2d")
LazyBatchNorm3d = _lazy_bn("LazyBatchNorm3d", "BatchNorm3d")
