"""Datasets, DataLoader, the bundled digits, and the four feeding modes."""

import hashlib
import types
from importlib import resources

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.data import DataLoader, TensorDataset, load_digits, loader_for, stream


def test_bundled_digits_file_is_the_credited_one():
    raw = resources.files("backprop_rs").joinpath("datasets/digits.csv.gz").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def test_load_digits_split_is_fixed_and_well_formed():
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1437, 64) and a.x_test.shape == (360, 64)
    assert a.y_train.dtype == bp.int64 and a.x_train.dtype == bp.float32
    np.testing.assert_array_equal(a.y_test.numpy(), b.y_test.numpy())
    assert 0.0 <= a.x_train.numpy().min() and a.x_train.numpy().max() <= 1.0
    assert sorted(np.unique(a.y_train.numpy())) == list(range(10))
    # every class is represented in the test split
    assert np.bincount(a.y_test.numpy(), minlength=10).min() >= 25


def test_tensor_dataset_and_errors():
    ds = TensorDataset(bp.arange(10).float(), bp.arange(10))
    assert len(ds) == 10 and ds[3][1].item() == 3
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(bp.zeros(3), bp.zeros(4))


def test_dataloader_batches_shuffle_and_drop_last():
    x = bp.arange(10).float().reshape(10, 1)
    ds = TensorDataset(x, bp.arange(10))
    dl = DataLoader(ds, batch_size=4)
    sizes = [b[0].shape[0] for b in dl]
    assert sizes == [4, 4, 2] and len(dl) == 3
    assert [b[0].shape[0] for b in DataLoader(ds, batch_size=4, drop_last=True)] == [4, 4]
    a = [b[1].tolist() for b in DataLoader(ds, batch_size=3, shuffle=True, seed=5)]
    b = [b[1].tolist() for b in DataLoader(ds, batch_size=3, shuffle=True, seed=5)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and sum(a, []) != list(range(10))
    dl = DataLoader(ds, batch_size=10, shuffle=True, seed=1)
    e1, e2 = next(iter(dl))[1].tolist(), next(iter(dl))[1].tolist()
    assert e1 != e2  # a new order each epoch
    with pytest.raises(ValueError):
        DataLoader(ds, batch_size=0)


def test_dataloader_generic_dataset_collates():
    class Squares(bp.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return bp.tensor([float(i)]), i * i

    xs, ys = next(iter(DataLoader(Squares(), batch_size=5)))
    assert xs.shape == (5, 1) and ys.tolist() == [0, 1, 4, 9, 16]


def test_modes_feed_the_expected_batch_sizes():
    ds = TensorDataset(bp.zeros(10, 2), bp.zeros(10, dtype=bp.int64))
    assert [b[0].shape[0] for b in loader_for("batch", ds)] == [10]
    assert [b[0].shape[0] for b in loader_for("stochastic", ds, seed=0)] == [1] * 10
    assert [b[0].shape[0] for b in loader_for("minibatch", ds, batch_size=4, seed=0)] == [4, 4, 2]
    with pytest.raises(ValueError, match="stream"):
        loader_for("online", ds)
    with pytest.raises(ValueError, match="unknown mode"):
        loader_for("weekly", ds)


def test_stream_is_lazy_and_ordered():
    x, y = bp.arange(6).float().reshape(6, 1), bp.arange(6)
    s = stream(x, y, passes=2)
    assert isinstance(s, types.GeneratorType)
    got = [int(b[1].item()) for b in s]
    assert got == [0, 1, 2, 3, 4, 5] * 2
    first = next(stream(x, y))
    assert first[0].shape == (1, 1) and first[0].data_ptr() == x.data_ptr()  # a view, not a copy


def test_online_training_uses_constant_memory():
    """An endless stream: memory (live engine tensors) stays flat as examples arrive."""
    bp.manual_seed(0)
    model = bp.nn.Linear(4, 3)
    opt = bp.optim.SGD(model.parameters(), lr=0.01)

    def endless():
        while True:
            yield bp.randn(1, 4), bp.randint(0, 3, (1,))

    import itertools

    from backprop_rs.train import fit

    counts = []
    for n in (200, 2000):
        fit(model, opt, bp.nn.CrossEntropyLoss(), itertools.islice(endless(), n), mode="online", progress=False, report_every=100)
        counts.append(bp._core._live_tensors())
    assert counts[1] <= counts[0] + 5, counts
