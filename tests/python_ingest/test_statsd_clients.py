"""The `statsd` package and the `datadog` package's DogStatsd against the
real server: every value queried back is what was sent."""

import statsd
import datadog.dogstatsd.base as dogstatsd_base
from datadog.dogstatsd import DogStatsd

from conftest import exact_quantile


def test_statsd_package(server):
    c = statsd.StatsClient(*server.statsd, prefix="pkg")
    for _ in range(40):
        c.incr("jobs")
    c.incr("jobs", 60)
    c.decr("jobs", 10)
    c.gauge("queue", 10)
    c.gauge("queue", 5, delta=True)
    c.gauge("queue", -3, delta=True)
    timings = [12, 250, 31, 77, 5, 900, 48, 130, 64, 8]
    for ms in timings:
        c.timing("render", ms)
    c.set("users", "ann")
    c.set("users", "bob")
    c.set("users", "ann")
    with c.pipeline() as p:  # several lines in one datagram
        for _ in range(5):
            p.incr("piped")
    server.wait_value("pkg.jobs", "sum", 90)
    server.wait_value("pkg.queue", "last", 12)
    server.wait_value("pkg.render", "count", len(timings))
    server.wait_value("pkg.render", "sum", sum(timings))
    server.wait_value("pkg.render", "max", 900)
    p50 = exact_quantile(timings, 0.5)
    server.wait_value("pkg.render", "p50", p50, tolerance=0.01 * p50)
    server.wait_value("pkg.users", "sum", 2)
    server.wait_value("pkg.piped", "sum", 5)


def test_dogstatsd(server, monkeypatch):
    d = DogStatsd(host=server.statsd[0], port=server.statsd[1], disable_telemetry=True)
    # Client-side sampling sends a line with probability `rate`; make it
    # send every time so the expected totals are known: the server scales
    # each line by 1/rate.
    monkeypatch.setattr(dogstatsd_base, "random", lambda: 0.0)
    for _ in range(10):
        d.increment("dd.orders", 2, tags=["region:eu", "canary"])
    for _ in range(10):
        d.increment("dd.orders", 1, tags=["region:us"], sample_rate=0.25)
    d.gauge("dd.active", 7, tags=["region:eu"])
    d.gauge("dd.active", 9, tags=["region:eu"])
    hist = [3.5, 1.0, 8.25, 4.0, 2.0]
    for v in hist:
        d.histogram("dd.items", v)
    dist = [float(i) for i in range(1, 101)]
    for v in dist:
        d.distribution("dd.latency", v, tags=["route:/cart"], sample_rate=0.5)
    d.timing("dd.db", 42)
    d.flush()
    server.wait_value("dd.orders", "sum", 20, tags=["region:eu", "canary:true"])
    server.wait_value("dd.orders", "sum", 40, tags=["region:us"])
    server.wait_value("dd.active", "last", 9)
    server.wait_value("dd.active", "min", 7)
    server.wait_value("dd.items", "count", len(hist))
    server.wait_value("dd.items", "sum", sum(hist))
    server.wait_value("dd.latency", "count", 2 * len(dist), tags=["route:/cart"])
    server.wait_value("dd.latency", "sum", 2 * sum(dist))
    for field, q in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]:
        exact = exact_quantile([v for v in dist for _ in (0, 1)], q)
        server.wait_value("dd.latency", field, exact, tolerance=0.01 * exact)
    server.wait_value("dd.db", "mean", 42)
    assert 'minutely_statsd_dropped_total{reason="' not in server.metrics_text()
