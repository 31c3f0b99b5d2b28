"""The GPU past every limit a driver imposes, for every kernel family: more than 65535
workgroups per grid dimension, every shader loop bound (llvmpipe, the CI device, stops an
invocation's loops after 65535 iterations in total, so the host splits long loops), and the
storage-binding limit (128 MiB on lavapipe), which must give a typed error, never a crash or a
truncated result. References are exact where the arithmetic is (sums of ones, integer data) and
NumPy's otherwise, with stated tolerances.

Runs on lavapipe in CI (BACKPROP_REQUIRE_GPU=1); sizes are the smallest that cross each limit.
"""

import numpy as np
import pytest

import backprop_rs as bp
from conftest import gpu_or_skip

GROUPS = 65535 * 256 + 1000  # elements: one thread each, more than 65535 workgroups of 256


@pytest.fixture(autouse=True)
def _gpu():
    gpu_or_skip()
    yield
    bp.gpu.empty_cache()


def _limit_bytes():
    return bp.gpu.adapter_info()["limits"]["max_storage_buffer_binding_size"]


# ------------------------------------------------------------------ loop bounds


@pytest.mark.parametrize("k", [70_000, 200_003])
def test_matmul_inner_dimension_past_the_loop_cap(k):
    # the example: 58254 on lavapipe before K was split over accumulating dispatches
    a, b = bp.ones(1, k, device="gpu"), bp.ones(k, 1, device="gpu")
    assert (a @ b).item() == float(k)
    x = np.random.default_rng(0).integers(-3, 4, (3, k)).astype(np.float32)
    y = np.random.default_rng(1).integers(-3, 4, (k, 2)).astype(np.float32)
    got = (bp.tensor(x, device="gpu") @ bp.tensor(y, device="gpu")).numpy()
    np.testing.assert_array_equal(got, x.astype(np.int64) @ y.astype(np.int64))


def test_int64_matmul_inner_dimension_past_the_loop_cap():
    k = 40_000
    x = np.random.default_rng(2).integers(-(2**40), 2**40, (2, k))
    y = np.random.default_rng(3).integers(-5, 6, (k, 2))
    got = (bp.tensor(x, device="gpu") @ bp.tensor(y, device="gpu")).numpy()
    np.testing.assert_array_equal(got, x @ y)


def test_weight_gradient_of_a_large_batch():
    # the gradient of W in x @ W sums over the batch: a long inner dimension of the backward
    n = 70_000
    x = bp.ones(n, 3, device="gpu")
    w = bp.ones(3, 2, device="gpu", requires_grad=True)
    (x @ w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 2), float(n)))


def test_softmax_of_a_row_past_the_loop_cap():
    n = 3_000_000  # longer than one workgroup's loop budget: composed from reduce + elementwise
    x = np.random.default_rng(4).normal(size=n).astype(np.float32)
    t = bp.tensor(x, device="gpu")
    ref = np.exp(x.astype(np.float64) - x.max())
    ref /= ref.sum()
    np.testing.assert_allclose(t.softmax(0).numpy(), ref, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(t.log_softmax(0).numpy(), np.log(ref), rtol=1e-4, atol=1e-4)


def test_reductions_of_long_lines():
    n = 5_000_000
    ones = bp.ones(n, device="gpu")
    assert ones.sum().item() == float(n)
    ints = bp.ones(n, dtype=bp.int64, device="gpu") * (2**33)
    assert ints.sum().item() == n * 2**33
    x = np.zeros(n, np.float32)
    x[4_321_987] = 5.0
    t = bp.tensor(x, device="gpu")
    assert t.argmax().item() == 4_321_987 and t.amax().item() == 5.0
    # many short lines with many kept dims (the thin kernel's budget includes its offset loops)
    y = np.random.default_rng(5).normal(size=(2, 3, 2, 3, 2, 3, 2, 3, 2, 40)).astype(np.float32)
    np.testing.assert_allclose(bp.tensor(y, device="gpu").sum(9).numpy(), y.sum(9), rtol=1e-5, atol=1e-5)


def test_fold_with_a_kernel_past_the_loop_cap():
    # fold (the backward of unfold, i.e. of every convolution) loops over the kernel positions
    k = 190  # 36100 positions
    x = np.random.default_rng(6).normal(size=(1, 1, k, k)).astype(np.float32)
    t = bp.tensor(x, device="gpu", requires_grad=True)
    cols = bp.nn.functional.unfold(t, k)
    assert cols.shape == (1, k * k, 1)
    back = bp.nn.functional.fold(cols, (k, k), k)
    np.testing.assert_allclose(back.detach().numpy(), x, rtol=1e-6)
    (cols * 2).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), np.full_like(x, 2.0))


# ------------------------------------------------------------------ more than 65535 workgroups


def test_elementwise_family_past_65535_workgroups():
    x = bp.rand(GROUPS, device="gpu")
    y = (x * 2 + 1).exp().log()
    assert ((y - (x * 2 + 1)).abs().amax().item()) < 1e-5
    assert bp.where(x > 0.5, x, -x).amin().item() >= -0.5
    assert not (x >= 1.0).any().item()
    s = bp.zeros(2, GROUPS // 2 + 1, device="gpu")
    s[:, ::2] = 1.0  # strided copy_into
    assert s.sum().item() == 2 * ((GROUPS // 2 + 2) // 2)


def test_reduce_and_index_families_past_65535_workgroups():
    rows = 70_000
    x = np.random.default_rng(7).normal(size=(rows, 3)).astype(np.float32)
    t = bp.tensor(x, device="gpu")
    np.testing.assert_allclose(t.sum(1).numpy(), x.sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(t.argmax(1).numpy(), x.argmax(1))
    np.testing.assert_allclose(t.softmax(1).numpy().sum(1), np.ones(rows), rtol=1e-5)
    # gather/scatter over an expanded index: many threads, a tiny index buffer
    big = bp.arange(2 * (GROUPS // 2), dtype=bp.float32, device="gpu").reshape(2, -1)
    picked = big.index_select(0, bp.tensor([1, 0], device="gpu"))
    assert picked[0, -1].item() == big[1, -1].item() and picked[1, 5].item() == 5.0
    # (float32 stops counting at 2^24, so the counts are spread over 4 buckets: exact)
    n = GROUPS // 4 + 1
    idx = bp.zeros(4, 1, dtype=bp.int64, device="gpu").expand(4, n)
    acc = bp.zeros(4, 1, device="gpu").scatter_add(1, idx, bp.ones(4, n, device="gpu"))
    assert acc.tolist() == [[float(n)]] * 4


def test_matmul_batches_past_65535_workgroups():
    b = 70_000
    x = np.random.default_rng(8).normal(size=(b, 1, 2)).astype(np.float32)
    y = np.random.default_rng(9).normal(size=(b, 2, 1)).astype(np.float32)
    np.testing.assert_allclose((bp.tensor(x, device="gpu") @ bp.tensor(y, device="gpu")).numpy(), x @ y,
                               rtol=1e-5, atol=1e-6)


def test_optimizer_step_past_65535_workgroups():
    p = bp.nn.Parameter(bp.ones(GROUPS, device="gpu"))
    opt = bp.optim.Adam([p], lr=0.1)
    p.grad = bp.ones(GROUPS, device="gpu")
    opt.step()
    # Adam's first step moves every element by lr (m / sqrt(v) = 1 after bias correction)
    assert p.detach().amax().item() == pytest.approx(0.9, abs=1e-6)
    assert p.detach().amin().item() == pytest.approx(0.9, abs=1e-6)


# ------------------------------------------------------------------ the storage-binding limit


def test_tensors_past_the_binding_limit_are_typed_errors_in_every_family():
    limit = _limit_bytes()
    words = limit // 4
    with pytest.raises(RuntimeError, match="largest storage buffer binding"):
        bp.zeros(words + 1, device="gpu")  # elementwise fill
    with pytest.raises(RuntimeError, match="largest storage buffer binding"):
        bp.zeros(words // 2 + 1, dtype=bp.int64, device="gpu")  # int64 takes two words
    ok = bp.ones(1, device="gpu")
    with pytest.raises(RuntimeError, match="largest storage buffer binding"):
        ok.expand(words + 1).contiguous()  # copy
    side = int((words + 1) ** 0.5) + 1
    a = bp.ones(side, 1, device="gpu")
    with pytest.raises(RuntimeError, match="largest storage buffer binding"):
        a @ a.T  # matmul output
    with pytest.raises(RuntimeError, match="largest storage buffer binding"):
        bp.nn.functional.unfold(bp.ones(1, 1, 2000, 2000, device="gpu"), 3, padding=1)  # 9 x 4M columns
    # the device is still usable afterwards
    assert (ok + 1).item() == 2.0
