"""The OpenTelemetry Python SDK with the OTLP/HTTP (protobuf) exporter
against the real server: counters with delta and cumulative temporality,
an up-down counter, histograms with explicit and exponential buckets and an
observable gauge. Sums are exact; percentiles are within the accuracy the
docs state (the bucket holding the true value, or the exponential bucket's
relative width, plus 1%)."""

import math

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource

from conftest import PUSH_KEY, exact_quantile

BOUNDS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 1000]
VALUES = [1.5 + (i * 37 % 400) * 1.7 for i in range(300)]


def provider(server, temporality, views=()):
    kinds = [Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter,
             ObservableGauge]
    exporter = OTLPMetricExporter(
        endpoint=server.url + "/v1/metrics",
        headers={"Authorization": "Bearer " + PUSH_KEY},
        preferred_temporality={k: temporality for k in kinds},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create({"service.name": "otel-test",
                                "deployment.environment.name": "otel"})
    return MeterProvider(resource=resource, metric_readers=[reader], views=list(views))


def test_counters_gauges_and_histograms(server):
    delta = provider(server, AggregationTemporality.DELTA, views=[
        View(instrument_name="otel.latency", aggregation=ExplicitBucketHistogramAggregation(BOUNDS)),
        View(instrument_name="otel.size", aggregation=ExponentialBucketHistogramAggregation(max_size=160)),
    ])
    cumulative = provider(server, AggregationTemporality.CUMULATIVE)
    dm, cm = delta.get_meter("t"), cumulative.get_meter("t")

    orders = dm.create_counter("otel.orders_delta")
    requests = cm.create_counter("otel.requests_cumulative")
    stock = cm.create_up_down_counter("otel.stock")
    latency = dm.create_histogram("otel.latency", unit="ms")
    size = dm.create_histogram("otel.size")
    temps = iter([19.0, 21.5])
    dm.create_observable_gauge("otel.temperature",
                               callbacks=[lambda _o: [Observation(next(temps), {"room": "a"})]])

    orders.add(3, {"region": "eu"})
    requests.add(5)
    stock.add(10)
    for v in VALUES[:150]:
        latency.record(v)
        size.record(v)
    assert delta.force_flush() and cumulative.force_flush()
    orders.add(4, {"region": "eu"})
    requests.add(7)
    stock.add(-3)
    for v in VALUES[150:]:
        latency.record(v)
        size.record(v)
    assert delta.force_flush() and cumulative.force_flush()

    env = "otel"
    server.wait_value("otel.orders_delta", "sum", 7, env=env, tags=["region:eu", "service:otel-test"])
    server.wait_value("otel.requests_cumulative", "sum", 12, env=env)
    server.wait_value("otel.stock", "last", 7, env=env)
    server.wait_value("otel.temperature", "last", 21.5, env=env, tags=["room:a"])
    for name in ("otel.latency", "otel.size"):
        server.wait_value(name, "count", len(VALUES), env=env)
        server.wait_value(name, "sum", sum(VALUES), tolerance=1e-6 * sum(VALUES), env=env)
        server.wait_value(name, "min", min(VALUES), env=env)
        server.wait_value(name, "max", max(VALUES), env=env)
    for field, q in [("p50", 0.5), ("p75", 0.75), ("p90", 0.9), ("p99", 0.99)]:
        exact = exact_quantile(VALUES, q)
        # Explicit buckets: within the bucket that holds the true value.
        i = next((i for i, b in enumerate(BOUNDS) if exact <= b), len(BOUNDS))
        lo = BOUNDS[i - 1] if i > 0 else min(VALUES)
        hi = BOUNDS[i] if i < len(BOUNDS) else max(VALUES)
        got = server.value("otel.latency", field, env=env)
        assert lo * 0.99 <= got <= hi * 1.01, (field, got, lo, hi, exact)
        # Exponential buckets: within the bucket's relative width plus 1%.
        got = server.value("otel.size", field, env=env)
        scale_width = 2 ** (2 ** -4)  # at 160 buckets these values get scale >= 4
        assert abs(got - exact) <= (scale_width * 1.01 - 1) * exact, (field, got, exact)
    delta.shutdown()
    cumulative.shutdown()
