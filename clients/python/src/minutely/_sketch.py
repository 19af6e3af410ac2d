"""The DDSketch mapping, exactly as the server computes it.

A positive value ``v`` falls in bucket ``key = ceil(ln(v) * m)`` with
``m = 1 / ln1p(2a / (1 - a))`` and ``a = 0.01``: bucket ``k`` holds
``(gamma^(k-1), gamma^k]`` with ``gamma = (1 + a) / (1 - a)``, and is read back
as ``2 gamma^k / (1 + gamma)``, within 1% of every value in it. Negative values
use the same mapping on ``-v`` in their own store; magnitudes below
``MIN_INDEXABLE`` count as zero. The server merges our buckets with its own,
so the keys must be bit-for-bit the server's (``testdata/sketch_vectors.json``
checks them).
"""

from collections import Counter
from itertools import repeat
from math import ceil, exp, log, log1p
from operator import mul

ALPHA = 0.01
GAMMA = (1.0 + ALPHA) / (1.0 - ALPHA)
# The same expression, in the same order, as the server's `multiplier()`.
MULTIPLIER = 1.0 / log1p(2.0 * ALPHA / (1.0 - ALPHA))
MIN_INDEXABLE = 1e-300
# The server refuses a store with more buckets than this; 1% buckets cover
# 1e-9..1e12 in about 2,400 keys, so only pathological data reach it.
MAX_BINS_PER_STORE = 4096

_count_elements = Counter.update  # C-accelerated counting of keys


def key_of(magnitude):
    """Bucket key of a positive magnitude >= MIN_INDEXABLE."""
    return ceil(log(magnitude) * MULTIPLIER)


def value_of(key):
    """The value that represents bucket ``key``."""
    return exp(key / MULTIPLIER) * (2.0 / (1.0 + GAMMA))


def add_values(pos, neg, floats):
    """Adds finite floats to the stores ``pos`` and ``neg`` (key -> count
    Counters) and returns how many counted as zero."""
    if floats and min(floats) >= MIN_INDEXABLE:
        # The common case, all positive: counted in C, about 60 ns a value.
        _count_elements(pos, map(ceil, map(mul, map(log, floats), repeat(MULTIPLIER))))
        return 0
    zero = 0
    for v in floats:
        if v >= MIN_INDEXABLE:
            k = ceil(log(v) * MULTIPLIER)
            pos[k] = pos.get(k, 0) + 1
        elif v <= -MIN_INDEXABLE:
            k = ceil(log(-v) * MULTIPLIER)
            neg[k] = neg.get(k, 0) + 1
        else:
            zero += 1
    return zero


def bins(store):
    """A store as the wire's sorted ``[[key, count], ...]``, collapsing the
    lowest keys into one bucket if there are more than the server accepts
    (the low quantiles of such a store lose their 1% guarantee)."""
    items = sorted(store.items())
    if len(items) > MAX_BINS_PER_STORE:
        cut = len(items) - MAX_BINS_PER_STORE + 1
        low = sum(c for _, c in items[:cut])
        items = [(items[cut][0], low + items[cut][1])] + items[cut + 1:]
    return [[k, c] for k, c in items]


def quantile(pos, neg, zero, q):
    """The value at rank ``floor(q * (count - 1))``, within 1%, like the
    server's ``Sketch::quantile``. ``pos``/``neg`` map key -> count."""
    if not 0.0 <= q <= 1.0:
        return None
    count = sum(pos.values()) + sum(neg.values()) + zero
    if count <= 0:
        return None
    rank = float(int(q * (count - 1)))
    seen = 0.0
    for key in sorted(neg, reverse=True):
        seen += neg[key]
        if seen > rank:
            return -value_of(key)
    seen += zero
    if seen > rank:
        return 0.0
    for key in sorted(pos):
        seen += pos[key]
        if seen > rank:
            return value_of(key)
    if pos:
        return value_of(max(pos))
    if zero:
        return 0.0
    return -value_of(min(neg))
