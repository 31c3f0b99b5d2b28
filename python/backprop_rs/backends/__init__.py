"""``torch.backends``: the flags PyTorch programs commonly read or set, answered for backprop_rs.

``backends.cudnn`` and ``backends.cuda`` hold settable flags (``cudnn.benchmark``,
``cudnn.deterministic``, ``cuda.matmul.allow_tf32``...) that are accepted and have no effect:
there is no cuDNN or CUDA here. ``backends.mps.is_available()`` is ``False`` (Apple GPUs are
reached through wgpu's Metal backend, as the device ``"gpu"``). ``backends.wgpu.is_available()``
says whether the GPU backend has an adapter.
"""

from __future__ import annotations

from . import cpu, cuda, cudnn, mkldnn, mps, openmp, wgpu

__all__ = ["cpu", "cuda", "cudnn", "mkldnn", "mps", "openmp", "wgpu"]
