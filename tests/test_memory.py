"""CPU (and GPU) memory accounting and the buffer pool: bounded, reported, releasable, reused by
the checkpoint loader."""

import gc

import numpy as np

import backprop_rs as bp


def test_memory_stats_follow_tensors():
    gc.collect()
    before = bp.memory_allocated()
    t = bp.zeros(1_000_000)  # 4 MB
    assert bp.memory_allocated() - before >= 4_000_000
    bp.reset_peak_memory_stats()
    peak0 = bp.memory_stats()["allocated_bytes.all.peak"]
    u = bp.zeros(2_000_000)
    assert bp.memory_stats()["allocated_bytes.all.peak"] >= peak0 + 8_000_000
    del t, u
    gc.collect()
    stats = bp.memory_stats()
    assert stats["allocated_bytes.all.current"] <= before + 64 * 1024
    assert stats["reserved_bytes.all.current"] == stats["allocated_bytes.all.current"] + stats["cached_bytes"]
    assert 64 << 20 <= stats["cache_limit_bytes"] <= 512 << 20


def test_empty_cache_releases_the_pool():
    x = bp.zeros(3_000_000)
    del x
    gc.collect()
    assert bp.memory_stats()["cached_bytes"] >= 12_000_000  # freed, kept for reuse
    bp.empty_cache()
    assert bp.memory_stats()["cached_bytes"] == 0


def test_the_pool_stays_within_its_bound():
    limit = bp.memory_stats()["cache_limit_bytes"]
    n = limit // 4 // 6 + 1  # buffers of a sixth of the bound: ten of them overflow it
    for i in range(10):
        t = bp.full((n + i,), 1.0)  # different sizes: nothing is reused
        del t
    assert bp.memory_stats()["cached_bytes"] <= limit
    bp.empty_cache()


def test_repeated_loads_reuse_pooled_memory(tmp_path):
    path = tmp_path / "m.safetensors"
    state = {f"w{i}": bp.randn(64, 256) for i in range(8)}  # 8 tensors of 64 KiB
    bp.save(state, path)
    bp.empty_cache()
    for _ in range(50):
        got = bp.load(path)
        del got
    # the loader takes its buffers from the pool: it holds about one checkpoint, not fifty
    assert bp.memory_stats()["cached_bytes"] <= 2 * 8 * 64 * 256 * 4
    np.testing.assert_array_equal(bp.load(path)["w3"].numpy(), state["w3"].numpy())
    bp.empty_cache()


def test_gpu_memory_stats():
    if not bp.gpu.is_available():
        return
    before = bp.memory_allocated("gpu")
    t = bp.zeros(1 << 20, device="gpu")
    assert bp.memory_allocated("gpu") - before >= 4 << 20
    del t
    bp.gpu.synchronize()
    assert bp.memory_allocated("gpu") <= before
    bp.empty_cache()
