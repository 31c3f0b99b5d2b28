"""The frameworks a bench run compares: their column names, what is installed (``Env``), and the
guarded calls into backprop_rs's optional GPU backend.

PyTorch is never a dependency: ``import_torch`` returns None when it is missing or broken, and
the torch column is simply absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BP_CPU = "backprop_rs-cpu"
BP_GPU = "backprop_rs-gpu"
NUMPY = "numpy"
TORCH = "torch"
PEERS = (NUMPY, TORCH)


@dataclass
class Env:
    """What a run has: the imported modules, its mode, and the columns that run."""

    bp: Any
    np: Any
    torch: Any  # None when PyTorch is not installed
    quick: bool
    frameworks: list[str]  # columns that run, in display order
    gpu_note: str | None = None  # why the GPU column is missing, or which adapter it uses
    threads: int | None = None  # the thread count every framework runs with (backprop_rs's)


def import_torch() -> Any:
    """``torch``, or None when it is not installed or fails to import."""
    try:
        import torch  # optional peer, never a dependency
    except Exception:  # noqa: BLE001 - a broken install must not take the bench down with it
        return None
    return torch


def gpu_status(bp: Any) -> tuple[bool, str]:
    """(available, message). The GPU backend is optional and still growing, so every call into it
    is guarded: a missing module, a missing function or an exception all mean "no GPU"."""
    gpu = getattr(bp, "gpu", None)
    if gpu is None:
        return False, "no GPU adapter found (this backprop_rs build has no GPU backend)"
    avail = getattr(gpu, "is_available", None)
    if not callable(avail):
        return False, "no GPU adapter found (backprop_rs.gpu.is_available() is missing)"
    try:
        ok = bool(avail())
    except Exception as e:  # noqa: BLE001 - any failure of the probe means "no GPU column"
        return False, f"no GPU adapter found (backprop_rs.gpu.is_available() failed: {e})"
    if not ok:
        return False, "no GPU adapter found"
    name = ""
    for attr in ("adapter_name", "device_name", "get_device_name", "adapter_info"):
        f = getattr(gpu, attr, None)
        if callable(f):
            try:
                name = str(f())
            except Exception:  # noqa: BLE001, S112 - the adapter's name is a nicety; try the next
                continue
            break
    return True, f"GPU adapter: {name}" if name else "GPU adapter available"


def gpu_sync(bp: Any, out: Any) -> None:
    """Waits for the GPU queue: ``bp.gpu.synchronize()`` when the backend has it, otherwise a
    one-element readback of the last result (a readback must wait for the work before it)."""
    sync = getattr(getattr(bp, "gpu", None), "synchronize", None)
    if callable(sync):
        sync()
        return
    if isinstance(out, bp.Tensor):
        out.reshape(-1)[0].item()


def bp_device(fw: str) -> str:
    """The backprop_rs device string of a backprop_rs column."""
    return "gpu" if fw == BP_GPU else "cpu"


def rng(env: Env, seed: int = 0) -> Any:
    """The NumPy generator every framework's inputs come from (the same seed: the same data)."""
    return env.np.random.default_rng(seed)


def to_numpy(env: Env, value: Any) -> Any:
    """Any framework's result as a NumPy array (for the result check); a tuple or list of results
    (several gradients) is stacked."""
    if isinstance(value, (tuple, list)):
        return env.np.stack([to_numpy(env, v) for v in value])
    if isinstance(value, env.bp.Tensor):
        return value.detach().to("cpu").numpy()
    if env.torch is not None and isinstance(value, env.torch.Tensor):
        return value.detach().cpu().numpy()
    return env.np.asarray(value)
