"""Every helper lands in the real server with exact sums, gauge fields and
percentiles within 1%; tags; bad arguments are logged once and dropped."""

import logging
import random

import pytest

import minutely
from minutely import add_distribution_value, increment_counter, set_gauge


def exact_quantile(values, q):
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_counter_sums_exactly(client, env):
    for _ in range(1000):
        increment_counter("py_orders")
    increment_counter("py_orders", 5)
    increment_counter("py_orders", -3)
    increment_counter("py_refunds", 2.5)
    increment_counter("py_refunds", 0.25)
    assert minutely.flush(5)
    assert client.value("py_orders", "sum", env=env) == 1002
    assert client.value("py_refunds", "sum", env=env) == 2.75


def test_gauge_fields(client, env):
    for v in (3, 15, 7, 12):
        set_gauge("py_shoppers", v)
    assert minutely.flush(5)
    assert client.value("py_shoppers", "last", env=env) == 12
    assert client.value("py_shoppers", "min", env=env) == 3
    assert client.value("py_shoppers", "max", env=env) == 15
    assert client.value("py_shoppers", "mean", env=env) == pytest.approx(37 / 4)


def test_distribution_count_sum_and_percentiles(client, env):
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1.2) for _ in range(5000)] + [0.0, -4.5, 1e-9]
    for v in values:
        add_distribution_value("py_latency", v)
    assert minutely.flush(5)
    assert client.value("py_latency", "count", env=env) == len(values)
    assert client.value("py_latency", "sum", env=env) == pytest.approx(sum(values), rel=1e-9)
    assert client.value("py_latency", "min", env=env) == min(values)
    assert client.value("py_latency", "max", env=env) == max(values)
    for field, q in (("p50", 0.5), ("p75", 0.75), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        exact = exact_quantile(values, q)
        got = client.value("py_latency", field, env=env)
        assert abs(got - exact) <= 0.01 * abs(exact) * (1 + 1e-9), (field, got, exact)


def test_pushes_of_one_minute_merge(client, env):
    """Several pushes (one per interval) of one minute add up on the server."""
    for i in range(3):
        for v in range(1, 11):
            add_distribution_value("py_items", v)
            increment_counter("py_parts")
        assert minutely.flush(5)
    assert client.value("py_items", "count", env=env) == 30
    assert client.value("py_items", "sum", env=env) == 165
    assert client.value("py_parts", "sum", env=env) == 30


def test_tags_group_and_filter(client, env):
    for _ in range(7):
        increment_counter("py_tagged", 1, {"region": "eu", "payment": "card"})
    for _ in range(3):
        increment_counter("py_tagged", 1, {"payment": "card", "region": "us"})  # other order
    increment_counter("py_tagged", 10, {"region": "us", "payment": "paypal"})
    set_gauge("py_tag_types", 1, {"retried": True, "attempt": 2, "ratio": 0.5})
    add_distribution_value("py_tag_dist", 4, {"region": "eu"})
    assert minutely.flush(5)
    by_region = {s["tags"]["region"]: [v for _, v in s["points"] if v is not None][0]
                 for s in client.query("py_tagged", "sum", env=env, group_by="region")}
    assert by_region == {"eu": 7, "us": 13}
    assert client.value("py_tagged", "sum", env=env, tags=["payment:card"]) == 10
    assert client.value("py_tag_types", "last", env=env,
                        tags=["retried:true", "attempt:2", "ratio:0.5"]) == 1
    assert client.value("py_tag_dist", "count", env=env, tags=["region:eu"]) == 1


def test_bad_arguments_are_logged_once_and_dropped(client, env, caplog):
    caplog.set_level(logging.WARNING, logger="minutely")
    for _ in range(3):
        increment_counter("bad name", 1)
        increment_counter("py_badvalue", "12")
        set_gauge("py_badtags", 1, {"bad key": "x"})
        add_distribution_value("py_nan", float("nan"))
        increment_counter("py_toomany", 1, {"k%d" % i: "v" for i in range(17)})
    increment_counter("py_good_after_bad", 1)
    increment_counter("py_good_after_bad", float("inf"))  # dropped when folded
    increment_counter("py_good_after_bad", 2)
    assert minutely.flush(5)
    messages = [r.getMessage() for r in caplog.records]
    for needle in ("'bad name'", "'py_badvalue'", "'py_badtags'", "'py_nan'", "'py_toomany'",
                   "'py_good_after_bad'"):
        assert sum(needle in m for m in messages) == 1, (needle, messages)
    assert client.value("py_good_after_bad", "sum", env=env) == 3
    assert client.query("py_badvalue", env=env) == []


def test_kind_conflict_in_process_is_dropped(client, env, caplog):
    caplog.set_level(logging.WARNING, logger="minutely")
    increment_counter("py_kind_clash", 1)
    set_gauge("py_kind_clash", 5)
    assert minutely.flush(5)
    assert client.value("py_kind_clash", "sum", env=env) == 1
    assert any("py_kind_clash" in r.getMessage() for r in caplog.records)


def test_server_rejections_are_logged(client, env, caplog):
    import json
    caplog.set_level(logging.WARNING, logger="minutely")
    # Another process made the name a gauge: the server refuses our counter.
    body = {"env": env, "points": [{"kind": "gauge", "name": "py_other_kind", "value": 1}]}
    assert client.push_raw(json.dumps(body).encode(), gzip_body=False)["accepted"] == 1
    increment_counter("py_other_kind", 1)
    increment_counter("py_fine_beside", 1)
    assert minutely.flush(5)
    assert any("refused a point of 'py_other_kind'" in r.getMessage() for r in caplog.records)
    assert client.value("py_fine_beside", "sum", env=env) == 1


def test_helpers_before_start_are_kept(server, env):
    from server_harness import PUSH_KEY
    minutely.stop()
    increment_counter("py_early", 4)
    minutely.start(endpoint=server.url, push_key=PUSH_KEY, env=env, push_interval=0.2)
    try:
        assert minutely.flush(5)
        assert server.value("py_early", "sum", env=env) == 4
    finally:
        minutely.stop()
