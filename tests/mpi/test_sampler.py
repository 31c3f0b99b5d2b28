"""DistributedSampler inside an MPI job: rank and world size come from the process group, and
the ranks' shares of one epoch together read the whole data set (the index arithmetic itself
is tested against torch's algorithm in tests/test_distributed_sampler.py)."""

import backprop_rs.distributed as dist
from backprop_rs.utils.data.distributed import DistributedSampler


def test_defaults_come_from_the_process_group_and_the_shares_cover_the_data_set():
    n = 29
    s = DistributedSampler(range(n), seed=7)
    assert (s.num_replicas, s.rank) == (dist.get_world_size(), dist.get_rank())
    for epoch in range(3):
        s.set_epoch(epoch)
        shares = [None] * dist.get_world_size()
        dist.all_gather_object(shares, list(s))
        assert len({len(x) for x in shares}) == 1  # the same number of batches on every rank
        flat = sum(shares, [])
        assert set(flat) == set(range(n))
        assert len(flat) == -(-n // dist.get_world_size()) * dist.get_world_size()
