"""One UTC minute of client-side aggregates, and the points it becomes.

What a minute keeps per series follows DESIGN section 1: a counter its sum; a
gauge its last value (by time), min, max, sum and count; a distribution its
count, sum, min, max and a 1% DDSketch. Pushing a minute in several parts (one
every push interval) is fine: the server merges parts exactly as we do.
"""

from collections import Counter
from math import fsum, isfinite

from . import _sketch

COUNTER = "counter"
GAUGE = "gauge"
DISTRIBUTION = "distribution"

_PLAIN = frozenset((int, float))
_LIMIT = 1e308  # an int beyond a float's range cannot be pushed


def number(value):
    """``value`` as a finite int or float, or None when it is not one.
    Strings are refused even when they look like numbers."""
    if isinstance(value, (str, bytes, bytearray)):
        return None
    if type(value) is int:
        return value if -_LIMIT < value < _LIMIT else None
    try:
        f = float(value)
    except Exception:
        return None
    if not isfinite(f):
        return None
    if isinstance(value, int):  # bool and int subclasses stay whole
        return int(value)
    return f


def _numbers(values):
    """(good numbers, how many were bad)."""
    good = [n for n in map(number, values) if n is not None]
    return good, len(values) - len(good)


def counter_total(values):
    """(sum of the good values, how many were bad). Ints add exactly."""
    try:
        total = sum(values)  # in C; a str or None raises
        kind = type(total)
        if kind is int and -_LIMIT < total < _LIMIT:
            return total, 0  # only ints and bools give an int
        if kind is float and total - total == 0:
            return fsum(values), 0  # finite; fsum for an exact rounding
    except Exception:
        pass
    good, bad = _numbers(values)
    total = sum(good)
    if type(total) is float:
        total = fsum(good)
        if not isfinite(total):  # the sum itself overflowed
            return 0, len(values)
    return total, bad


def gauge_values(values):
    """(values as plain finite numbers, how many were bad)."""
    try:
        total = sum(values)
        if type(total) in _PLAIN and total - total == 0:
            return values, 0
    except Exception:
        pass
    return _numbers(values)


def floats_of(values):
    """(finite numbers with their exact sum, how many values were bad)."""
    try:
        total = fsum(values)  # converts in C; refuses str and None
        if isfinite(total) and set(map(type, values)) <= _PLAIN:
            return values, total, 0
    except Exception:  # TypeError, or ValueError/OverflowError for inf - inf
        pass
    good, bad = _numbers(values)
    good = [float(v) for v in good]
    return good, fsum(good), bad


class MinuteAgg:
    """Aggregates of one minute (``minute`` = its start, unix seconds), keyed
    by series key ``(name, ((tag, value), ...))`` with tags sorted."""

    __slots__ = ("minute", "counters", "gauges", "dists")

    def __init__(self, minute):
        self.minute = minute
        self.counters = {}
        self.gauges = {}
        self.dists = {}

    def npoints(self):
        return len(self.counters) + len(self.gauges) + len(self.dists)

    def add_counter(self, skey, total):
        self.counters[skey] = self.counters.get(skey, 0) + total

    def add_gauge(self, skey, value, ts):
        g = self.gauges.get(skey)
        if g is None:
            self.gauges[skey] = [value, value, value, value, 1, ts]
            return
        if ts >= g[5]:
            g[0] = value
            g[5] = ts
        if value < g[1]:
            g[1] = value
        if value > g[2]:
            g[2] = value
        g[3] += value
        g[4] += 1

    def add_gauge_many(self, skey, values, now):
        """Values set in order up to ``now``: the last one counts as set at
        ``now``."""
        last, lo, hi, total = values[-1], min(values), max(values), sum(values)
        g = self.gauges.get(skey)
        if g is None:
            self.gauges[skey] = [last, lo, hi, total, len(values), now]
            return
        if now >= g[5]:
            g[0] = last
            g[5] = now
        if lo < g[1]:
            g[1] = lo
        if hi > g[2]:
            g[2] = hi
        g[3] += total
        g[4] += len(values)

    def add_dist(self, skey, values, total):
        """Finite numbers with their sum ``total``."""
        d = self.dists.get(skey)
        lo, hi = min(values), max(values)
        if d is None:
            d = self.dists[skey] = [0, 0.0, lo, hi, Counter(), Counter(), 0]
        d[0] += len(values)
        d[1] += total
        if lo < d[2]:
            d[2] = lo
        if hi > d[3]:
            d[3] = hi
        d[6] += _sketch.add_values(d[4], d[5], values)

    def points(self):
        """The minute as push points (JSON-ready dicts)."""
        out = []
        ts = self.minute
        for (name, tags), total in self.counters.items():
            p = {"kind": COUNTER, "name": name, "value": total, "ts": ts}
            if tags:
                p["tags"] = dict(tags)
            out.append(p)
        for (name, tags), (last, lo, hi, total, count, last_ts) in self.gauges.items():
            p = {"kind": GAUGE, "name": name, "ts": round(last_ts, 3),
                 "summary": {"last": +last, "min": +lo, "max": +hi, "sum": total, "count": count}}
            if tags:
                p["tags"] = dict(tags)
            out.append(p)
        for (name, tags), (count, total, lo, hi, pos, neg, zero) in self.dists.items():
            sketch = {"alpha": _sketch.ALPHA, "pos": _sketch.bins(pos),
                      "neg": _sketch.bins(neg), "zero": zero}
            p = {"kind": DISTRIBUTION, "name": name, "ts": ts,
                 "summary": {"count": count, "sum": total, "min": lo, "max": hi, "sketch": sketch}}
            if tags:
                p["tags"] = dict(tags)
            out.append(p)
        return out
