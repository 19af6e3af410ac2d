"""Many threads and forked workers: totals are exact, and what was recorded
before a fork is sent once, by the parent."""

import logging
import os
import threading
import time

import minutely
from minutely import _registry, add_distribution_value, increment_counter, set_gauge, probes
from server_harness import wait_for


def test_many_threads_exact_totals(client, env):
    threads, per_thread = 16, 20000
    barrier = threading.Barrier(threads)

    def work(i):
        barrier.wait()
        tags = {"region": "eu", "worker": str(i % 4)}
        for n in range(per_thread):
            increment_counter("py_thread_hits", 1, tags)
            if n % 10 == 0:
                add_distribution_value("py_thread_sizes", n % 7 + 1)
                set_gauge("py_thread_level", n)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    # Flush concurrently with the recording threads, as the pusher does.
    while any(t.is_alive() for t in ts):
        minutely.flush(5)
        time.sleep(0.01)
    for t in ts:
        t.join()
    assert minutely.flush(5)
    assert client.value("py_thread_hits", "sum", env=env) == threads * per_thread
    assert client.value("py_thread_sizes", "count", env=env) == threads * per_thread // 10
    assert client.value("py_thread_level", "max", env=env) == per_thread - 10


def _fork(child):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def _wait(pids):
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_forked_workers_exact_total(client, env):
    # Recorded before the fork and not yet pushed: the parent's to send.
    for _ in range(250):
        increment_counter("py_forked")
    add_distribution_value("py_forked_dist", 2)

    def worker():
        for _ in range(1000):
            increment_counter("py_forked")
        add_distribution_value("py_forked_dist", 3)
        # A worker's process exits through os._exit (as multiprocessing's
        # do); flush first.
        assert minutely.flush(10)

    pids = [_fork(worker) for _ in range(4)]
    for _ in range(50):
        increment_counter("py_forked")
    _wait(pids)
    assert minutely.flush(5)
    assert client.value("py_forked", "sum", env=env) == 4300
    assert client.value("py_forked_dist", "count", env=env) == 5
    assert client.value("py_forked_dist", "sum", env=env) == 14


def test_probes_keep_running_in_a_forked_child(client, env):
    def probe():
        set_gauge("py_probe_pid", 1, {"pid": str(os.getpid())})
        increment_counter("py_probe_runs", 1, {"pid": str(os.getpid())})

    probes.start(interval=0.5)
    probes.register("forked", probe)
    try:
        def worker():
            time.sleep(1.8)
            assert minutely.flush(10)

        pid = _fork(worker)
        _wait([pid])
        runs = wait_for(lambda: client.value("py_probe_runs", "sum", env=env,
                                             tags=["pid:%d" % pid]), timeout=5)
        assert runs is not None and runs >= 2
    finally:
        probes.clear()
        probes.stop()


class _FoldingHolder:
    """A lock held by another thread that folds ``buf`` while a recording
    thread waits for it, and is still held when the wait times out."""

    def __init__(self, buf, left):
        self.buf, self.left = buf, left

    def acquire(self, blocking=True, timeout=-1):
        if blocking:  # the wait: the holder folds all but `left` newer values
            del self.buf[:len(self.buf) - self.left]
        return False


def test_values_folded_during_a_timed_out_wait_are_kept(monkeypatch):
    increment_counter("py_wait_race", 1)
    buf = _registry._counters["py_wait_race"]
    dropped = _registry._outbox.dropped_points
    buf.extend([1] * (_registry.HARD_CAP - len(buf)))
    monkeypatch.setattr(_registry, "_lock", _FoldingHolder(buf, left=1950))
    _registry._fold_full(buf)
    assert len(buf) == 1950
    assert _registry._outbox.dropped_points == dropped


def test_a_buffer_still_full_after_the_wait_is_dropped_and_counted(monkeypatch, caplog):
    increment_counter("py_wait_stuck", 1)
    buf = _registry._counters["py_wait_stuck"]
    dropped = _registry._outbox.dropped_points
    buf.extend([1] * (_registry.HARD_CAP - len(buf)))
    monkeypatch.setattr(_registry, "_lock", _FoldingHolder(buf, left=_registry.HARD_CAP))
    with caplog.at_level(logging.WARNING, logger="minutely"):
        _registry._fold_full(buf)
    assert len(buf) == 0
    assert _registry._outbox.dropped_points == dropped + _registry.HARD_CAP
    assert "came faster than they could be folded" in caplog.text
