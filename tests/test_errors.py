"""Bad input gets a clear exception of the usual kind; nothing crashes, nothing is lost."""

import numpy as np
import pytest

import backprop_rs as bp


def test_shape_mismatch_names_op_and_shapes():
    a, b = bp.ones(2, 3), bp.ones(4)
    with pytest.raises(ValueError, match=r"add.*\[2, 3\].*\[4\]"):
        a + b
    with pytest.raises(RuntimeError):  # ShapeError is also a RuntimeError, as in PyTorch
        a * b
    with pytest.raises(bp.ShapeError, match=r"matmul.*\[2, 3\].*\[2, 3\]"):
        a @ a


def test_reshape_and_view_errors():
    with pytest.raises(ValueError, match="reshape"):
        bp.ones(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match="view"):
        bp.ones(2, 3).t().view(6)
    with pytest.raises(ValueError, match="inferred"):
        bp.ones(6).reshape(-1, -1)


def test_dtype_mismatch():
    with pytest.raises(TypeError, match=r"matmul.*float32.*float64"):
        bp.ones(2, 2) @ bp.ones(2, 2, dtype=bp.float64)
    with pytest.raises(TypeError, match="int64"):
        bp.ones(3, 4).gather(1, bp.zeros(3, 1))
    with pytest.raises(TypeError, match="int64"):
        bp.nn.functional.nll_loss(bp.ones(2, 3), bp.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="probability targets"):
        bp.nn.functional.cross_entropy(bp.ones(2, 3), bp.tensor([0.5, 1.5]))


def test_device_errors():
    with pytest.raises(ValueError, match="unknown device"):
        bp.ones(2, device="tpu")


def test_index_errors():
    t = bp.ones(3, 4)
    with pytest.raises(IndexError, match="out of bounds|out of range"):
        t[3]
    with pytest.raises(IndexError):
        t[0, 0, 0]
    with pytest.raises(IndexError, match="dimension"):
        t.sum(dim=2)
    with pytest.raises(IndexError, match="out of bounds"):
        t.gather(1, bp.tensor([[4]] * 3))
    with pytest.raises(IndexError, match="out of bounds"):
        t.index_select(0, bp.tensor([-1]))
    with pytest.raises(IndexError, match="out of bounds"):
        bp.nn.functional.cross_entropy(t, bp.tensor([0, 1, 9]))


def test_huge_allocation_is_a_memory_error_and_the_interpreter_survives():
    with pytest.raises(MemoryError, match=r"shape \[1099511627776\].*float32"):
        bp.zeros(2**40)
    with pytest.raises(bp.ShapeError, match="exceed the int64 range"):
        bp.ones(2**40, 2**40)  # 2**80 elements: not even a size (PyTorch: RuntimeError)
    with pytest.raises(MemoryError):
        bp.randn(2**40)
    assert bp.ones(3).sum().item() == 3.0  # still fine


def test_invalid_arguments():
    with pytest.raises(ValueError, match="reduction"):
        bp.nn.functional.mse_loss(bp.ones(2), bp.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="step"):
        bp.arange(0, 10, 0)
    with pytest.raises(ValueError, match="dropout probability"):
        bp.nn.functional.dropout(bp.ones(2), p=1.5)
    with pytest.raises(ValueError, match="step must be greater than zero"):
        bp.ones(5)[::-1]
    with pytest.raises(TypeError):
        bp.tensor("abc")
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(bp.ones(2))
    with pytest.raises(RuntimeError):
        bp.tensor([]).max()


def test_errors_do_not_corrupt_state():
    w = bp.ones(3, requires_grad=True)
    with pytest.raises(ValueError):
        (w + bp.ones(4)).sum().backward()
    (w * 2).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2, 2, 2])


def test_no_panic_surfaces_as_base_exception():
    """PanicException derives from BaseException; make sure fuzzed bad calls only ever raise
    Exception subclasses."""
    cases = [
        lambda: bp.ones(2, 3).permute(0, 0),
        lambda: bp.ones(2, 3).permute(0),
        lambda: bp.ones(2, 3).transpose(0, 5),
        lambda: bp.ones(2, 3).narrow(1, 2, 5),
        lambda: bp.ones(2, 3).expand(3, 3),
        lambda: bp.ones(2, 3).expand(-2, 3),
        lambda: bp.cat([bp.ones(2, 3), bp.ones(2, 4)], 0),
        lambda: bp.cat([], 0),
        lambda: bp.stack([bp.ones(2), bp.ones(3)]),
        lambda: bp.ones(2, 3).split(0),
        lambda: bp.ones(3).scatter_add(0, bp.tensor([5]), bp.ones(1)),
        lambda: bp.ones(3).index_add(0, bp.tensor([0, 1]), bp.ones(3)),
        lambda: bp.ones(0).argmax(),
        lambda: bp.ones(2, 3).unflatten(1, (4, -1)),
        lambda: bp.eye(2**33),
        lambda: bp.full((2, -1), 1.0),
        lambda: bp.ones(2).softmax(3),
        lambda: bp.nn.functional.nll_loss(bp.ones(2, 3), bp.tensor([0])),
        lambda: bp.nn.functional.cross_entropy(bp.ones(3), bp.ones(4)),
        lambda: bp.ones(2)[bp.tensor([True, False, True])],
        lambda: bp.linspace(0, 1, -1),
    ]
    for i, c in enumerate(cases):
        # each must raise an ordinary Exception (pytest.raises(Exception) lets a BaseException
        # such as pyo3's PanicException through, failing the test) and never return a value
        with pytest.raises(Exception):
            c()
        assert i >= 0


def test_shapes_too_large_to_address_are_rejected():
    with pytest.raises(ValueError):
        bp.ones(1).expand(2**40, 2**40)
    with pytest.raises(ValueError):
        bp.ones(1).expand(2**62, 4)
    a = bp.ones(1).expand(2**31, 1)
    b = bp.ones(1).expand(1, 2**40)
    with pytest.raises(ValueError):
        a + b  # the broadcast shape would have 2**71 elements


def test_convolution_errors_name_the_shapes():
    F = bp.nn.functional
    with pytest.raises(ValueError, match=r"conv2d.*\[1, 3, 8, 8\].*\[4, 2, 3, 3\].*channels"):
        F.conv2d(bp.ones(1, 3, 8, 8), bp.ones(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d.*kernel size 5x5.*larger than the padded input 3x3"):
        F.conv2d(bp.ones(1, 1, 3, 3), bp.ones(1, 1, 5, 5))
    with pytest.raises(ValueError, match="max_pool2d.*larger than the padded input"):
        F.max_pool2d(bp.ones(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="4-d"):
        F.conv2d(bp.ones(8, 8), bp.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(bp.ones(1, 1, 4, 4), bp.ones(2, 1, 3, 3), bp.ones(3))
