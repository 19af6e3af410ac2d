"""The server goes away and comes back on the same port: what was buffered
arrives, helper calls never wait, drops are bounded, counted and reported;
a retried batch counts once."""

import json
import logging
import os
import threading
import time

import pytest

import minutely
from minutely import _registry, increment_counter, add_distribution_value, set_gauge
from minutely._aggregate import MinuteAgg
from minutely._buffer import Outbox, make_batches
from minutely._transport import DELIVERED, Transport
from server_harness import PUSH_KEY, Server, wait_for


@pytest.fixture
def own_server():
    s = Server().start()
    yield s
    s.stop()


def _record_for(seconds, name):
    """Records for a while; returns (calls, slowest call in seconds)."""
    calls, slowest = 0, 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        increment_counter(name, 1, {"phase": "away"})
        add_distribution_value(name + "_d", 2.0)
        set_gauge(name + "_g", calls)
        slowest = max(slowest, time.perf_counter() - t0)
        calls += 1
        if calls % 100 == 0:
            time.sleep(0.001)
    return calls, slowest


def test_server_away_then_back_on_the_same_port(own_server, env, caplog):
    caplog.set_level(logging.INFO, logger="minutely")
    minutely.start(endpoint=own_server.url, push_key=PUSH_KEY, env=env, push_interval=0.2,
                   timeout=1.0, retry_initial=0.1, retry_max=0.4)
    # The count lives as long as the process: only this test's drops matter.
    dropped_before = minutely.stats()["dropped_points"]
    try:
        increment_counter("py_outage", 1, {"phase": "before"})
        assert minutely.flush(5)
        own_server.stop()
        calls, slowest = _record_for(2.0, "py_outage")
        t0 = time.monotonic()
        assert minutely.flush(0.5) is False  # refused at once: no waiting
        assert time.monotonic() - t0 < 0.5
        assert slowest < 0.05, slowest  # the application never blocked
        assert minutely.stats()["buffered_points"] > 0
        own_server.start()  # same data dir, same port
        got = wait_for(lambda: own_server.value("py_outage", "sum", env=env,
                                                tags=["phase:away"]) == calls, timeout=15)
        assert got, own_server.value("py_outage", "sum", env=env, tags=["phase:away"])
        assert own_server.value("py_outage_d", "count", env=env) == calls
        assert own_server.value("py_outage", "sum", env=env, tags=["phase:before"]) == 1
        assert any("again after" in r.getMessage() for r in caplog.records)
        assert minutely.stats()["dropped_points"] == dropped_before
    finally:
        minutely.stop()


def test_bounded_buffer_drops_and_reports(own_server, env, caplog):
    caplog.set_level(logging.WARNING, logger="minutely")
    minutely.start(endpoint=own_server.url, push_key=PUSH_KEY, env=env, push_interval=0.2,
                   timeout=1.0, retry_initial=0.1, retry_max=0.3, max_buffer_points=5)
    try:
        own_server.stop()
        for i in range(10):  # ten series: over the bound of five points
            increment_counter("py_dropped_%d" % i)
        minutely.flush(0.2)
        assert minutely.stats()["dropped_points"] >= 10
        own_server.start()
        reported = wait_for(lambda: own_server.value(
            "minutely_client_dropped_points", "sum", env=env), timeout=10)
        assert reported and reported >= 10
        assert any("were dropped" in r.getMessage() for r in caplog.records)
    finally:
        minutely.stop()


def test_outbox_drops_oldest_minutes_first():
    box = Outbox(max_points=4)
    for minute in (60, 120, 180):
        a = box.minute(minute)
        a.add_counter(("a", ()), 1)
        a.add_counter(("b", ()), 1)
    box.enforce(now=200)
    assert sorted(box.open) == [120, 180]
    assert (box.dropped_points, box.dropped_minutes) == (2, 1)
    assert box.take_unreported() == (2, 1) and box.take_unreported() == (0, 0)
    # Minutes past the server's late-point window go too.
    box.enforce(now=180 + 24 * 3600)
    assert box.empty() and box.dropped_points == 6


def test_a_retried_batch_counts_once(server, env):
    a = MinuteAgg(int(time.time()) // 60 * 60)
    a.add_counter(("py_retried", ()), 7)
    [batch] = make_batches([a], env, None, lambda: "pytest-retry-%s" % env)
    t = Transport(server.url, PUSH_KEY)
    first = t.post(batch.body, 5)
    again = t.post(batch.body, 5)
    assert first[0] == again[0] == DELIVERED
    assert again[2].get("duplicate") is True
    assert server.value("py_retried", "sum", env=env) == 7


def test_gzip_body_is_what_the_server_reads(server, env):
    a = MinuteAgg(int(time.time()) // 60 * 60)
    a.add_gauge_many(("py_gz", (("k", "v"),)), [1, 5, 3], time.time())
    [batch] = make_batches([a], env, None, lambda: "pytest-gz-%s" % env)
    import gzip
    body = json.loads(gzip.decompress(batch.body))
    assert body["batch"] == "pytest-gz-%s" % env and body["env"] == env
    assert server.push_raw(batch.body)["accepted"] == 1
    assert server.value("py_gz", "last", env=env) == 3
    assert server.value("py_gz", "max", env=env) == 5


def _rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_long_outage_keeps_threads_running_and_memory_bounded(own_server, env):
    """The server away for MINUTELY_OUTAGE_SECS (20 s by default in CI; 600 s
    is the documented full run) while four threads record 1,000 series
    without pause: calls never wait on the network, the buffer stays within
    its bound and memory flat, and once the server is back new values and
    what is buffered arrive."""
    secs = float(os.environ.get("MINUTELY_OUTAGE_SECS", "20"))
    bound = 1500
    minutely.start(endpoint=own_server.url, push_key=PUSH_KEY, env=env, push_interval=0.2,
                   timeout=1.0, retry_initial=0.1, retry_max=0.4, max_buffer_points=bound)
    try:
        increment_counter("py_long_warmup")
        assert minutely.flush(5)
        own_server.stop()
        stop = threading.Event()
        results = []

        def work(t):
            calls, slowest = 0, 0.0
            while not stop.is_set():
                t0 = time.perf_counter()
                increment_counter("py_long_count", 1, {"thread": str(t)})
                add_distribution_value("py_long_ms", calls % 997)
                set_gauge("py_long_gauge", calls, {"order": "o%d" % (calls % 250), "t": str(t)})
                slowest = max(slowest, time.perf_counter() - t0)
                calls += 1
                if calls % 200 == 0:
                    time.sleep(0.001)
            results.append((calls, slowest))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        time.sleep(min(secs, 5))
        early, peak = _rss(), 0
        end = time.monotonic() + max(secs - 5, 0)
        while time.monotonic() < end:
            peak = max(peak, minutely.stats()["buffered_points"])
            time.sleep(0.2)
        late = _rss()
        stop.set()
        for th in threads:
            th.join()
        assert peak <= bound, peak
        assert late <= early + 16 * 2**20, (early, late)
        for calls, slowest in results:
            assert calls > 0
            # Pushes time out after a second: a call that waited on the
            # network would take that long. This catches blocking, not speed.
            assert slowest < 0.5, slowest
        own_server.start()
        increment_counter("py_long_after")
        assert minutely.flush(15)
        assert own_server.value("py_long_after", "sum", env=env) == 1
        got = own_server.value("py_long_count", "sum", env=env, tags=["thread:0"])
        assert got and got > 0, got
    finally:
        minutely.stop()
