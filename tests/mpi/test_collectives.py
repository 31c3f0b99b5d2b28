"""Every collective against NumPy, on every rank: sizes 0, 1, odd and 10^7 elements, every
dtype, every op, blocking and async. Rank r's input is a pure function of (seed, r), so each
rank computes the whole world's inputs and the expected result with NumPy.

Tolerances: integers and bools are exact, as are MIN/MAX and data movement. Float SUM, AVG and
PRODUCT are compared with rtol 1e-6 (float32) / 1e-14 (float64): MPI may combine the (at most
3) ranks in another order than NumPy, which moves the result by a few ulp; the inputs are
positive, so there is no cancellation to magnify it. The 10^7-element runs use integer-valued
floats, whose sums are exact in any order, and compare exactly.
"""

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.distributed as dist
from backprop_rs.distributed import ReduceOp

DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}
SIZES = [0, 1, 7, 1001]
OPS = [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.BAND, ReduceOp.BOR,
       ReduceOp.BXOR]
BIG = 10 ** 7


def rank():
    return dist.get_rank()


def world():
    return dist.get_world_size()


def inputs(dtype, n, seed, r):
    """Rank r's input: floats in [0.5, 1.5) (products stay near 1), ints in [-5, 5], random bools."""
    rng = np.random.default_rng([seed, r, n])
    dt = DTYPES[dtype]
    if dt == np.bool_:
        return rng.random(n) < 0.5
    if np.dtype(dt).kind == "i":
        return rng.integers(-5, 6, n).astype(dt)
    return rng.uniform(0.5, 1.5, n).astype(dt)


def everyone(dtype, n, seed):
    return np.stack([inputs(dtype, n, seed, r) for r in range(world())]) if world() else None


def valid(op, dtype):
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and dtype.startswith("float"):
        return False
    return not (op is ReduceOp.AVG and dtype == "bool")


def expected(op, x):
    """NumPy's reduction over axis 0 (the ranks), with PyTorch's bool and integer-average rules."""
    n = x.shape[0]
    if x.dtype == np.bool_:
        return {ReduceOp.SUM: x.any(0), ReduceOp.MAX: x.any(0), ReduceOp.PRODUCT: x.all(0), ReduceOp.MIN: x.all(0),
                ReduceOp.BAND: x.all(0), ReduceOp.BOR: x.any(0),
                ReduceOp.BXOR: np.logical_xor.reduce(x, 0)}[op]
    if op is ReduceOp.AVG:
        s = x.sum(0)
        if x.dtype.kind == "i":
            return (np.sign(s) * (np.abs(s) // n)).astype(x.dtype)  # truncation toward zero
        return (s / x.dtype.type(n)).astype(x.dtype)
    return {ReduceOp.SUM: lambda: x.sum(0, dtype=x.dtype), ReduceOp.PRODUCT: lambda: x.prod(0, dtype=x.dtype),
            ReduceOp.MIN: lambda: x.min(0), ReduceOp.MAX: lambda: x.max(0),
            ReduceOp.BAND: lambda: np.bitwise_and.reduce(x, 0), ReduceOp.BOR: lambda: np.bitwise_or.reduce(x, 0),
            ReduceOp.BXOR: lambda: np.bitwise_xor.reduce(x, 0)}[op]()


def assert_matches(got, want, op=ReduceOp.SUM):
    got = np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    if want.dtype.kind == "f" and op in (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT):
        np.testing.assert_allclose(got, want, rtol=1e-6 if want.dtype == np.float32 else 1e-14, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


def tensor(a):
    return bp.from_numpy(np.ascontiguousarray(a).copy())


# ---------------------------------------------------------------------------- all_reduce


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_all_reduce(dtype, op, size):
    x = everyone(dtype, size, 1)
    t = tensor(x[rank()])
    if not valid(op, dtype):
        with pytest.raises(RuntimeError, match="Cannot use ReduceOp"):
            dist.all_reduce(t, op=op)
        return
    dist.all_reduce(t, op=op)
    assert_matches(t.numpy(), expected(op, x), op)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_all_reduce_async_and_string_ops(dtype):
    x = everyone(dtype, 33, 2)
    t = tensor(x[rank()])
    work = dist.all_reduce(t, op="max", async_op=True)
    assert isinstance(work, dist.Work)
    assert work.wait() is True and work.is_completed() and work.is_success()
    assert work.result()[0] is t
    assert_matches(t.numpy(), expected(ReduceOp.MAX, x))


def test_all_reduce_shares_memory_with_numpy():
    # zero-copy: MPI writes the NumPy array the tensor was made from, and the tensor's address stays
    a = np.full(5, rank() + 1, np.float32)
    t = bp.from_numpy(a)
    ptr = t.data_ptr()
    dist.all_reduce(t)
    assert t.data_ptr() == ptr
    np.testing.assert_array_equal(a, np.full(5, world() * (world() + 1) / 2, np.float32))


def test_all_reduce_of_views_and_strided_tensors():
    base = bp.zeros(4, 6) + (rank() + 1)
    view = base[1:3]  # a contiguous view: reduced in place, the rest of base untouched
    dist.all_reduce(view)
    total = world() * (world() + 1) / 2
    want = np.full((4, 6), rank() + 1, np.float32)
    want[1:3] = total
    np.testing.assert_array_equal(base.numpy(), want)
    strided = (bp.zeros(3, 5) + (rank() + 1)).t()  # not contiguous: staged and written back
    assert not strided.is_contiguous()
    dist.all_reduce(strided)
    np.testing.assert_array_equal(strided.numpy(), np.full((5, 3), total, np.float32))


def test_all_reduce_of_a_scalar_and_of_a_parameter():
    s = bp.tensor(float(rank()))
    dist.all_reduce(s)
    assert s.item() == sum(range(world()))
    p = bp.nn.Parameter(bp.ones(3))
    dist.all_reduce(p)  # a leaf that requires grad: reduced through its data, as in PyTorch
    np.testing.assert_array_equal(p.detach().numpy(), np.full(3, world(), np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_all_reduce_ten_million(dtype):
    # integer-valued floats: every summation order gives the exact sum
    r = rank()
    a = ((np.arange(BIG) * (r + 1)) % 17).astype(DTYPES[dtype])
    t = bp.from_numpy(a)
    dist.all_reduce(t)
    want = sum(((np.arange(BIG) * (q + 1)) % 17) for q in range(world())).astype(DTYPES[dtype])
    np.testing.assert_array_equal(a, want)


# ---------------------------------------------------------------------------- reduce, broadcast


@pytest.mark.parametrize("op", [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX, ReduceOp.PRODUCT], ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_reduce_to_each_root(dtype, op):
    x = everyone(dtype, 9, 3)
    for dst in range(world()):
        t = tensor(x[rank()])
        dist.reduce(t, dst=dst, op=op)
        assert_matches(t.numpy(), expected(op, x) if rank() == dst else x[rank()], op)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_broadcast_from_each_rank(dtype, size):
    x = everyone(dtype, size, 4)
    for src in range(world()):
        t = tensor(x[rank()])
        assert dist.broadcast(t, src=src) is None
        assert_matches(t.numpy(), x[src])


def test_broadcast_async_and_ten_million():
    a = np.arange(BIG, dtype=np.int64) * (rank() + 1)
    t = bp.from_numpy(a)
    w = dist.broadcast(t, src=world() - 1, async_op=True)
    w.wait()
    np.testing.assert_array_equal(a, np.arange(BIG, dtype=np.int64) * world())


# ---------------------------------------------------------------------------- gathers and scatters


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_all_gather(dtype, size):
    x = everyone(dtype, size, 5)
    out = [bp.zeros(size, dtype=getattr(bp, "bool" if dtype == "bool" else dtype)) for _ in range(world())]
    dist.all_gather(out, tensor(x[rank()]))
    for r in range(world()):
        assert_matches(out[r].numpy(), x[r])


@pytest.mark.parametrize("layout", ["concat", "stack"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_all_gather_into_tensor(dtype, size, layout):
    x = everyone(dtype, size, 6)
    shape = (world() * size,) if layout == "concat" else (world(), size)
    out = tensor(np.zeros(shape, DTYPES[dtype]))
    dist.all_gather_into_tensor(out, tensor(x[rank()]))
    assert_matches(out.numpy(), x.reshape(shape))


def test_all_gather_into_tensor_async_ten_million():
    n = BIG
    a = np.full(n, rank(), np.float32)
    out = bp.zeros(world() * n)
    w = dist.all_gather_into_tensor(out, bp.from_numpy(a), async_op=True)
    assert w.wait()
    np.testing.assert_array_equal(out.numpy(), np.repeat(np.arange(world(), dtype=np.float32), n))


@pytest.mark.parametrize("layout", ["concat", "stack"])
@pytest.mark.parametrize("size", [0, 1, 7])
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_reduce_scatter_tensor(dtype, op, size, layout):
    x = everyone(dtype, world() * size, 7)  # each rank's input holds world * size elements
    shape = (world() * size,) if layout == "concat" else (world(), size)
    out = tensor(np.zeros(size, DTYPES[dtype]))
    inp = tensor(x[rank()].reshape(shape))
    if not valid(op, dtype):
        with pytest.raises(RuntimeError, match="Cannot use ReduceOp"):
            dist.reduce_scatter_tensor(out, inp, op=op)
        return
    dist.reduce_scatter_tensor(out, inp, op=op)
    assert_matches(out.numpy(), expected(op, x)[rank() * size:(rank() + 1) * size], op)


def test_reduce_scatter_tensor_async_ten_million():
    per = -(-BIG // world())
    a = ((np.arange(world() * per) + rank()) % 13).astype(np.float32)
    out = bp.zeros(per)
    dist.reduce_scatter_tensor(out, bp.from_numpy(a), async_op=True).wait()
    want = sum(((np.arange(world() * per) + q) % 13) for q in range(world())).astype(np.float32)
    np.testing.assert_array_equal(out.numpy(), want[rank() * per:(rank() + 1) * per])


@pytest.mark.parametrize("size", [0, 1, 7])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_gather_to_each_root(dtype, size):
    x = everyone(dtype, size, 8)
    for dst in range(world()):
        outs = [tensor(np.zeros(size, DTYPES[dtype])) for _ in range(world())] if rank() == dst else None
        dist.gather(tensor(x[rank()]), outs, dst=dst)
        if rank() == dst:
            for r in range(world()):
                assert_matches(outs[r].numpy(), x[r])


@pytest.mark.parametrize("size", [0, 1, 7])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_scatter_from_each_root(dtype, size):
    x = everyone(dtype, size, 9)
    for src in range(world()):
        t = tensor(np.zeros(size, DTYPES[dtype]))
        dist.scatter(t, [tensor(x[r]) for r in range(world())] if rank() == src else None, src=src)
        assert_matches(t.numpy(), x[rank()])


def test_async_gather_and_scatter():
    x = everyone("float64", 5, 10)
    outs = [bp.zeros(5, dtype=bp.float64) for _ in range(world())] if rank() == 0 else None
    dist.gather(tensor(x[rank()]), outs, dst=0, async_op=True).wait()
    if rank() == 0:
        np.testing.assert_array_equal(np.stack([o.numpy() for o in outs]), x)
    t = bp.zeros(5, dtype=bp.float64)
    work = dist.scatter(t, [tensor(x[r]) for r in range(world())] if rank() == 0 else None, src=0, async_op=True)
    work.wait()
    np.testing.assert_array_equal(t.numpy(), x[rank()])


def test_objects():
    got = [None] * world()
    dist.all_gather_object(got, {"rank": rank(), "sq": rank() ** 2})
    assert got == [{"rank": r, "sq": r * r} for r in range(world())]
    lst = ["from root", 7] if rank() == 0 else [None, None]
    dist.broadcast_object_list(lst, src=0)
    assert lst == ["from root", 7]


# ---------------------------------------------------------------------------- point to point


def test_ring_with_isend_irecv():
    nxt, prv = (rank() + 1) % world(), (rank() - 1) % world()
    out = bp.arange(4, dtype=bp.float64) + 100 * rank()
    got = bp.zeros(4, dtype=bp.float64)
    reqs = [dist.isend(out, nxt, tag=3), dist.irecv(got, prv, tag=3)]
    for w in reqs:
        w.wait()
    assert reqs[1].source_rank() == prv
    np.testing.assert_array_equal(got.numpy(), np.arange(4) + 100 * prv)


def test_send_recv_from_any_source_and_tags():
    if rank() == 0:
        senders = set()
        for _ in range(world() - 1):
            t = bp.zeros(2, dtype=bp.int64)
            src = dist.recv(t, tag=9)
            senders.add(src)
            np.testing.assert_array_equal(t.numpy(), [src, -src])
        assert senders == set(range(1, world()))
    else:
        dist.send(bp.tensor([rank(), -rank()]), 0, tag=9)


def test_recv_of_the_wrong_shape_is_an_error_not_corruption():
    if rank() == 0:
        dist.send(bp.ones(5), 1)
    elif rank() == 1:
        t = bp.zeros(4)
        with pytest.raises(RuntimeError, match=r"rank 0 sent a float32 tensor of shape \(5,\).*shape \(4,\)"):
            dist.recv(t, 0)
        np.testing.assert_array_equal(t.numpy(), np.zeros(4, np.float32))  # untouched
    dist.barrier()


def test_send_to_self_is_refused():
    with pytest.raises(ValueError, match="same as the rank of the current process"):
        dist.send(bp.ones(1), rank())


# ---------------------------------------------------------------------------- mismatches raise on every rank


def test_mismatched_shapes_raise_everywhere():
    n = 3 if rank() == 0 else 4
    with pytest.raises(RuntimeError, match=r"mismatched collectives.*rank 0: all_reduce.*shape \(3,\)"):
        dist.all_reduce(bp.ones(n))


def test_mismatched_dtypes_raise_everywhere():
    t = bp.ones(3, dtype=bp.float64) if rank() == world() - 1 else bp.ones(3)
    with pytest.raises(RuntimeError, match="float64"):
        dist.broadcast(t, src=0)


def test_mismatched_collectives_raise_everywhere():
    with pytest.raises(RuntimeError, match="mismatched collectives"):
        if rank() == 0:
            dist.all_reduce(bp.ones(3))
        else:
            dist.broadcast(bp.ones(3), src=0)


def test_mismatched_ops_and_roots_raise_everywhere():
    with pytest.raises(RuntimeError, match="op=MAX"):
        dist.all_reduce(bp.ones(2), op=ReduceOp.MAX if rank() == 0 else ReduceOp.SUM)
    with pytest.raises(RuntimeError, match="src="):
        dist.broadcast(bp.ones(2), src=rank())


def test_a_bad_argument_on_one_rank_raises_everywhere():
    outs = [bp.zeros(2) for _ in range(world() + (1 if rank() == 0 else 0))]
    if rank() == 0:
        with pytest.raises(ValueError, match="world_size"):
            dist.all_gather(outs, bp.ones(2))
    else:
        with pytest.raises(RuntimeError, match="rank 0 rejected its arguments"):
            dist.all_gather(outs, bp.ones(2))


def test_argument_errors():
    with pytest.raises(TypeError, match="Tensor"):
        dist.all_reduce(np.ones(3))
    with pytest.raises(ValueError, match="Invalid src rank"):
        dist.broadcast(bp.ones(1), src=world())
    with pytest.raises(ValueError, match="unknown reduce op"):
        dist.all_reduce(bp.ones(1), op="mean")
    with pytest.raises(ValueError, match="world_size"):
        dist.all_gather_into_tensor(bp.zeros(world() * 2 + 1), bp.ones(2))
    with pytest.raises(ValueError, match="same dtype"):
        dist.reduce_scatter_tensor(bp.zeros(1, dtype=bp.float64), bp.ones(world()))


def test_gather_list_on_a_non_destination_rank():
    outs = [bp.zeros(1) for _ in range(world())]
    if rank() == 0:
        with pytest.raises(RuntimeError, match="rank 1 rejected its arguments"):
            dist.gather(bp.ones(1), outs, dst=0)
    else:
        with pytest.raises(ValueError, match="NOT be specified on non-destination"):
            dist.gather(bp.ones(1), outs, dst=0)


# ---------------------------------------------------------------------------- GPU tensors (staged through the host)


def test_gpu_tensors_are_staged_through_the_host(gpu):
    x = everyone("float32", 257, 11)
    t = tensor(x[rank()]).to("gpu")
    dist.all_reduce(t)
    assert t.device.type == "gpu"
    assert_matches(t.cpu().numpy(), expected(ReduceOp.SUM, x))
    i = tensor(everyone("int64", 5, 12)[rank()]).to("gpu")
    dist.all_reduce(i, op=ReduceOp.MIN)
    assert_matches(i.cpu().numpy(), expected(ReduceOp.MIN, everyone("int64", 5, 12)))
    out = bp.zeros(world() * 257, device="gpu")
    w = dist.all_gather_into_tensor(out, tensor(x[rank()]).to("gpu"), async_op=True)
    w.wait()
    assert_matches(out.cpu().numpy(), x.reshape(-1))
    b = tensor(x[rank()]).to("gpu")
    dist.broadcast(b, src=world() - 1)
    assert_matches(b.cpu().numpy(), x[-1])
