"""NumPy interop: memory sharing, strides, byte order, NumPy 2 copy semantics."""

import numpy as np
import pytest

import backprop_rs as bp


def test_from_numpy_shares_memory_both_ways():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = bp.from_numpy(a)
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    t[1, 2] = -1.0
    assert a[1, 2] == -1.0
    assert t.dtype == bp.float32


def test_float64_stays_float64():
    a = np.random.rand(3)
    assert bp.from_numpy(a).dtype == bp.float64
    assert bp.tensor(a).dtype == bp.float64
    assert bp.tensor([1.0, 2.0]).dtype == bp.float32  # Python floats default to float32
    assert bp.tensor([1, 2]).dtype == bp.int64
    assert bp.tensor([True]).dtype == bp.bool


def test_numpy_of_contiguous_tensor_shares_memory():
    t = bp.arange(6).float().reshape(2, 3).contiguous()
    a = t.numpy()
    t[0, 1] = 100.0
    assert a[0, 1] == 100.0
    assert a.ctypes.data == t.data_ptr()


def test_fortran_order_and_strided_arrays_share_memory_and_read_correctly():
    f = np.asfortranarray(np.random.rand(3, 4))
    t = bp.from_numpy(f)
    np.testing.assert_array_equal(t.numpy(), f)
    assert not t.is_contiguous()
    s = np.random.rand(5, 6)[::2, 1::2]
    ts = bp.from_numpy(s)
    np.testing.assert_array_equal(ts.numpy(), s)
    np.testing.assert_allclose((ts * 2).numpy(), s * 2)


def test_non_native_byte_order_and_negative_strides_are_copied_correctly():
    be = np.arange(5, dtype=">f4")
    np.testing.assert_array_equal(bp.from_numpy(be).numpy(), np.arange(5, dtype=np.float32))
    rev = np.arange(5.0)[::-1]
    np.testing.assert_array_equal(bp.from_numpy(rev).numpy(), rev)


def test_other_numpy_dtypes_convert():
    # the dtypes both have keep their dtype; the rest widen
    for nd, bd in ((np.int32, bp.int32), (np.int16, bp.int16), (np.int8, bp.int8), (np.uint8, bp.uint8),
                   (np.float16, bp.float16), (np.uint16, bp.int64), (np.uint32, bp.int64)):
        assert bp.tensor(np.arange(3, dtype=nd)).dtype == bd, nd
    shared = np.arange(4, dtype=np.float16)
    t = bp.from_numpy(shared)
    assert t.dtype == bp.float16 and np.shares_memory(t.numpy(), shared)
    shared[0] = 7  # from_numpy shares memory, as in PyTorch
    assert t[0].item() == 7.0
    with pytest.raises(TypeError):
        bp.tensor(np.array([1 + 2j]))


def test_array_protocol_with_copy_semantics():
    t = bp.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert a.dtype == np.float32 and np.shares_memory(a, t.numpy())
    c = np.array(t, copy=True)
    c[0, 0] = 9
    assert t[0, 0].item() == 1.0
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        with pytest.raises(ValueError):
            np.asarray(t, dtype=np.float64, copy=False)


def test_numpy_refuses_tensors_that_require_grad():
    t = bp.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    np.testing.assert_array_equal(t.detach().numpy(), [1, 1])


def test_expanded_views_export_as_copies():
    t = bp.tensor([1.0, 2.0]).expand(3, 2)
    a = t.numpy()
    np.testing.assert_array_equal(a, [[1, 2]] * 3)
    a[0, 0] = 7  # writing the export must not change three elements of the source
    assert t[1, 0].item() == 1.0


def test_numpy_array_keeps_tensor_memory_alive():
    import gc

    n = 100_000  # large enough for the engine's buffer pool, which reuses freed memory
    a = (bp.arange(n).float() * 2).numpy()
    gc.collect()
    # if the array viewed freed memory, these allocations (the same size) would reuse it and
    # overwrite what the array shows
    others = [bp.full((n,), -7.0) for _ in range(8)]
    np.testing.assert_array_equal(a, np.arange(n, dtype=np.float32) * 2)
    assert all(o[0].item() == -7.0 for o in others)


def test_numpy_operands_in_arithmetic():
    t = bp.tensor([1.0, 2.0])
    r = t + np.array([1.0, 1.0])
    assert isinstance(r, bp.Tensor)
    r2 = np.array([1.0, 1.0], dtype=np.float32) + t  # __array_priority__ makes the tensor win
    assert isinstance(r2, bp.Tensor)
    np.testing.assert_allclose(r2.numpy(), [2.0, 3.0])


def test_tolist_and_item():
    assert bp.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert isinstance(bp.tensor(3).item(), int)
    assert isinstance(bp.tensor(2.5).item(), float)
    assert bp.tensor(True).item() is True
