"""Indexing and assignment vs NumPy."""

import numpy as np
import pytest

import backprop_rs as bp


@pytest.mark.parametrize(
    "key",
    [
        1, -1, slice(1, 3), (slice(None), 2), (1, slice(None, None, 2)), (Ellipsis, 1), (None, 0),
        (slice(1, None), None, slice(None, 3)), (slice(-3, -1),), (slice(10, 20),), (0, 1, 2),
        ([0, 2],), (slice(None), [3, 0, 0]), ([1, 2], [0, 3]), (np.array([0, 1]), 2),
    ],
)
def test_getitem_matches_numpy(key):
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    t = bp.tensor(a)
    k = tuple(bp.tensor(x) if isinstance(x, list) else x for x in key) if isinstance(key, tuple) else key
    np.testing.assert_array_equal(t[k].numpy(), a[key])


def test_basic_indexing_returns_views():
    t = bp.zeros(3, 4)
    v = t[1]
    v[2] = 5.0
    assert t[1, 2].item() == 5.0
    s = t[:, ::2]
    assert s.data_ptr() == t.data_ptr()


def test_bool_mask_indexing_and_assignment():
    a = np.random.randn(4, 3).astype(np.float32)
    t = bp.tensor(a)
    np.testing.assert_array_equal(t[t > 0].numpy(), a[a > 0])
    t[t < 0] = 0.0
    np.testing.assert_array_equal(t.numpy(), np.where(a < 0, 0, a))


def test_setitem_forms():
    t = bp.zeros(3, 4)
    t[0] = 1.0
    t[1, 1:3] = bp.tensor([2.0, 3.0])
    t[:, 3] = bp.tensor([7.0, 8.0, 9.0])
    t[bp.tensor([2, 2])] = 4.0
    expected = np.zeros((3, 4), np.float32)
    expected[0] = 1
    expected[1, 1:3] = [2, 3]
    expected[:, 3] = [7, 8, 9]
    expected[2] = 4
    np.testing.assert_array_equal(t.numpy(), expected)


def test_setitem_on_leaf_requiring_grad_needs_no_grad():
    w = bp.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        w[0] = 1.0
    with bp.no_grad():
        w[0] = 1.0
    assert w[0].item() == 1.0


def test_overlapping_self_assignment_reads_before_writing():
    t = bp.arange(6).float()
    t[1:] = t[:-1]
    np.testing.assert_array_equal(t.numpy(), [0, 0, 1, 2, 3, 4])


def test_iteration_and_len():
    t = bp.tensor([[1, 2], [3, 4]])
    assert len(t) == 2
    assert [r.tolist() for r in t] == [[1, 2], [3, 4]]
