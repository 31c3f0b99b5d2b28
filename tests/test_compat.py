"""PyTorch's everyday idioms around devices, dtypes and legacy names (backprop_rs/cuda.py,
accelerator.py, backends/, _compat.py, _tensor_methods.py)."""

import copy
import pickle

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs as torch  # the spelling the idioms are written in
from conftest import gpu_or_skip


# ------------------------------------------------------------------ devices


def test_cuda_is_not_pretended():
    assert torch.cuda.is_available() is False
    assert torch.cuda.device_count() == 0
    assert torch.cuda.is_initialized() is False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(3, device=device)
    assert x.device.type == "cpu"
    torch.cuda.manual_seed(0)
    torch.cuda.manual_seed_all(0)
    torch.cuda.empty_cache()
    assert torch.cuda.memory_allocated() == 0
    for call in (torch.cuda.current_device, torch.cuda.synchronize, torch.cuda.get_device_name):
        with pytest.raises(RuntimeError, match="no CUDA backend.*'gpu'"):
            call()


def test_backends_flags():
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = True
    import backprop_rs.backends.cudnn as cudnn

    assert cudnn.benchmark is True and cudnn.deterministic is True
    assert torch.backends.cudnn.is_available() is False
    assert torch.backends.mps.is_available() is False and torch.backends.mps.is_built() is False
    assert torch.backends.wgpu.is_available() == bp.gpu.is_available()
    assert torch.backends.cpu.get_cpu_capability().isupper()
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = False


def test_accelerator_is_the_wgpu_gpu():
    available = bp.gpu.is_available()
    assert torch.accelerator.is_available() == available
    acc = torch.accelerator.current_accelerator()
    if available:
        assert acc == bp.device("gpu") and acc.type == "gpu"
        assert torch.accelerator.device_count() == 1 and torch.accelerator.current_device_index() == 0
        x = torch.ones(2, device=acc)
        torch.accelerator.synchronize()
        assert x.device.type == "gpu"
    else:
        assert acc is None and torch.accelerator.device_count() == 0
    device = acc if torch.accelerator.is_available() else torch.device("cpu")
    assert torch.zeros(2, device=device).device == device
    with pytest.raises(ValueError, match="one GPU"):
        torch.accelerator.set_device_index(1)


def test_cuda_device_string_is_the_gpu_alias():
    assert bp.device("cuda").type == "gpu"
    assert bp.device("cuda:0") == bp.device("gpu")


def test_default_device_and_dtype():
    assert bp.get_default_device() == bp.device("cpu")
    bp.set_default_device("cpu")
    bp.set_default_device(None)
    with pytest.raises(ValueError, match="unknown device"):
        bp.set_default_device("tpu")
    assert bp.get_default_device() == bp.device("cpu")
    assert bp.get_default_dtype() == bp.float32
    bp.set_default_dtype(bp.float32)
    with pytest.raises(TypeError, match="floating-point"):
        bp.set_default_dtype(bp.int64)
    bp.use_deterministic_algorithms(True)
    assert bp.are_deterministic_algorithms_enabled()
    bp.use_deterministic_algorithms(False)
    bp.set_float32_matmul_precision("high")
    assert bp.get_float32_matmul_precision() == "high"
    bp.set_float32_matmul_precision("highest")


# ------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("name", ["complex64", "uint16", "float8_e4m3fn"])
def test_unsupported_dtypes_can_be_named_not_used(name):
    dt = getattr(bp, name)
    assert isinstance(dt, bp.UnsupportedDType) and "not supported yet" in repr(dt)
    # nanoGPT's idiom: every dtype is named, one is chosen
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}["float32"]
    assert bp.zeros(1, dtype=ptdtype).dtype == bp.float32
    assert bp.ones(1).dtype != dt
    for use in (lambda: bp.zeros(2, dtype=dt), lambda: bp.ones(2).to(dt), lambda: bp.tensor([1.0], dtype=dt),
                lambda: bp.nn.Linear(2, 2).to(dt)):
        with pytest.raises(TypeError, match=f"{name} .not supported yet"):
            use()
    with pytest.raises(bp.UnsupportedDTypeError, match=f"dtype {name} is not supported yet"):
        bp.finfo(dt) if dt.is_floating_point else bp.iinfo(dt)
    with pytest.raises(TypeError, match="not supported yet"):
        bp.ones(1).type(dt)
    assert issubclass(bp.UnsupportedDTypeError, bp.DTypeError)


def test_half_and_small_int_methods_convert():
    t = bp.tensor([1.7, -2.2, 300.0])
    assert t.half().dtype == bp.float16 == bp.half and t.bfloat16().dtype == bp.bfloat16
    assert t.type("torch.HalfTensor").dtype == bp.float16 and t.type(bp.IntTensor).dtype == bp.int32
    # float -> int truncates toward zero, then the narrow types keep the low bits, as PyTorch on x86
    assert t.int().numpy().tolist() == [1, -2, 300] and t.int().dtype == bp.int32 == bp.int
    assert t.short().dtype == bp.int16 == bp.short
    assert t.char().numpy().tolist() == [1, -2, 44] and t.byte().numpy().tolist() == [1, 254, 44]
    assert isinstance(bp.ByteTensor([1, 2]), bp.ByteTensor) and bp.HalfTensor(2, 3).dtype == bp.float16
    assert bp.ones(2, dtype=bp.int16).type() == "backprop_rs.ShortTensor"


def test_finfo_iinfo_match_numpy():
    for dt, nd in ((bp.float32, np.float32), (bp.float64, np.float64), (bp.float16, np.float16)):
        fi, ni = bp.finfo(dt), np.finfo(nd)
        assert (fi.bits, fi.eps, fi.max, fi.min, fi.tiny, fi.resolution) == (
            ni.bits, float(ni.eps), float(ni.max), float(ni.min), float(ni.tiny), float(ni.resolution))
        assert fi.smallest_normal == fi.tiny and fi.dtype == np.dtype(nd).name
    assert bp.finfo().dtype == "float32"
    for dt in (bp.int64, bp.int32, bp.int16, bp.int8, bp.uint8):
        ii, ni = bp.iinfo(dt), np.iinfo(dt.name)
        assert (ii.bits, ii.max, ii.min, ii.dtype) == (ni.bits, int(ni.max), int(ni.min), dt.name)
    # bfloat16 (NumPy has none): float32's range with 8 significand bits; max is the largest
    # value a float32 rounds to without overflowing
    bf = bp.finfo(bp.bfloat16)
    assert (bf.bits, bf.eps, bf.tiny, bf.resolution) == (16, 2.0**-7, 2.0**-126, 0.01)
    assert bp.tensor([bf.max]).bfloat16().float().item() == bf.max == float(np.float32(3.3895313892515355e38))
    with pytest.raises(TypeError, match="not a floating point"):
        bp.finfo(bp.int64)
    with pytest.raises(TypeError, match="not an integer"):
        bp.iinfo(bp.float32)
    with pytest.raises(TypeError, match="complex64 is not supported"):
        bp.finfo("complex64")
    # the usual use: a mask value
    x = bp.zeros(3)
    assert (x + bp.finfo(x.dtype).min).numpy().min() == np.finfo(np.float32).min


def test_dtype_conversions_exist():
    x = bp.tensor([1.7, -2.2])
    assert x.long().dtype == bp.int64 and x.int().dtype == bp.int32
    assert x.double().dtype == bp.float64 and x.double().float().dtype == bp.float32
    assert x.bool().dtype == bp.bool
    assert x.type_as(bp.tensor([1])).dtype == bp.int64 and x.type_as(x) is x


# ------------------------------------------------------------------ tensor glue


def test_new_factories_follow_self():
    base = bp.tensor([1.0], dtype=bp.float64)
    z = base.new_zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == bp.float64 and not z.numpy().any()
    assert base.new_zeros((2, 3)).shape == (2, 3)
    assert base.new_ones([4]).numpy().tolist() == [1.0] * 4
    f = base.new_full((2,), 7)
    assert f.dtype == bp.float64 and f.numpy().tolist() == [7.0, 7.0]
    assert base.new_empty(5).shape == (5,) and base.new_empty(5).dtype == bp.float64
    t = base.new_tensor([1, 2])
    assert t.dtype == bp.float64 and t.numpy().tolist() == [1.0, 2.0]
    assert base.new_zeros(2, dtype=bp.int64).dtype == bp.int64
    g = base.new_ones(2, requires_grad=True)
    assert g.requires_grad and g.is_leaf
    src = bp.ones(2, requires_grad=True) * 2
    c = base.new_tensor(src)
    assert not c.requires_grad and c.dtype == bp.float64
    if bp.gpu.is_available():
        gbase = bp.ones(1, device="gpu")
        assert gbase.new_zeros(3).device.type == "gpu"
        assert gbase.new_tensor([1.0]).device.type == "gpu"


def test_type_strings_and_conversions():
    x = bp.tensor([1.5, 2.0])
    assert x.type() == "backprop_rs.FloatTensor"
    assert bp.tensor([1]).type() == "backprop_rs.LongTensor"
    assert x.type(bp.float32) is x
    assert x.type(bp.float64).dtype == bp.float64
    assert x.type(bp.LongTensor).numpy().tolist() == [1, 2]
    assert x.type("torch.DoubleTensor").dtype == bp.float64
    assert x.type("backprop_rs.float64").dtype == bp.float64
    if bp.gpu.is_available():
        g = x.type("torch.cuda.FloatTensor")
        assert g.device.type == "gpu" and g.type() == "backprop_rs.gpu.FloatTensor"


def test_format():
    loss = bp.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235"
    assert f"{bp.tensor([2.5]):.1f}" == "2.5"
    assert f"{bp.tensor(3):d}" == "3"
    assert f"{bp.ones(2)}" == str(bp.ones(2))
    assert "{:>8.3f}".format(bp.tensor([[1.0]])) == "   1.000"
    with pytest.raises(TypeError):
        f"{bp.ones(2):.4f}"


def test_legacy_constructors():
    a = bp.FloatTensor([1, 2, 3])
    assert a.dtype == bp.float32 and a.numpy().tolist() == [1.0, 2.0, 3.0]
    b = bp.LongTensor(2, 3)
    assert b.dtype == bp.int64 and b.shape == (2, 3)
    assert bp.DoubleTensor(np.arange(3)).dtype == bp.float64
    assert bp.BoolTensor([True, False]).dtype == bp.bool
    assert bp.FloatTensor().shape == (0,)
    assert bp.FloatTensor((1, 2)).numpy().tolist() == [1.0, 2.0]  # a tuple is data, as in PyTorch
    assert isinstance(a, bp.FloatTensor) and not isinstance(a, bp.LongTensor)
    assert isinstance(b, bp.Tensor)
    with pytest.raises(TypeError, match="expected data"):
        bp.FloatTensor(2, "x")


def test_top_level_predicates():
    assert bp.is_tensor(bp.ones(1)) and not bp.is_tensor([1.0])
    assert bp.numel(bp.ones(2, 3)) == 6
    assert bp.is_floating_point(bp.ones(1)) and not bp.is_floating_point(bp.tensor([1]))
    assert bp.is_nonzero(bp.tensor([1.0])) and not bp.is_nonzero(bp.tensor(0))
    with pytest.raises(TypeError):
        bp.is_floating_point(1.0)


def test_small_aliases():
    x = bp.randn(2, 3, 4)
    assert x.ndimension() == 3 and x.get_device() == -1 and x.is_cpu
    assert not (x.is_meta or x.is_sparse or x.is_quantized or x.is_complex() or x.is_pinned())
    assert x.pin_memory() is x and x.share_memory_() is x
    assert x.movedim(0, -1).shape == (3, 4, 2) and x.moveaxis([0, 1], [2, 0]).shape == (3, 4, 2)
    np.testing.assert_array_equal(x.movedim(0, -1).numpy(), np.moveaxis(x.numpy(), 0, -1))
    assert x.swapdims(0, 2).shape == (4, 3, 2) and x.ravel().shape == (24,)
    y = bp.tensor([3.0, -1.0])
    assert y.multiply(2).numpy().tolist() == [6.0, -2.0]
    assert y.divide(2).numpy().tolist() == [1.5, -0.5] and y.true_divide(2).numpy().tolist() == [1.5, -0.5]
    assert y.subtract(1).numpy().tolist() == [2.0, -2.0] and y.absolute().numpy().tolist() == [3.0, 1.0]
    assert y.negative().numpy().tolist() == [-3.0, 1.0]
    assert y.greater(0).numpy().tolist() == [True, False] and y.less_equal(-1).numpy().tolist() == [False, True]
    assert y.argwhere().numpy().tolist() == [[0], [1]]
    assert y.is_signed() and not bp.tensor([True]).is_signed()


def test_deepcopy_tensors_and_modules():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    x.grad = bp.ones(2)
    y = copy.deepcopy(x)
    assert y is not x and y.requires_grad and y.is_leaf and y.type() == "backprop_rs.FloatTensor"
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])
    y.data.add_(1.0)
    assert x.detach().numpy().tolist() == [1.0, 2.0]  # a copy, not a view
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)
    # the transfer-learning tutorial's idiom: keep the best weights
    model = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.BatchNorm1d(4), bp.nn.Linear(4, 1))
    best = copy.deepcopy(model.state_dict())
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, bp.nn.Parameter)
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in model.named_parameters()]
    with bp.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    x = bp.randn(5, 3)
    model.load_state_dict(best)
    model.eval()
    clone.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), clone(x).detach().numpy())
    shared = bp.nn.Linear(2, 2)
    twice = copy.deepcopy(bp.nn.Sequential(shared, shared))
    assert twice[0] is twice[1] and twice[0] is not shared
    with pytest.raises(TypeError):
        pickle.dumps(x)  # checkpoints are safetensors (bp.save), never pickle


# ------------------------------------------------------------------ amp and compile


def test_cuda_amp_loop_runs_in_float32_without_cuda():
    # As PyTorch on a machine without CUDA: autocast("cuda") and the CUDA GradScaler warn and disable themselves.
    import warnings

    model = bp.nn.Linear(3, 1)
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    x, y = bp.randn(8, 3), bp.randn(8, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = torch.cuda.amp.GradScaler(enabled=True)
        scaler2 = torch.amp.GradScaler("cuda")
        ctx = torch.amp.autocast(device_type="cuda", dtype=torch.float16)
    assert any("GradScaler is enabled, but CUDA is not available" in str(w.message) for w in caught)
    assert any("device_type of 'cuda', but CUDA is not available" in str(w.message) for w in caught)
    before = model.weight.detach().numpy().copy()
    with ctx:
        loss = bp.nn.functional.mse_loss(model(x), y)
    assert loss.dtype == bp.float32 and not bp.is_autocast_enabled()
    scaled = scaler.scale(loss)
    assert scaled is loss
    scaled.backward()
    scaler.unscale_(opt)
    grad = model.weight.grad.numpy().copy()
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(model.weight.detach().numpy(), before - 0.1 * grad, rtol=1e-6)
    assert scaler.get_scale() == 1.0 and not scaler.is_enabled() and scaler2.state_dict() == {}
    from backprop_rs.cuda.amp import autocast as cuda_autocast

    with cuda_autocast(enabled=False):
        pass

    @torch.autocast("cpu", enabled=False)
    def f(a):
        return a * 2

    assert f(bp.ones(1)).item() == 2.0


def test_compile_returns_the_model():
    model = bp.nn.Linear(2, 2)
    assert torch.compile(model) is model

    @torch.compile
    def f(a):
        return a + 1

    @torch.compile(mode="max-autotune")
    def g(a):
        return a + 2

    assert f(bp.zeros(1)).item() == 1.0 and g(bp.zeros(1)).item() == 2.0


def test_thread_settings():
    import warnings

    n = bp.get_num_threads()
    assert n == bp._core._cpu_info()["threads"] >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bp.set_num_threads(n)  # the current count: nothing to say
        bp.set_num_interop_threads(4)
    with pytest.warns(UserWarning, match="RAYON_NUM_THREADS"):
        bp.set_num_threads(n + 1)
    assert bp.get_num_threads() == n and bp.get_num_interop_threads() == 1
    with pytest.raises(ValueError):
        bp.set_num_threads(0)


def test_set_default_dtype_float64_reaches_every_float_default():
    # what torch.set_default_dtype(torch.float64) changes, one by one; every other dtype stays
    try:
        bp.set_default_dtype(bp.float64)
        assert bp.get_default_dtype() == bp.float64
        f64 = bp.float64
        for t in [bp.zeros(2), bp.ones(2), bp.empty(2), bp.rand(2), bp.randn(2), bp.full((2,), 1.5),
                  bp.arange(0.0, 1.0, 0.5), bp.linspace(0, 1, 3), bp.eye(2), bp.tensor([1.0, 2.0]), bp.tensor(2.5),
                  bp.tensor([1, 2]) / 2, bp.tensor([1, 2]) * 0.5, bp.tensor([1, 3]) / bp.tensor([2, 2]),
                  bp.tensor([1, 2]).softmax(0), bp.nn.Linear(3, 2).weight, bp.nn.Linear(3, 2)(bp.randn(1, 3))]:
            assert t.dtype == f64, t
        # integers, bools and explicitly float32 data keep theirs, as in PyTorch
        assert bp.tensor([1, 2]).dtype == bp.int64 and bp.arange(3).dtype == bp.int64
        assert bp.tensor([True]).dtype == bp.bool
        assert bp.zeros(2, dtype=bp.float32).dtype == bp.float32
        assert (bp.zeros(2, dtype=bp.float32) * 2.5).dtype == bp.float32
        assert bp.from_numpy(np.ones(2, np.float32)).dtype == bp.float32
        # the numbers are float64's: 0.1 is not rounded to float32 on the way in
        assert bp.tensor([0.1]).item() == 0.1
        np.testing.assert_array_equal((bp.tensor([1, 2]) / 3).numpy(), np.array([1, 2]) / 3)
    finally:
        bp.set_default_dtype(bp.float32)
    assert bp.zeros(1).dtype == bp.float32 and bp.tensor([1.0]).dtype == bp.float32


def test_set_default_device_gpu_moves_the_factories_and_new_modules():
    from conftest import gpu_or_skip

    gpu_or_skip()
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((4, 3)).astype(np.float32)
    try:
        bp.set_default_device("cuda")  # PyTorch's spelling of the accelerator
        assert bp.get_default_device() == bp.device("gpu")
        for t in [bp.zeros(2), bp.randn(2), bp.tensor([1.0]), bp.arange(3), bp.full((1,), 2), bp.eye(2),
                  bp.linspace(0, 1, 3), bp.randint(0, 3, (2,)), bp.empty(1)]:
            assert t.device.type == "gpu", t
        assert bp.from_numpy(np.ones(2, np.float32)).device.type == "cpu"  # shares the array's memory
        bp.manual_seed(0)
        lin = bp.nn.Linear(3, 2)
        assert all(p.device.type == "gpu" for p in lin.parameters())
        x = bp.tensor(xa)
        out = lin(x).relu().sum()
        out.backward()
        w, b = lin.weight.detach().to("cpu").numpy(), lin.bias.detach().to("cpu").numpy()
        got = lin.weight.grad.to("cpu").numpy()
    finally:
        bp.set_default_device(None)
    assert bp.zeros(1).device.type == "cpu"
    # `with torch.device(...)` blocks, nested, restore what was there
    with bp.device("gpu"):
        assert bp.ones(1).device.type == "gpu"
        with bp.device("cpu"):
            assert bp.ones(1).device.type == "cpu"
        assert bp.ones(1).device.type == "gpu"
    assert bp.ones(1).device.type == "cpu"
    # the same step computed in NumPy
    mask = (xa @ w.T + b) > 0
    np.testing.assert_allclose(got, mask.T.astype(np.float32) @ xa, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ apply_ / map_


@pytest.mark.parametrize("dtype", [bp.float32, bp.float64, bp.int64, bp.bool, bp.bfloat16])
def test_apply_and_map_call_python_per_element_in_row_major_order(dtype):
    rng = np.random.default_rng(2)
    base = rng.integers(-5, 6, (3, 4)).astype(np.float64)
    x = bp.tensor(base).to(dtype)
    seen = []

    def f(v):
        seen.append(v)
        return v * 3 if dtype != bp.bool else not v

    want_in = x.float().numpy().reshape(-1).tolist() if dtype == bp.bfloat16 else x.numpy().reshape(-1).tolist()
    assert x.apply_(f) is x
    assert seen == want_in  # every element once, row-major, as a Python scalar
    ref = np.array([f(v) for v in want_in]).reshape(3, 4)
    np.testing.assert_array_equal(x.float().numpy() if dtype == bp.bfloat16 else x.numpy(), ref)
    # map_: `other` broadcast over self's rows, the same dtype
    y = bp.tensor(base).to(dtype)
    row = bp.tensor(base[0]).to(dtype)
    y.map_(row, lambda a, b: a if dtype == bp.bool else a - b)
    want = base if dtype == bp.bool else base - base[0]
    got = y.float().numpy() if dtype in (bp.bfloat16, bp.bool) else y.numpy()
    np.testing.assert_array_equal(got, want.astype(bool).astype(np.float32) if dtype == bp.bool else want)


def test_apply_writes_through_a_view_and_keeps_the_rest():
    b = bp.arange(6.0).reshape(2, 3)
    b[:, ::2].apply_(lambda v: -v)
    np.testing.assert_array_equal(b.numpy(), [[-0.0, 1, -2], [-3, 4, -5]])
    s = bp.tensor(2.5)
    assert s.apply_(lambda v: v + 1).item() == 3.5


def test_apply_and_map_refuse_what_pytorch_refuses():
    with pytest.raises(RuntimeError, match=r"Can't call apply_\(\) on Variable that requires grad"):
        bp.ones(2, requires_grad=True).apply_(abs)
    with pytest.raises(RuntimeError, match=r"map_\(\) on Variable that requires grad"):
        bp.ones(2, requires_grad=True).map_(bp.ones(2), max)
    with pytest.raises(TypeError, match="map_: expected"):
        bp.ones(2).map_(bp.ones(2, dtype=bp.int64), max)
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        bp.ones(2).map_(bp.ones(3), max)
    x = bp.ones(2)
    with pytest.raises(TypeError, match="boom"):
        x.apply_(lambda v: (_ for _ in ()).throw(TypeError("boom")))
    np.testing.assert_array_equal(x.numpy(), [1.0, 1.0])  # an exception in fn writes nothing


def test_apply_is_cpu_only():
    gpu_or_skip()
    with pytest.raises(TypeError, match="apply_ is only implemented on CPU tensors"):
        bp.ones(2, device="gpu").apply_(abs)


def test_tensor_method_doc_examples_run():
    import doctest

    from backprop_rs import _tensor_methods

    failures, attempted = doctest.testmod(_tensor_methods, raise_on_error=False, verbose=False)
    assert attempted >= 2 and failures == 0
