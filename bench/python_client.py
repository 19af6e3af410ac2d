#!/usr/bin/env python3
"""Per-call cost of minutely's Python helpers beside other metrics clients.

Measures, in one process and one run, the cost of one call of:
  - minutely: increment_counter, set_gauge, add_distribution_value (0 and 2 tags)
  - prometheus_client: Counter.inc / .labels().inc(), Gauge.set, Histogram.observe
  - datadog DogStatsd with client-side aggregation: increment, gauge, distribution
  - OpenTelemetry SDK: counter.add, histogram.record (and gauge.set when the SDK has it)
and prints each figure and the ratio of ours to the fastest other client for
the same kind and tag count (goal: at most 0.5).

Every call builds its tags the way application code does, as a literal at the
call site (a dict, a list of "k:v" strings, or label values). Nothing is sent
over the network during the timing: minutely pushes to a closed local port,
DogStatsd aggregates (it would send to a closed local port), OpenTelemetry has
no exporter.

    python3 -m pip install prometheus_client datadog opentelemetry-sdk ./clients/python
    python3 bench/python_client.py
"""

import logging
import platform
import sys
import timeit

TARGET_SECONDS = 0.25  # per timing repeat
REPEATS = 5


def per_call_ns(stmt, ns):
    """Best of REPEATS timings, in nanoseconds per call (loop included)."""
    timer = timeit.Timer(stmt, globals=ns)
    number, elapsed = 1000, 0.0
    while elapsed < 0.05:
        number *= 4
        elapsed = timer.timeit(number)
    number = max(1000, int(number * TARGET_SECONDS / elapsed))
    return min(timer.repeat(REPEATS, number)) / number * 1e9


def ours():
    import minutely
    from minutely import add_distribution_value, increment_counter, set_gauge

    logging.getLogger("minutely").setLevel(logging.CRITICAL)
    minutely.start(endpoint="http://127.0.0.1:9", push_key="bench", push_interval=10)
    ns = dict(increment_counter=increment_counter, set_gauge=set_gauge,
              add_distribution_value=add_distribution_value)
    rows = [
        ("counter", 0, "increment_counter('orders')"),
        ("counter", 2, "increment_counter('orders', 1, {'region': 'eu', 'payment': 'card'})"),
        ("gauge", 0, "set_gauge('shoppers', 12)"),
        ("gauge", 2, "set_gauge('shoppers', 12, {'region': 'eu', 'payment': 'card'})"),
        ("distribution", 0, "add_distribution_value('items', 3.5)"),
        ("distribution", 2, "add_distribution_value('items', 3.5, {'region': 'eu', 'payment': 'card'})"),
    ]
    out = [("minutely", kind, tags, stmt, per_call_ns(stmt, ns)) for kind, tags, stmt in rows]
    minutely.stop(timeout=0.1)
    return out


def prometheus():
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    reg = CollectorRegistry()
    ns = dict(
        c0=Counter("orders0", "orders", registry=reg),
        c2=Counter("orders2", "orders", ["region", "payment"], registry=reg),
        g0=Gauge("shoppers0", "shoppers", registry=reg),
        g2=Gauge("shoppers2", "shoppers", ["region", "payment"], registry=reg),
        h0=Histogram("items0", "items", registry=reg),
        h2=Histogram("items2", "items", ["region", "payment"], registry=reg),
    )
    rows = [
        ("counter", 0, "c0.inc()"),
        ("counter", 2, "c2.labels('eu', 'card').inc()"),
        ("gauge", 0, "g0.set(12)"),
        ("gauge", 2, "g2.labels('eu', 'card').set(12)"),
        ("distribution", 0, "h0.observe(3.5)"),
        ("distribution", 2, "h2.labels('eu', 'card').observe(3.5)"),
    ]
    return [("prometheus_client", k, t, s, per_call_ns(s, ns)) for k, t, s in rows]


def datadog():
    from datadog.dogstatsd import DogStatsd

    dd = DogStatsd(host="127.0.0.1", port=9, disable_aggregation=False,
                   disable_telemetry=True)
    ns = dict(dd=dd)
    rows = [
        ("counter", 0, "dd.increment('orders')"),
        ("counter", 2, "dd.increment('orders', tags=['region:eu', 'payment:card'])"),
        ("gauge", 0, "dd.gauge('shoppers', 12)"),
        ("gauge", 2, "dd.gauge('shoppers', 12, tags=['region:eu', 'payment:card'])"),
        ("distribution", 0, "dd.distribution('items', 3.5)"),
        ("distribution", 2, "dd.distribution('items', 3.5, tags=['region:eu', 'payment:card'])"),
    ]
    out = [("datadog DogStatsd (aggregating)", k, t, s, per_call_ns(s, ns)) for k, t, s in rows]
    try:
        dd.disable_background_sender()
    except Exception:
        pass
    return out


def opentelemetry():
    from opentelemetry.sdk.metrics import MeterProvider

    meter = MeterProvider().get_meter("bench")
    ns = dict(c=meter.create_counter("orders"), h=meter.create_histogram("items"))
    rows = [
        ("counter", 0, "c.add(1)"),
        ("counter", 2, "c.add(1, {'region': 'eu', 'payment': 'card'})"),
        ("distribution", 0, "h.record(3.5)"),
        ("distribution", 2, "h.record(3.5, {'region': 'eu', 'payment': 'card'})"),
    ]
    if hasattr(meter, "create_gauge"):
        ns["g"] = meter.create_gauge("shoppers")
        rows += [("gauge", 0, "g.set(12)"),
                 ("gauge", 2, "g.set(12, {'region': 'eu', 'payment': 'card'})")]
    return [("opentelemetry-sdk", k, t, s, per_call_ns(s, ns)) for k, t, s in rows]


def main():
    results = ours()
    for name, fn in (("prometheus_client", prometheus), ("datadog", datadog),
                     ("opentelemetry-sdk", opentelemetry)):
        try:
            results += fn()
        except ImportError as e:
            print("skipped %s: %s (pip install it to compare)" % (name, e), file=sys.stderr)
    print("Python %s on %s" % (platform.python_version(), platform.machine()))
    print()
    print("%-32s %-13s %4s %9s  %s" % ("client", "kind", "tags", "ns/call", "call"))
    for client, kind, tags, stmt, ns in results:
        print("%-32s %-13s %4d %9.0f  %s" % (client, kind, tags, ns, stmt))
    print()
    print("%-13s %4s %9s %9s  %-32s %6s" % ("kind", "tags", "minutely", "fastest", "fastest other", "ratio"))
    worst = 0.0
    for client, kind, tags, stmt, ns in results:
        if client != "minutely":
            continue
        others = [r for r in results if r[0] != "minutely" and r[1] == kind and r[2] == tags]
        if not others:
            continue
        best = min(others, key=lambda r: r[4])
        ratio = ns / best[4]
        worst = max(worst, ratio)
        print("%-13s %4d %9.0f %9.0f  %-32s %6.2f" % (kind, tags, ns, best[4], best[0], ratio))
    if worst:
        print()
        print("largest ratio: %.2f (goal: at most 0.50)" % worst)


if __name__ == "__main__":
    main()
