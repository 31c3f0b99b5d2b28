"""``torch.backends.cuda``: no CUDA in backprop_rs; the flags (``matmul.allow_tf32``,
``matmul.allow_fp16_reduced_precision_reduction``...) are accepted and have no effect."""

from __future__ import annotations


class _MatmulFlags:
    """Settable TF32 / reduced-precision flags, kept for programs that set them."""

    def __init__(self) -> None:
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True

    def __repr__(self) -> str:
        return f"<backprop_rs.backends.cuda.matmul allow_tf32={self.allow_tf32}>"


matmul = _MatmulFlags()


def is_built() -> bool:
    """``False``: not built with CUDA."""
    return False


def flash_sdp_enabled() -> bool:
    """``False``: no CUDA kernels."""
    return False


def enable_flash_sdp(enabled: bool) -> None:
    """Accepted, no effect (no CUDA kernels)."""


def enable_mem_efficient_sdp(enabled: bool) -> None:
    """Accepted, no effect (no CUDA kernels)."""


def enable_math_sdp(enabled: bool) -> None:
    """Accepted, no effect."""
