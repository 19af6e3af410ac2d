"""The client's sketch keys are the server's: the shared vectors in
testdata/sketch_vectors.json, checked value by value."""

import json
import math
from collections import Counter

import pytest

from minutely import _sketch
from minutely._aggregate import MinuteAgg
from server_harness import REPO

VECTORS = json.loads((REPO / "testdata" / "sketch_vectors.json").read_text())


def test_constants_match():
    assert VECTORS["alpha"] == _sketch.ALPHA


@pytest.mark.parametrize("case", VECTORS["keys"], ids=lambda c: repr(c["value"]))
def test_key_of_every_listed_value(case):
    pos, neg = Counter(), Counter()
    zero = _sketch.add_values(pos, neg, [case["value"]])
    if case["store"] == "zero":
        assert zero == 1 and not pos and not neg
    elif case["store"] == "pos":
        assert dict(pos) == {case["key"]: 1} and not neg and zero == 0
    else:
        assert dict(neg) == {case["key"]: 1} and not pos and zero == 0


@pytest.mark.parametrize("case", VECTORS["values_of_keys"], ids=lambda c: str(c["key"]))
def test_value_of_key(case):
    assert _sketch.value_of(case["key"]) == case["value"]


@pytest.mark.parametrize("case", VECTORS["sketches"], ids=lambda c: str(len(c["groups"])))
def test_merged_sketches_and_quantiles(case):
    # Each group is aggregated on its own (as one process would), then the
    # groups are merged the way the server merges client summaries.
    merged_pos, merged_neg, merged_zero = Counter(), Counter(), 0
    for group in case["groups"]:
        agg = MinuteAgg(0)
        floats = [float(v) for v in group]
        agg.add_dist(("d", ()), floats, math.fsum(floats))
        count, total, lo, hi, pos, neg, zero = agg.dists[("d", ())]
        assert count == len(group) and lo == min(group) and hi == max(group)
        assert total == pytest.approx(math.fsum(group))
        merged_pos.update(pos)
        merged_neg.update(neg)
        merged_zero += zero
    expect = case["expect"]["merged"]
    assert _sketch.bins(merged_pos) == expect["pos"]
    assert _sketch.bins(merged_neg) == expect["neg"]
    assert merged_zero == expect["zero"]
    for q in case["expect"]["quantiles"]:
        assert _sketch.quantile(merged_pos, merged_neg, merged_zero, q["q"]) == q["value"]


def test_quantiles_within_one_percent_of_exact():
    values = [0.001 * 1.37 ** i for i in range(60)] + [-3.0, 0.0, 7.5] * 5
    pos, neg = Counter(), Counter()
    zero = _sketch.add_values(pos, neg, values)
    ordered = sorted(values)
    for q in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = ordered[int(q * (len(ordered) - 1))]
        est = _sketch.quantile(pos, neg, zero, q)
        assert abs(est - exact) <= 0.01 * abs(exact) * (1 + 1e-9)
