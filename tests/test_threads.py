"""Tensors are shared between Python threads safely: the GIL is released inside kernels, and the
same work on 4 threads gives exactly the serial results."""

import platform
import threading

import numpy as np

import backprop_rs as bp


def _work(x, w):
    h = (x @ w).tanh()
    loss = (h * h).mean() + h.softmax(-1).sum(0).var()
    (g,) = bp.autograd.grad(loss, w)
    return loss.item(), g.numpy().copy()


def test_same_results_from_four_threads():
    bp.manual_seed(0)
    x = bp.randn(512, 256)  # large enough that kernels release the GIL
    w = bp.randn(256, 128, requires_grad=True)
    serial = [_work(x, w) for _ in range(4)]
    results = [None] * 8
    errors = []

    def run(i):
        try:
            results[i] = _work(x, w)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for r in results:
        assert r is not None
        assert r[0] == serial[0][0]
        np.testing.assert_array_equal(r[1], serial[0][1])


def test_no_grad_is_per_thread():
    seen = []
    x = bp.ones(2, requires_grad=True)

    def other():
        seen.append((x * 2).requires_grad)

    with bp.no_grad():
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen == [True]


def test_concurrent_in_place_updates_and_reads_do_not_deadlock():
    a = bp.zeros(100_000)
    b = bp.ones(100_000)

    def writer():
        for _ in range(50):
            a.copy_(b)
            b.copy_(a)

    def reader():
        for _ in range(50):
            (a + b).sum().item()

    ts = [threading.Thread(target=f) for f in (writer, writer, reader, reader)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts)


def test_set_flush_denormal_reaches_every_compute_thread():
    # torch.set_flush_denormal: denormal inputs read as 0 and results flush to 0, on the calling
    # thread (a 1-element op) and on the pool's workers (a 1M-element op is split across them)
    tiny = np.float32(np.finfo(np.float32).tiny / 4)
    big = bp.tensor(np.full(1 << 20, tiny, dtype=np.float32))
    small = bp.tensor(np.array([tiny], dtype=np.float32))
    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert bp.set_flush_denormal(True) is False  # not implemented there: says so, changes nothing
        return
    try:
        assert bp.set_flush_denormal(True) is True
        assert (big * 1.0).numpy().max() == 0.0
        assert (small * 1.0).item() == 0.0
    finally:
        assert bp.set_flush_denormal(False) is True
    assert np.all((big * 1.0).numpy() == tiny)
    assert (small * 1.0).item() == tiny
