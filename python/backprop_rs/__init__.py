"""backprop_rs: a small deep-learning engine written in Rust.

Tensors live on the CPU (SIMD kernels, threads) or on any GPU through WGSL compute shaders;
reverse-mode automatic differentiation runs in Rust. The API follows PyTorch's names and
semantics so existing habits carry over::

    import backprop_rs as bp
    x = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    print(x.grad)   # tensor([2., 4., 6.])
"""

from __future__ import annotations

import builtins as _builtins

from . import _core
from ._core import (
    _log_softmax_backward_data,
    can_cast,
    promote_types,
    result_type,
    _softmax_backward_data,
    DTypeError,
    GradcheckError,
    ShapeError,
    Tensor,
    arange,
    as_tensor,
    cat,
    device,
    dtype,
    empty,
    empty_like,
    eye,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    int64,
    is_grad_enabled,
    bucketize,
    linspace,
    manual_seed,
    meshgrid,
    searchsorted,
    set_flush_denormal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    stack,
    tensor,
    zeros,
    zeros_like,
)
from ._core import empty_cache, reset_peak_memory_stats
from ._core import (  # noqa: F401 (re-exported: torch.memory_format and its values)
    channels_last, channels_last_3d, contiguous_format, memory_format, preserve_format,
)
from . import autograd, data, gpu, linalg, nn, optim, serialization
from . import accelerator as accelerator
from . import amp as amp
from .amp import (  # torch.* names for autocast's thread-local state
    autocast as autocast, is_autocast_enabled as is_autocast_enabled, set_autocast_enabled as set_autocast_enabled,
    get_autocast_dtype as get_autocast_dtype, set_autocast_dtype as set_autocast_dtype,
    is_autocast_cpu_enabled as is_autocast_cpu_enabled, set_autocast_cpu_enabled as set_autocast_cpu_enabled,
    get_autocast_cpu_dtype as get_autocast_cpu_dtype, set_autocast_cpu_dtype as set_autocast_cpu_dtype,
    get_autocast_gpu_dtype as get_autocast_gpu_dtype, is_autocast_cache_enabled as is_autocast_cache_enabled,
    set_autocast_cache_enabled as set_autocast_cache_enabled, clear_autocast_cache as clear_autocast_cache,
    autocast_increment_nesting as autocast_increment_nesting, autocast_decrement_nesting as autocast_decrement_nesting,
)
from . import cpu as cpu
from . import random as random
from . import special as special
from . import jit as jit
from . import distributions as distributions
from .decompositions import det as det, logdet as logdet, matrix_exp as matrix_exp, slogdet as slogdet
from .decompositions import inv as inverse, pinv as pinverse, matrix_power as matrix_power
from .decompositions import cholesky_solve as cholesky_solve, cholesky_inverse as cholesky_inverse
from .lowrank import svd_lowrank as svd_lowrank, pca_lowrank as pca_lowrank
from .random import (  # noqa: F811 (manual_seed also records the seed for initial_seed)
    get_rng_state as get_rng_state, initial_seed as initial_seed, manual_seed as manual_seed, seed as seed,
    set_rng_state as set_rng_state,
)
from . import backends as backends
from . import cuda as cuda
from . import _tensor_methods
from .einsum import einsum as einsum
from .sampling import bernoulli as bernoulli, multinomial as multinomial, normal as normal, randint_like as randint_like
from .special_kernels import i0 as i0, igamma as igamma, igammac as igammac
from .windows import (
    bartlett_window as bartlett_window, blackman_window as blackman_window, hamming_window as hamming_window,
    hann_window as hann_window, kaiser_window as kaiser_window,
)
# the random constructors with PyTorch's generator= and out= (the core draws when no generator is given)
from .sampling import (  # noqa: F811
    rand as rand, rand_like as rand_like, randint as randint, randn as randn, randn_like as randn_like,
    randperm as randperm,
)
from .scatter_ops import index_put as index_put, scatter as scatter, scatter_reduce as scatter_reduce
from .counting import (
    bincount as bincount,
    count_nonzero as count_nonzero,
    histc as histc,
    mode as mode,
    unique as unique,
    unique_consecutive as unique_consecutive,
)
from .stacking import (  # noqa: F401 (re-exported)
    atleast_1d, atleast_2d, atleast_3d, block_diag, broadcast_shapes, broadcast_tensors, cartesian_prod,
    column_stack, diag_embed, diagflat, dsplit, dstack, hsplit, hstack, index_copy, masked_scatter, moveaxis,
    movedim, narrow_copy, ravel, rot90, row_stack, select, swapaxes, swapdims, take, tensor_split, tril_indices,
    triu_indices, unflatten, vsplit, vstack, put, index_reduce,
)
from .math_ops import (  # noqa: F401 (re-exported)
    asinh, acosh, atanh, sinc, positive, erfinv, bitwise_and, bitwise_or, bitwise_xor, bitwise_not, bitwise_left_shift,
    bitwise_right_shift, gcd, lcm, histogram, histogramdd, nanmedian, msort, polygamma, mvlgamma,
    prod, nansum, nanmean, aminmax, var_mean, std_mean, quantile, nanquantile, logaddexp, logaddexp2, xlogy,
    logit, exp2, sgn, signbit, copysign, deg2rad, rad2deg, float_power, heaviside, fmax, fmin, isin, isposinf,
    isneginf, isreal, logical_xor, tensordot, kron, inner, addmv, addr, addbmm, chain_matmul, cov, corrcoef,
    cdist as cdist,
    cross as cross,
    cummax as cummax,
    cummin as cummin,
    diff as diff,
    hypot as hypot,
    logcumsumexp as logcumsumexp,
)
from ._functions import (
    add,
    addcdiv,
    addcmul,
    clone,
    detach,
    div,
    divide,
    dot,
    floor_divide,
    mul,
    multiply,
    mv,
    negative,
    rsub,
    sub,
    subtract,
    true_divide,
    vdot,
)
from ._compat import (
    BFloat16Tensor,
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
    UnsupportedDType,
    UnsupportedDTypeError,
    are_deterministic_algorithms_enabled,
    finfo,
    get_default_device,
    get_default_dtype,
    get_float32_matmul_precision,
    get_num_interop_threads,
    get_num_threads,
    iinfo,
    is_floating_point,
    is_nonzero,
    set_default_device,
    set_default_dtype,
    set_float32_matmul_precision,
    set_num_interop_threads,
    set_num_threads,
    use_deterministic_algorithms,
)
from . import utils as utils
from .utils.dlpack import from_dlpack as from_dlpack
from . import func as func
from . import distributed as distributed
from .autograd import (
    enable_grad,
    inference_mode,
    is_anomaly_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_anomaly_enabled,
    set_grad_enabled,
)
from .generator import Generator as Generator, default_generator as default_generator
from .serialization import load, save
from . import _compat
from . import namespace as _namespace
from . import inplace_variants as _inplace_variants

__version__ = _core.__version__

_tensor_methods.install()

where = getattr(_core, "where")
concat = cat
concatenate = cat
double = float64
long = int64
float16 = half = _core.float16
bfloat16 = _core.bfloat16
int32 = _core.int32
int16 = short = _core.int16
int8 = _core.int8
uint8 = _core.uint8
Size = tuple


def memory_stats(device: str = "cpu") -> dict:  # noqa: F811 (the parameter is named as in torch.cuda)
    """Memory of a device's tensors, ``torch.cuda.memory_stats``-style: ``allocated_bytes.all.current``
    and ``.peak`` (bytes held by live tensors), ``cached_bytes`` (freed buffers kept for reuse;
    ``empty_cache()`` gives them back) and ``reserved_bytes.all.current`` (both)."""
    return _core._memory_stats(str(device))


def memory_allocated(device: str = "cpu") -> int:  # noqa: F811
    """Bytes held by live tensors on ``device``."""
    return memory_stats(device)["allocated_bytes.all.current"]


def memory_reserved(device: str = "cpu") -> int:  # noqa: F811
    """Bytes held by live tensors plus the cache on ``device``."""
    return memory_stats(device)["reserved_bytes.all.current"]


def compile(model=None, *, fullgraph: _builtins.bool = False, dynamic=None, backend="inductor", mode=None,
            options=None, disable: _builtins.bool = False):
    """``torch.compile``: returns ``model`` (a Module or a function) unchanged, so programs that
    compile run eagerly here; used bare (``@bp.compile``) or with arguments
    (``@bp.compile(mode="max-autotune")``). backprop_rs has no graph compiler yet."""
    if model is None:
        return lambda m: m
    return model


def is_tensor(obj: object) -> _builtins.bool:
    """Whether ``obj`` is a backprop_rs Tensor (a Parameter included)."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    """The number of elements of ``input``."""
    return input.numel()


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """``input @ other`` (NumPy's matmul rules: batched, broadcast, 1-D promoted)."""
    return input @ other


def mm(input: Tensor, other: Tensor) -> Tensor:
    """The product of two 2-D tensors."""
    return input.mm(other)


def maximum(input: Tensor, other: Tensor) -> Tensor:
    """The elementwise maximum (broadcast)."""
    return input.maximum(other)


def minimum(input: Tensor, other: Tensor) -> Tensor:
    """The elementwise minimum (broadcast)."""
    return input.minimum(other)


def clamp(input: Tensor, min=None, max=None) -> Tensor:
    """``input`` limited to ``[min, max]`` (either bound may be None)."""
    return input.clamp(min, max)


def softmax(input: Tensor, dim: int) -> Tensor:
    """The softmax of ``input`` along ``dim``."""
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """The log-softmax of ``input`` along ``dim``."""
    return input.log_softmax(dim)


def _method_alias(name: str):
    def f(input: Tensor, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = f"``backprop_rs.{name}(t, ...)`` is ``t.{name}(...)``."
    return f


for _name in (
    "abs", "neg", "sign", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu",
    "erf", "square", "reciprocal", "sum", "mean", "amax", "amin", "argmax", "argmin", "var", "std",
    "logsumexp", "all", "any", "reshape", "permute", "transpose", "squeeze", "unsqueeze", "flatten",
    "gather", "scatter_add", "index_select", "index_add", "narrow", "split", "chunk", "nonzero",
    "pow", "max", "min", "eq", "ne", "lt", "le", "gt", "ge", "t", "clip", "logical_not",
    "logical_and", "logical_or", "unbind", "broadcast_to",
    # issue 13: the everyday surface
    "atan2", "arctan2", "fmod", "remainder", "frac", "clamp_min", "clamp_max", "tril", "triu",
    "diagonal", "as_strided", "diag", "trace", "outer", "bmm", "addmm", "baddbmm", "flip", "fliplr", "flipud",
    "roll", "tile", "repeat_interleave", "take_along_dim", "masked_fill", "masked_select",
    "index_fill", "isnan", "isinf", "isfinite", "nan_to_num", "isclose", "allclose", "equal",
    "lerp", "cumsum", "cumprod", "sort", "argsort", "topk", "kthvalue", "median", "norm",
    "absolute", "arccos", "arcsin", "arctan", "arcsinh", "arccosh", "arctanh", "fix", "not_equal", "greater",
    "less", "greater_equal", "less_equal",
):
    globals()[_name] = _method_alias(_name)
del _name

_UNARY = frozenset(_core._unary_op_names())


_LAZY_SUBMODULES = frozenset({"viz", "train", "models"})


def __getattr__(name: str):
    """``bp.<op>(t)`` for every unary primitive of the engine (PEP 562), so a new primitive needs
    no line here; ``bp.viz``, ``bp.train`` and ``bp.models`` are imported on first use."""
    if name in _UNARY:
        return _method_alias(name)
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'backprop_rs' has no attribute '{name}'")


# PyTorch's dtypes that the engine lacks: named, refused where used (see _compat.UnsupportedDType)
for _name, _placeholder in _compat.UNSUPPORTED.items():
    if not hasattr(_core, _name):
        globals()[_name] = _placeholder
del _name, _placeholder

# torch.* names that are other modules' functions under PyTorch's names and argument orders
# (bp.pi, bp.conv2d, bp.embedding(weight, idx), bp.logspace...); `pow` replaces the method alias
# above to also take a number as the base, as torch.pow(2, t)
for _name, _value in _namespace.toplevel_functions().items():
    if _name == "pow" or _name not in globals():
        globals()[_name] = _value
# torch.svd (U, S, V), torch.lu, torch.triangular_solve...: the legacy linalg names (the ones
# PyTorch 2 removed raise with its guidance)
from .decompositions import toplevel_functions as _linalg_toplevel  # noqa: E402 (with the other generated names)

for _name, _value in _linalg_toplevel().items():
    if _name not in globals():
        globals()[_name] = _value
# torch.abs_(t), torch.clamp_(t, ...), torch.fill(t, v)...: the Tensor in-place methods by name
for _name, _value in _inplace_variants.toplevel_functions().items():
    if _name not in globals():
        globals()[_name] = _value
del _name, _value

# PyTorch's dtype aliases; assigned last so the builtins stay usable above.
bool = _core.bool_  # noqa: A001
float = float32  # noqa: A001
int = int32  # noqa: A001 (torch.int is int32)
