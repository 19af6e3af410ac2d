"""The server goes away and comes back on the same port: what was buffered
arrives, helper calls never wait, drops are bounded, counted and reported;
a retried batch counts once."""

import json
import logging
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
        assert minutely.stats()["dropped_points"] == 0
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
