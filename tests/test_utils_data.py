"""bp.utils.data against PyTorch's documented rules: Generator, datasets, random_split, samplers,
default_collate/default_convert, DataLoader validation, the TensorDataset fast path (against the
sample-by-sample path), and worker processes (against the single-process order)."""

import collections
import math
import os
import pickle
import time
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)
from backprop_rs.utils.data._utils.collate import collate, default_collate_fn_map


def gen(seed):
    return bp.Generator().manual_seed(seed)


# ------------------------------------------------------------------ Generator

def test_generator_seed_state_and_reference_stream():
    g = bp.Generator()
    assert g.initial_seed() == 67280421310721  # PyTorch's default seed for a new Generator
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    assert bp.Generator().manual_seed(-1).initial_seed() == 2**64 - 1  # wraps to 64 bits like torch
    # documented: draws come from NumPy's PCG64 seeded with the seed
    want = np.random.Generator(np.random.PCG64(5)).permutation(20)
    np.testing.assert_array_equal(list(RandomSampler(range(20), generator=gen(5))), want)
    # get_state/set_state replays the stream exactly, from any generator object
    g = gen(11)
    list(RandomSampler(range(7), generator=g))
    state = g.get_state()
    assert state.dtype == bp.int64 and state.shape == (8,)
    a = list(RandomSampler(range(30), generator=g))
    b = list(RandomSampler(range(30), generator=bp.Generator().set_state(state)))
    assert a == b and bp.Generator().set_state(state).initial_seed() == 11
    s = bp.Generator().seed()
    assert 0 <= s < 2**64
    with pytest.raises(TypeError):
        bp.Generator().manual_seed(1.5)
    with pytest.raises(RuntimeError, match="not a backprop_rs.Generator state"):
        bp.Generator().set_state(bp.zeros(8, dtype=bp.int64))
    with pytest.raises(ValueError, match="cpu"):
        bp.Generator(device="gpu")


def test_no_generator_follows_the_global_seed():
    bp.manual_seed(123)
    a = list(RandomSampler(range(50)))
    b = list(RandomSampler(range(50)))
    bp.manual_seed(123)
    assert list(RandomSampler(range(50))) == a and a != b
    assert sorted(a) == list(range(50))


def test_random_constructors_take_a_generator_and_out():
    # makemore-style: bp.randn(..., generator=g) draws NumPy's PCG64 stream of the seed
    g = gen(2147483647)
    c = bp.randn((27, 10), generator=g)
    want = np.random.Generator(np.random.PCG64(2147483647)).standard_normal((27, 10))
    np.testing.assert_allclose(c.numpy(), want.astype(np.float32), rtol=1e-7)
    assert c.dtype == bp.float32 and tuple(c.shape) == (27, 10)
    w = bp.randn(3, 4, generator=gen(1), requires_grad=True, dtype=bp.float64)
    assert w.is_leaf and w.requires_grad and w.dtype == bp.float64
    np.testing.assert_array_equal(w.detach().numpy(), np.random.Generator(np.random.PCG64(1)).standard_normal((3, 4)))
    u = bp.rand(5, generator=gen(2)).numpy()
    np.testing.assert_allclose(u, np.random.Generator(np.random.PCG64(2)).random(5).astype(np.float32))
    r = np.random.Generator(np.random.PCG64(3))
    np.testing.assert_array_equal(bp.randint(2, 9, (6,), generator=gen(3)).numpy(), r.integers(2, 9, size=(6,)))
    assert bp.randint(4, (3,), generator=gen(3)).dtype == bp.int64
    np.testing.assert_array_equal(bp.randperm(8, generator=gen(4)).numpy(),
                                  np.random.Generator(np.random.PCG64(4)).permutation(8))
    assert sorted(bp.randperm(6).tolist()) == list(range(6))
    np.testing.assert_array_equal(bp.randn_like(bp.zeros(2, 2), generator=gen(5)).numpy(),
                                  np.random.Generator(np.random.PCG64(5)).standard_normal((2, 2)).astype(np.float32))
    out = bp.empty(4)
    assert bp.rand(4, out=out) is out and bool(((out >= 0) & (out < 1)).all())
    with pytest.raises(RuntimeError, match="resize"):
        bp.randn(3, out=bp.empty(2))
    # without a generator the global stream, as before
    bp.manual_seed(9)
    a = bp.randn(4)
    bp.manual_seed(9)
    np.testing.assert_array_equal(a.numpy(), bp.randn(4).numpy())


def test_manual_seed_returns_the_default_generator():
    g = bp.manual_seed(17)
    assert g is bp.default_generator and bp.random.default_generator is g
    assert g.initial_seed() == 17 and bp.initial_seed() == 17
    a = bp.randperm(10, generator=g)
    assert g.manual_seed(17) is g
    np.testing.assert_array_equal(bp.randperm(10, generator=g).numpy(), a.numpy())
    state = g.get_state()
    x = bp.rand(3)
    g.set_state(state)
    np.testing.assert_array_equal(bp.rand(3).numpy(), x.numpy())
    assert pickle.loads(pickle.dumps(g)) is g
    bp.manual_seed(17)
    first = [b[0].tolist() for b in DataLoader(TensorDataset(bp.arange(8)), batch_size=4, shuffle=True, generator=g)]
    bp.manual_seed(17)
    again = [b[0].tolist() for b in DataLoader(TensorDataset(bp.arange(8)), batch_size=4, shuffle=True, generator=g)]
    assert first == again and sorted(sum(first, [])) == list(range(8))


# ------------------------------------------------------------------ datasets

def test_tensor_stack_concat_chain_subset():
    x, y = bp.arange(12).float().reshape(6, 2), bp.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6 and ds[4][1].item() == 4 and ds[-1][0].tolist() == [10.0, 11.0]
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(bp.zeros(3), bp.zeros(4))

    st = StackDataset(ds, list("abcdef"))
    assert st[2][1] == "c" and st[2][0][1].item() == 2 and len(st) == 6
    assert StackDataset(a=range(3), b=list("xyz"))[1] == {"a": 1, "b": "y"}
    with pytest.raises(ValueError, match="Size mismatch"):
        StackDataset(range(3), range(4))
    with pytest.raises(ValueError, match="both types"):
        StackDataset(range(3), b=range(3))

    cat = ds + TensorDataset(bp.zeros(4, 2), bp.arange(100, 104))
    assert isinstance(cat, ConcatDataset) and len(cat) == 10 and cat.cumulative_sizes == [6, 10]
    assert [int(cat[i][1].item()) for i in (0, 5, 6, 9, -1, -10)] == [0, 5, 100, 103, 103, 0]
    with pytest.raises(ValueError, match="absolute value"):
        cat[-11]
    with pytest.raises(AssertionError, match="empty"):
        ConcatDataset([])

    class Count(IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    chain = Count(2) + Count(3)
    assert isinstance(chain, ChainDataset) and list(chain) == [0, 1, 0, 1, 2] and len(chain) == 5
    with pytest.raises(AssertionError, match="IterableDataset"):
        ConcatDataset([Count(2)])

    sub = Subset(ds, [5, 0, 3])
    assert len(sub) == 3 and [int(s[1].item()) for s in sub.__getitems__([0, 2])] == [5, 3]
    assert int(sub[1][1].item()) == 0
    with pytest.raises(TypeError):
        len(Dataset())  # PyTorch's Dataset has no default __len__


def test_random_split_lengths_fractions_and_generator():
    parts = random_split(range(10), [3, 7], generator=gen(0))
    perm = np.random.Generator(np.random.PCG64(0)).permutation(10).tolist()
    assert [list(p) for p in parts] == [perm[:3], perm[3:]]
    # fractions: floor(n * f) each, then the remainder dealt one by one from the first split
    sizes = [len(p) for p in random_split(range(11), [0.25, 0.25, 0.5], generator=gen(1))]
    assert sizes == [3, 3, 5]  # floors 2, 2, 5 leave 2 -> the first two splits
    parts = random_split(range(11), [0.25, 0.25, 0.5], generator=gen(1))
    assert sorted(sum((list(p) for p in parts), [])) == list(range(11))
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(3), [0.9, 0.1], generator=gen(0))
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 1"):
        random_split(range(10), [0.5, 1.5, -1.0])
    bp.manual_seed(9)
    a = [list(p) for p in random_split(range(8), [4, 4])]
    bp.manual_seed(9)
    assert [list(p) for p in random_split(range(8), [4, 4])] == a


# ------------------------------------------------------------------ samplers

def test_sequential_random_subset_weighted_batch_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3] and len(SequentialSampler(range(4))) == 4
    perm = list(RandomSampler(range(9), generator=gen(2)))
    assert sorted(perm) == list(range(9))
    # num_samples beyond len: whole permutations, the last one cut (PyTorch's rule)
    long = list(RandomSampler(range(4), num_samples=10, generator=gen(3)))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == [0, 1, 2, 3] and len(set(long[8:])) == 2
    rep = list(RandomSampler(range(3), replacement=True, num_samples=200, generator=gen(4)))
    assert len(rep) == 200 and set(rep) == {0, 1, 2}
    assert len(RandomSampler(range(5), replacement=True, num_samples=7)) == 7
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler([])

    idx = [10, 20, 30, 40]
    got = list(SubsetRandomSampler(idx, generator=gen(5)))
    order = np.random.Generator(np.random.PCG64(5)).permutation(4)
    assert got == [idx[i] for i in order] and len(SubsetRandomSampler(idx)) == 4

    w = [0.0, 1.0, 3.0]
    draws = list(WeightedRandomSampler(w, 4000, generator=gen(6)))
    freq = np.bincount(draws, minlength=3) / 4000
    np.testing.assert_allclose(freq, [0, 0.25, 0.75], atol=0.03)  # proportional to the weights
    assert sorted(WeightedRandomSampler([1, 1, 5, 0], 3, replacement=False, generator=gen(7))) == [0, 1, 2]
    s = WeightedRandomSampler(bp.tensor([1.0, 2.0]), 3)
    assert s.weights.dtype == bp.float64 and len(s) == 3
    with pytest.raises(RuntimeError, match="without replacement"):
        list(WeightedRandomSampler([1, 0, 0], 2, replacement=False))
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        WeightedRandomSampler([[1.0]], 1)
    with pytest.raises(ValueError, match="replacement should be a boolean"):
        WeightedRandomSampler([1.0], 1, replacement=None)

    assert list(BatchSampler(range(7), 3, False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(range(7), 3, False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="batch_size should be a positive integer"):
            BatchSampler(range(3), bad, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        BatchSampler(range(3), 2, 0)
    with pytest.raises(NotImplementedError):
        iter(Sampler()).__next__()


# ------------------------------------------------------------------ collate

Point = collections.namedtuple("Point", ["x", "y"])


def test_default_collate_follows_pytorchs_rules():
    out = default_collate([1, 2, 3])
    assert out.dtype == bp.int64 and out.tolist() == [1, 2, 3]
    out = default_collate([0.5, 1.5])
    assert out.dtype == bp.float64 and out.tolist() == [0.5, 1.5]  # Python floats -> float64
    assert default_collate([True, False]).dtype == bp.bool
    assert default_collate(["a", "b"]) == ["a", "b"]
    arr = default_collate([np.zeros((2, 3), np.float64), np.ones((2, 3), np.float64)])
    assert arr.dtype == bp.float64 and arr.shape == (2, 2, 3)
    np.testing.assert_array_equal(arr.numpy()[1], np.ones((2, 3)))
    assert default_collate([np.float32(1), np.float32(2)]).dtype == bp.float32  # numpy scalars keep dtype
    assert default_collate([np.int64(1), np.int64(2)]).dtype == bp.int64
    t = default_collate([bp.tensor([1.0, 2.0]), bp.tensor([3.0, 4.0])])
    assert t.shape == (2, 2) and t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    # tuples become lists; namedtuples, dicts, lists keep their type; nesting recurses
    tup = default_collate([(1, 2.0), (3, 4.0)])
    assert isinstance(tup, list) and tup[0].tolist() == [1, 3] and tup[1].dtype == bp.float64
    pt = default_collate([Point(1, 2), Point(3, 4)])
    assert isinstance(pt, Point) and pt.x.tolist() == [1, 3]
    od = default_collate([collections.OrderedDict(a=1, b=[1, 2]), collections.OrderedDict(a=2, b=[3, 4])])
    assert isinstance(od, collections.OrderedDict) and list(od) == ["a", "b"]
    assert od["a"].tolist() == [1, 2] and isinstance(od["b"], list) and od["b"][1].tolist() == [2, 4]
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([np.array(["a"]), np.array(["b"])])

    # collate_fn_map extends the leaf rules
    class Token:
        def __init__(self, v):
            self.v = v

    fn_map = dict(default_collate_fn_map)
    fn_map[Token] = lambda batch, *, collate_fn_map=None: [t.v for t in batch]
    out = collate([{"t": Token(1), "n": 1}, {"t": Token(2), "n": 2}], collate_fn_map=fn_map)
    assert out["t"] == [1, 2] and out["n"].tolist() == [1, 2]


def test_default_convert():
    out = default_convert({"a": np.arange(3), "b": (np.float64(1.5), "s"), "c": 7})
    assert out["a"].dtype == bp.int64 and out["a"].tolist() == [0, 1, 2]
    assert isinstance(out["b"], list) and out["b"][0].dtype == bp.float64 and out["b"][1] == "s"
    assert out["c"] == 7  # plain numbers stay as they are
    strings = np.array(["x"])
    assert default_convert(strings) is strings
    t = bp.zeros(2)
    assert default_convert(t) is t
    assert isinstance(default_convert(Point(np.zeros(1), 2)), Point)


# ------------------------------------------------------------------ DataLoader: validation and batching

class Squares(Dataset):
    """A map-style dataset of mixed leaves (read sample by sample)."""

    def __init__(self, n=23):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full(3, i, dtype=np.float32), "i": i, "half": i / 2, "pid": os.getpid()}


def test_dataloader_argument_validation():
    ds = Squares()
    it = ChainDataset([])
    bs = BatchSampler(range(3), 2, False)
    exclusive = "batch_sampler option is mutually exclusive"
    cases = [
        (dict(sampler=SequentialSampler(ds), shuffle=True), "sampler option is mutually exclusive with shuffle"),
        (dict(batch_sampler=bs, batch_size=2), exclusive),
        (dict(batch_sampler=bs, shuffle=True), exclusive),
        (dict(batch_sampler=bs, drop_last=True), exclusive),
        (dict(batch_sampler=bs, sampler=range(3)), exclusive),
        (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
        (dict(num_workers=-1), "num_workers option should be non-negative"),
        (dict(timeout=-1), "timeout option should be non-negative"),
        (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing"),
        (dict(num_workers=1, prefetch_factor=-1), "prefetch_factor option should be non-negative"),
        (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
        (dict(multiprocessing_context="fork"), "multiprocessing_context can only be used with multi-process"),
        (dict(num_workers=1, multiprocessing_context="nope"), "valid start method"),
        (dict(batch_size=0), "batch_size should be a positive integer"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            DataLoader(ds, **kwargs)
    with pytest.raises(TypeError, match="valid context object"):
        DataLoader(ds, num_workers=1, multiprocessing_context=3)
    for kwargs, name in ((dict(shuffle=True), "shuffle"), (dict(sampler=[0]), "sampler"),
                         (dict(batch_sampler=[[0]]), "batch_sampler")):
        with pytest.raises(ValueError, match=f"DataLoader with IterableDataset: expected unspecified {name} option"):
            DataLoader(it, **kwargs)
    dl = DataLoader(ds)
    for attr in ("batch_size", "sampler", "batch_sampler", "drop_last", "dataset", "persistent_workers"):
        with pytest.raises(ValueError, match=f"{attr} attribute should not be set after DataLoader is initialized"):
            setattr(dl, attr, None)
    dl.num_workers = 0  # other attributes stay writable, as in PyTorch
    with pytest.warns(UserWarning, match="pin_memory"):
        DataLoader(ds, pin_memory=True)
    assert isinstance(DataLoader(ds, shuffle=True).sampler, RandomSampler)
    assert isinstance(DataLoader(ds).sampler, SequentialSampler)


def test_dataloader_batches_len_drop_last_and_no_batching():
    ds = Squares(10)
    batches = list(DataLoader(ds, batch_size=4))
    assert [b["i"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0]["half"].dtype == bp.float64 and batches[0]["x"].shape == (4, 3)
    assert len(DataLoader(ds, batch_size=4)) == 3 and len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert [b["i"].tolist() for b in DataLoader(ds, batch_size=4, drop_last=True)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # batch_size=None: samples one by one through default_convert
    single = list(DataLoader(ds, batch_size=None))
    assert len(single) == 10 and single[3]["i"] == 3 and single[3]["x"].shape == (3,)
    # a user batch_sampler and collate_fn
    dl = DataLoader(ds, batch_sampler=[[9, 0], [5]], collate_fn=lambda b: [s["i"] for s in b])
    assert list(dl) == [[9, 0], [5]] and len(dl) == 2

    class WithGetitems(Squares):
        calls = []

        def __getitems__(self, idx):
            self.calls.append(list(idx))
            return [self[i] for i in idx]

    ds2 = WithGetitems(5)
    list(DataLoader(ds2, batch_size=2))
    assert ds2.calls == [[0, 1], [2, 3], [4]]  # the whole batch in one call


def test_shuffle_is_reproducible_from_generator_or_global_seed():
    ds = Squares(30)
    a = [b["i"].tolist() for b in DataLoader(ds, batch_size=7, shuffle=True, generator=gen(1))]
    b = [b["i"].tolist() for b in DataLoader(ds, batch_size=7, shuffle=True, generator=gen(1))]
    assert a == b and sorted(sum(a, [])) == list(range(30)) and sum(a, []) != list(range(30))
    dl = DataLoader(ds, batch_size=30, shuffle=True, generator=gen(1))
    assert next(iter(dl))["i"].tolist() != next(iter(dl))["i"].tolist()  # a new order each epoch
    bp.manual_seed(4)
    c = [b["i"].tolist() for b in DataLoader(ds, batch_size=7, shuffle=True)]
    bp.manual_seed(4)
    assert [b["i"].tolist() for b in DataLoader(ds, batch_size=7, shuffle=True)] == c


class AsSamples(Dataset):
    """The same data as a TensorDataset, but read sample by sample (no fast path)."""

    def __init__(self, *tensors):
        self.tensors = tensors

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, i):
        return tuple(t[i] for t in self.tensors)


@pytest.mark.parametrize("make", [
    lambda: dict(batch_size=4),
    lambda: dict(batch_size=4, drop_last=True),
    lambda: dict(batch_size=3, shuffle=True),
    lambda: dict(batch_size=3, shuffle=True, generator=gen(17)),
    lambda: dict(batch_size=5, sampler=RandomSampler(range(13), replacement=True, num_samples=17)),
    lambda: dict(batch_size=2, sampler=SubsetRandomSampler([1, 3, 5, 7, 12])),
    lambda: dict(batch_size=4, sampler=WeightedRandomSampler([1.0] * 13, 9), drop_last=True),
    lambda: dict(batch_sampler=[[3, -1, 0], [12]]),
    lambda: dict(batch_size=6, sampler=[12, 0, 5, 5, -2]),
])
def test_tensor_dataset_fast_path_equals_sample_by_sample(make, monkeypatch):
    x = bp.arange(39).float().reshape(13, 3)
    y = bp.arange(13) * 10
    calls = []
    orig = TensorDataset.__getitem__

    def spy(self, i):
        calls.append(i)
        return orig(self, i)

    monkeypatch.setattr(TensorDataset, "__getitem__", spy)
    bp.manual_seed(17)  # the samplers without a generator draw from the global one
    fast = list(DataLoader(TensorDataset(x, y), **make()))
    assert calls == []  # gathered tensor by tensor, never sample by sample
    bp.manual_seed(17)
    slow = list(DataLoader(AsSamples(x, y), **make()))
    assert len(fast) == len(slow) > 0
    for f, s in zip(fast, slow):
        assert isinstance(f, list) and isinstance(s, list)  # tuples collate to lists
        for ft, st in zip(f, s):
            assert ft.dtype == st.dtype and ft.shape == st.shape
            np.testing.assert_array_equal(ft.numpy(), st.numpy())


def test_fast_path_batches_are_fresh_and_subsets_are_fast():
    x = bp.arange(10).float()
    ds = TensorDataset(x)
    first = next(iter(DataLoader(ds, batch_size=4)))[0]
    first.add_(100.0)
    assert x[0].item() == 0.0  # a batch never aliases the dataset
    train, _ = random_split(ds, [6, 4], generator=gen(3))
    got = sorted(sum((b[0].tolist() for b in DataLoader(train, batch_size=4, shuffle=True)), []))
    assert got == sorted(x.numpy()[train.indices].tolist())
    with pytest.raises(IndexError):
        list(DataLoader(ds, batch_sampler=[[0, 10]]))


# ------------------------------------------------------------------ worker processes

def _seed_probe_init(worker_id):
    info = get_worker_info()
    assert info is not None and info.id == worker_id
    np.random.seed(1000 + worker_id)  # worker_init_fn runs before any sample is read


class Probe(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        info = get_worker_info()
        return {"i": i, "worker": -1 if info is None else info.id, "nw": 0 if info is None else info.num_workers,
                "seed": 0 if info is None else info.seed % 2**62, "pid": os.getpid(),
                "np": float(np.random.random()), "bp": float(bp.rand(1).item())}


class Staggered(Dataset):
    """Worker 0's first batch is slow, so later batches arrive before it."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        if i < 3 and get_worker_info().id == 0:
            time.sleep(0.1)
        return i


def test_workers_preserve_single_process_order_and_give_worker_info():
    got = [b.tolist() for b in DataLoader(Staggered(), batch_size=3, num_workers=2)]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]  # reordered, not arrival order
    ds = Squares(37)
    ref = [b["i"].tolist() for b in DataLoader(ds, batch_size=5, shuffle=True, generator=gen(8))]
    for nw in (1, 2):
        got = [b["i"].tolist() for b in DataLoader(ds, batch_size=5, shuffle=True, generator=gen(8), num_workers=nw)]
        assert got == ref
    batches = list(DataLoader(Probe(), batch_size=3, num_workers=2, worker_init_fn=_seed_probe_init))
    assert [b["i"].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    # batches are handed out round robin: 0 -> worker 0, 1 -> worker 1, ...
    assert [set(b["worker"].tolist()) for b in batches] == [{0}, {1}, {0}, {1}]
    assert all(b["nw"].tolist() == [2, 2, 2] for b in batches)
    pids = {p for b in batches for p in b["pid"].tolist()}
    assert len(pids) == 2 and os.getpid() not in pids
    # each worker has its own seed (base + id), and its generators are seeded from it
    seeds = {b["worker"].tolist()[0]: b["seed"].tolist()[0] for b in batches}
    assert seeds[1] == seeds[0] + 1
    np0 = [b["np"].tolist() for b in batches if b["worker"][0].item() == 0]
    want = np.random.RandomState(1000).random_sample(6).tolist()
    np.testing.assert_allclose(sum(np0, []), want)  # worker_init_fn's seeding took effect
    bp0 = sum((b["bp"].tolist() for b in batches if b["worker"][0].item() == 0), [])
    bp1 = sum((b["bp"].tolist() for b in batches if b["worker"][0].item() == 1), [])
    assert bp0 != bp1
    assert get_worker_info() is None
    # tensors come back as tensors, with their dtypes
    x = bp.arange(24).float().reshape(8, 3)
    got = list(DataLoader(TensorDataset(x, bp.arange(8)), batch_size=3, num_workers=2))
    assert [b[1].tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert got[0][0].dtype == bp.float32 and got[2][0].tolist() == x.numpy()[6:].tolist()


class Stream(IterableDataset):
    """0..n-1, split between workers by get_worker_info (PyTorch's documented pattern)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


def test_iterable_dataset_in_workers():
    assert [b.tolist() for b in DataLoader(Stream(10), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    got = [b.tolist() for b in DataLoader(Stream(10), batch_size=3, drop_last=True)]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    # each worker batches its own share; batches come round robin until every worker is done
    got = [b.tolist() for b in DataLoader(Stream(10), batch_size=3, num_workers=2)]
    assert got == [[0, 2, 4], [1, 3, 5], [6, 8], [7, 9]]
    got = [int(v) for v in DataLoader(Stream(5), batch_size=None, num_workers=2)]
    assert got == [0, 1, 2, 3, 4]


class Failing(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i == 4:
            raise KeyError("no sample 4")
        if i == 5:
            os._exit(3)  # a worker that dies
        return i


def test_worker_errors_reach_the_main_process():
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process 0"):
        list(DataLoader(Failing(), batch_size=2, num_workers=1, sampler=[0, 1, 4, 2]))
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(DataLoader(Failing(), batch_size=1, num_workers=1, sampler=[5]))

    def bad_init(worker_id):
        raise ValueError("init failed")

    with pytest.raises(ValueError, match="(?s)Caught ValueError in DataLoader worker process 0.*init failed"):
        list(DataLoader(Squares(4), num_workers=1, worker_init_fn=bad_init, multiprocessing_context="fork"))


class Products(Dataset):
    """Each item a 96x96 @ 96x384 product (3.5M multiply-adds): big enough that the engine splits
    it across its spinning helper thread (``cpu/spin.rs``), which a forked worker does not have."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        a = np.full((96, 96), 0.5 + i, np.float32)
        b = np.arange(96 * 384, dtype=np.float32).reshape(96, 384) / 1000
        return (bp.tensor(a) @ bp.tensor(b)).numpy(), a @ b


def test_forked_workers_run_the_kernels_the_parent_threaded():
    # the parent's helper thread is started (and busy spinning) before the fork
    x = bp.ones(96, 96) @ bp.ones(96, 384)
    assert float(x[0, 0]) == 96.0
    loader = DataLoader(Products(), batch_size=None, num_workers=1, multiprocessing_context="fork", timeout=60)
    for got, want in loader:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5)


class Slow(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        time.sleep(6.0)
        return i


def test_worker_timeout_and_early_exit():
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.3 seconds"):
        next(iter(DataLoader(Slow(), num_workers=1, timeout=0.3)))
    # it neither waited for the sample nor for the busy worker (terminated after a 1 s grace)
    assert time.perf_counter() - t0 < 4.5
    t0 = time.perf_counter()
    for _ in DataLoader(Squares(400), batch_size=2, num_workers=2):
        break  # leaving early shuts the idle workers down at once
    assert time.perf_counter() - t0 < 0.9


def test_persistent_workers_live_across_epochs():
    dl = DataLoader(Probe(), batch_size=4, num_workers=2, persistent_workers=True)
    epochs = [list(dl) for _ in range(3)]
    assert all([b["i"].tolist() for b in e] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]] for e in epochs)
    pids = [{p for b in e for p in b["pid"].tolist()} for e in epochs]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    half = iter(dl)
    next(half)  # an abandoned epoch: the next one must not see its leftovers
    assert [b["i"].tolist() for b in dl] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_spawned_workers_receive_tensors_through_the_reducer():
    x = bp.arange(12).double().reshape(6, 2)
    y = bp.tensor([True, False, True, True, False, False])
    got = list(DataLoader(TensorDataset(x, y), batch_size=4, num_workers=1, multiprocessing_context="spawn"))
    assert got[0][0].dtype == bp.float64 and got[0][1].dtype == bp.bool
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in got]), x.numpy())
    assert sum((b[1].tolist() for b in got), []) == y.tolist()


def test_tensor_reducer_round_trip_and_plain_pickle_still_refuses():
    for t in (bp.arange(6).float().reshape(2, 3), bp.tensor(2.5, dtype=bp.float64), bp.tensor([1, 2]),
              bp.tensor([True]), bp.zeros(4, 3).t()):
        back = pickle.loads(ForkingPickler.dumps(t))
        assert back.dtype == t.dtype and back.shape == t.shape
        np.testing.assert_array_equal(back.numpy(), t.numpy())
    w = bp.nn.Parameter(bp.ones(2))
    back = pickle.loads(ForkingPickler.dumps(w))
    assert isinstance(back, bp.nn.Parameter) and back.requires_grad
    leaf = bp.ones(2, requires_grad=True)
    assert pickle.loads(ForkingPickler.dumps(leaf)).requires_grad
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        ForkingPickler.dumps(leaf * 2)
    with pytest.raises(TypeError):
        pickle.dumps(bp.ones(2))


# ------------------------------------------------------------------ bp.data keeps working

def test_bp_data_seeded_loader_keeps_its_order():
    from backprop_rs.data import DataLoader as LegacyLoader

    ds = TensorDataset(bp.arange(10).float(), bp.arange(10))
    dl = LegacyLoader(ds, batch_size=4, shuffle=True, seed=5)
    for epoch in range(2):
        perm = np.random.default_rng(5 + epoch).permutation(10)
        want = [perm[s:s + 4].tolist() for s in range(0, 10, 4)]
        assert [b[1].tolist() for b in dl] == want
    assert dl.epoch == 2 and isinstance(dl, DataLoader)
    assert bp.data.TensorDataset is TensorDataset and bp.data.Dataset is Dataset
    with pytest.raises(ValueError, match="seed and generator"):
        LegacyLoader(ds, shuffle=True, seed=1, generator=gen(1))
    assert math.isclose(len(LegacyLoader(ds, batch_size=3)), 4)
