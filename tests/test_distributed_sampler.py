"""DistributedSampler against an independent re-implementation of torch's documented algorithm
(``torch/utils/data/distributed.py``), written with Python lists the way torch writes it.

The one deliberate difference from torch: the shuffled order. torch draws
``torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))``; backprop_rs has no
torch generator and draws the permutation from ``backprop_rs.Generator`` (NumPy's PCG64) seeded
the same way, so the reference draws ``np.random.Generator(np.random.PCG64(seed + epoch))``.
Everything after the permutation — the sizes, the padding by repeating the head, the cut with
``drop_last``, the strided split among ranks — is torch's, index for index.
"""

import math

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.utils.data import DataLoader, TensorDataset
from backprop_rs.utils.data.distributed import DistributedSampler


def torch_indices(n, num_replicas, rank, shuffle, seed, epoch, drop_last):
    """torch's DistributedSampler.__iter__ with the permutation drawn by PCG64 (see above)."""
    if drop_last and n % num_replicas != 0:
        num_samples = math.ceil((n - num_replicas) / num_replicas)
    else:
        num_samples = math.ceil(n / num_replicas)
    total_size = num_samples * num_replicas
    if shuffle:
        indices = np.random.Generator(np.random.PCG64(seed + epoch)).permutation(n).tolist()
    else:
        indices = list(range(n))
    if not drop_last:
        padding_size = total_size - len(indices)
        if padding_size <= len(indices):
            indices += indices[:padding_size]
        else:
            indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
    else:
        indices = indices[:total_size]
    assert len(indices) == total_size
    indices = indices[rank:total_size:num_replicas]
    assert len(indices) == num_samples
    return indices


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_indices_match_torchs_algorithm(shuffle, drop_last):
    for n in [0, 1, 2, 3, 5, 10, 11, 17, 100]:
        for replicas in [1, 2, 3, 4, 7]:
            for seed, epoch in [(0, 0), (0, 1), (42, 3)]:
                for r in range(replicas):
                    s = DistributedSampler(range(n), num_replicas=replicas, rank=r, shuffle=shuffle, seed=seed,
                                           drop_last=drop_last)
                    s.set_epoch(epoch)
                    want = torch_indices(n, replicas, r, shuffle, seed, epoch, drop_last)
                    got = list(s)
                    assert got == want, (n, replicas, r, seed, epoch)
                    assert len(s) == len(want)
                    assert all(type(i) is int for i in got)


def test_the_ranks_shares_partition_the_data_set():
    n, replicas = 23, 4
    shares = [list(DistributedSampler(range(n), replicas, r, seed=5)) for r in range(replicas)]
    assert {len(s) for s in shares} == {6}
    flat = sum(shares, [])
    assert set(flat) == set(range(n))  # every example is read ...
    assert len(flat) - len(set(flat)) == 6 * 4 - n  # ... once, except the padding
    dropped = [list(DistributedSampler(range(n), replicas, r, seed=5, drop_last=True)) for r in range(replicas)]
    flat = sum(dropped, [])
    assert len(flat) == len(set(flat)) == 20  # disjoint, the tail dropped


def test_set_epoch_reshuffles_and_the_same_epoch_repeats():
    s = DistributedSampler(range(50), num_replicas=2, rank=1, seed=3)
    first = list(s)
    assert list(s) == first  # no set_epoch: the same order every pass, as in torch
    s.set_epoch(1)
    second = list(s)
    assert second != first and sorted(second) != second
    s.set_epoch(0)
    assert list(s) == first
    assert list(DistributedSampler(range(50), num_replicas=2, rank=1, shuffle=False)) == list(range(1, 50, 2))


def test_feeds_a_dataloader():
    x = bp.arange(10).reshape(10, 1).float()
    ds = TensorDataset(x, bp.arange(10))
    s = DistributedSampler(ds, num_replicas=3, rank=2, shuffle=False)
    batches = [yb.tolist() for _, yb in DataLoader(ds, batch_size=2, sampler=s)]
    assert batches == [[2, 5], [8, 1]]  # 10 examples, 3 ranks: padded to 12 with 0 and 1


def test_errors():
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval \[0, 2\]"):
        DistributedSampler(range(4), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="Invalid rank -1"):
        DistributedSampler(range(4), num_replicas=3, rank=-1)
    # without num_replicas/rank they come from the default process group, which needs init
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(4))


def test_exported_under_torchs_paths():
    import backprop_rs.utils.data as data

    assert data.DistributedSampler is DistributedSampler
    assert data.distributed.DistributedSampler is DistributedSampler
    assert bp.data.DistributedSampler is DistributedSampler
