"""DLPack: Tensor.__dlpack__ / __dlpack_device__, bp.from_dlpack and bp.utils.dlpack, checked by
writing through each side and reading the other (memory is shared, never copied), for the four
dtypes, strided views and legacy capsules; the refusals PyTorch makes, and the GPU's."""

import gc

import numpy as np
import pytest

import backprop_rs as bp
from conftest import gpu_or_skip

DTYPES = [(bp.float32, np.float32), (bp.float64, np.float64), (bp.int64, np.int64), (bp.bool, np.bool_)]


def values(npdt, shape):
    a = np.arange(int(np.prod(shape))).reshape(shape)
    return (a % 2 == 0) if npdt is np.bool_ else a.astype(npdt)


def one(npdt):
    return np.True_ if npdt is np.bool_ else npdt(-7)


@pytest.mark.parametrize("dtype,npdt", DTYPES)
def test_numpy_reads_and_writes_a_tensor_through_dlpack(dtype, npdt):
    t = bp.from_numpy(values(npdt, (3, 4)).copy())
    assert t.dtype == dtype and t.__dlpack_device__() == (1, 0)
    a = np.from_dlpack(t)
    assert a.dtype == npdt and a.shape == (3, 4)
    np.testing.assert_array_equal(a, t.numpy())
    a[1, 2] = one(npdt)  # the consumer's write is the tensor's
    assert t[1, 2].item() == one(npdt).item()
    t[0, 0] = one(npdt)  # and the other way
    assert a[0, 0] == one(npdt)


@pytest.mark.parametrize("dtype,npdt", DTYPES)
def test_from_dlpack_shares_numpy_memory_both_ways(dtype, npdt):
    a = values(npdt, (2, 5)).copy()
    t = bp.from_dlpack(a)
    assert t.dtype == dtype and tuple(t.shape) == (2, 5)
    a[1, 1] = one(npdt)
    assert t[1, 1].item() == one(npdt).item()
    t[0, 3] = one(npdt)
    assert a[0, 3] == one(npdt)


def test_strided_views_keep_their_strides():
    t = bp.arange(12.0).reshape(3, 4)
    view = t.t()[1:, ::2]  # a non-contiguous view: DLPack carries strides, nothing is copied
    a = np.from_dlpack(view)
    assert a.shape == tuple(view.shape)
    assert tuple(s // a.itemsize for s in a.strides) == tuple(view.stride())
    np.testing.assert_array_equal(a, view.numpy())
    a[0, 1] = 100.0
    assert view[0, 1].item() == 100.0 and t.numpy()[2, 1] == 100.0
    base = np.arange(24.0).reshape(4, 6)
    strided = base[::2, 1::3]
    s = bp.from_dlpack(strided)
    assert tuple(s.stride()) == (12, 3) and not s.is_contiguous()
    s[1, 1] = -1.0
    assert base[2, 4] == -1.0


def test_the_export_keeps_the_storage_alive():
    t = bp.arange(5.0) * 2.0
    a = np.from_dlpack(t)
    cap = bp.utils.dlpack.to_dlpack(bp.arange(3.0) + 1.0)  # the only reference to that tensor
    del t
    gc.collect()
    np.testing.assert_array_equal(a, [0.0, 2.0, 4.0, 6.0, 8.0])
    back = bp.utils.dlpack.from_dlpack(cap)  # a legacy capsule, still writable
    gc.collect()
    np.testing.assert_array_equal(back.numpy(), [1.0, 2.0, 3.0])
    back[0] = 5.0
    assert back.numpy()[0] == 5.0


def test_round_trip_between_tensors_shares_memory():
    t = bp.zeros(4)
    u = bp.from_dlpack(t)
    u[2] = 3.0
    assert t[2].item() == 3.0
    assert bp.from_dlpack(bp.tensor(4.0)).item() == 4.0  # 0-d


def test_refusals():
    x = bp.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="Can't export tensors that require gradient, use tensor.detach()"):
        x.__dlpack__()
    with pytest.raises(RuntimeError, match="require gradient"):
        bp.from_dlpack(x)
    np.from_dlpack(x.detach())  # detached, it goes
    with pytest.raises(TypeError, match="uint16"):
        bp.from_dlpack(np.arange(3, dtype=np.uint16))  # would need a converting copy
    i32 = np.arange(3, dtype=np.int32)
    t = bp.from_dlpack(i32)
    assert t.dtype == bp.int32 and np.shares_memory(t.numpy(), i32)
    ro = np.arange(3.0)
    ro.flags.writeable = False
    with pytest.raises(BufferError):
        bp.from_dlpack(ro)


def test_gpu_tensors_are_not_exported():
    gpu_or_skip()
    t = bp.ones(3, device="gpu")
    for call in (t.__dlpack__, t.__dlpack_device__, lambda: np.from_dlpack(t)):
        with pytest.raises(BufferError, match="wgpu"):
            call()
