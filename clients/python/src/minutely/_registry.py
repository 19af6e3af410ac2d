"""The three helpers, the series they feed, and folding into minutes.

Hot path: a helper call finds its series' buffer by a *fast key* (the name
alone, or the name and the tags' items as given) and appends the raw value.
A list append is atomic under the GIL, so recording takes no lock and never
waits. A buffer is folded into its minute aggregate when it reaches
``BUF_CAP`` values (by the recording thread, only if it gets the lock without
waiting) and at every push tick (by the pusher thread). Folding takes the
first ``n`` values with two atomic list operations (copy them, delete them),
so values appended meanwhile stay for the next fold.

The first call with a new fast key takes the slow path: it checks the name,
tags and value, logs a bad one once per name and drops it, and maps the fast
key to the series' buffer. Values are checked again when folded, so a bad
value that reaches a known series is dropped and logged there.

A gauge value carries the time of the fold that takes it (at most one push
interval after it was set, and within the minute it was set in): that time
decides which value is "last" when several processes set the same series.

Tag values that compare equal in Python (``True``, ``1`` and ``1.0``) share a
fast key and so take the text of the first one a process saw.
"""

import logging
import re
import threading
from time import time

from . import _aggregate as agg
from ._aggregate import COUNTER, DISTRIBUTION, GAUGE
from ._buffer import Outbox

log = logging.getLogger("minutely")

# Values a buffer holds before the recording thread folds it: large enough
# that folding (about 100 ns a value, in C loops) is amortised, small enough
# that a busy series holds a few KB between push ticks.
BUF_CAP = 1024
# If folding keeps failing to get the lock (another thread is folding), a
# buffer may grow to this before a recording thread waits for the lock.
HARD_CAP = 65536
HARD_WAIT_SECONDS = 0.05
# A series with no value for this many push ticks is forgotten (its fast keys
# too); it comes back through the slow path on its next value.
IDLE_TICKS = 60
# Distinct warnings remembered for "log once per name".
MAX_WARNINGS = 10000

MAX_TAGS = 16
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}\Z")
_TAG_KEY = re.compile(r"[A-Za-z0-9_./:-]{1,64}\Z")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Rust's char::is_control


class _Buf(list):
    __slots__ = ("series",)


class _Series:
    __slots__ = ("kind", "skey", "buf", "idle", "fast_keys")

    def __init__(self, kind, skey):
        self.kind = kind
        self.skey = skey
        self.buf = _Buf()
        self.buf.series = self
        self.idle = 0
        self.fast_keys = set()


class _Limits:
    max_series = 10000
    max_buffer_points = 100000


limits = _Limits()


def _fresh_state():
    global _lock, _counters, _gauges, _dists, _series, _kinds, _outbox
    global _warned, _pending_logs, _graveyard, _bad_values
    _lock = threading.Lock()
    _counters = {}
    _gauges = {}
    _dists = {}
    _series = {}  # series key -> _Series
    _kinds = {}  # name -> [kind, number of its series]
    _outbox = Outbox(limits.max_buffer_points)
    _warned = set()
    _pending_logs = []  # messages logged once outside the lock
    _graveyard = []  # forgotten series, folded once more
    _bad_values = 0


_fresh_state()

# Set by the pusher: called on the slow path so that its thread starts
# lazily (also in a forked child, whose state starts empty).
on_new_series = None


# --- the hot path ---------------------------------------------------------


def set_gauge(name, value, tags=None):
    """Sets gauge ``name`` to ``value``. Each minute keeps the last value,
    min, max, sum and count."""
    try:
        buf = _gauges[(name, tuple(tags.items())) if tags else name]
    except Exception:
        return _slow(GAUGE, name, value, tags)
    buf.append(value)
    if len(buf) >= BUF_CAP:
        _fold_full(buf)


def increment_counter(name, value=1, tags=None):
    """Adds ``value`` (default 1, may be negative) to counter ``name``."""
    try:
        buf = _counters[(name, tuple(tags.items())) if tags else name]
    except Exception:
        return _slow(COUNTER, name, value, tags)
    buf.append(value)
    if len(buf) >= BUF_CAP:
        _fold_full(buf)


def add_distribution_value(name, value, tags=None):
    """Adds one observation to distribution ``name`` (count, sum, min, max
    and percentiles within 1%)."""
    try:
        buf = _dists[(name, tuple(tags.items())) if tags else name]
    except Exception:
        return _slow(DISTRIBUTION, name, value, tags)
    buf.append(value)
    if len(buf) >= BUF_CAP:
        _fold_full(buf)


def _fold_full(buf):
    lock = _lock
    if lock.acquire(False):
        try:
            _fold(buf.series, time())
        finally:
            lock.release()
    elif len(buf) >= HARD_CAP:
        if lock.acquire(timeout=HARD_WAIT_SECONDS):
            try:
                _fold(buf.series, time())
            finally:
                lock.release()
        elif len(buf) >= HARD_CAP:
            # Still full after the wait: drop the oldest values to bound
            # memory. A holder that folded the buffer meanwhile left only
            # newer values, which stay for the next fold.
            n = len(buf)
            del buf[:n]
            _outbox._drop(n, 0)
            _warn_once(("overrun", buf.series.skey[0]),
                       "minutely: values of %r came faster than they could be folded; "
                       "%d were dropped (counted in dropped_points)", buf.series.skey[0], n)
    if _pending_logs:
        emit_logs()


# --- the slow path ----------------------------------------------------------


def _warn_once(key, message, *args):
    """Queues a warning unless one with this key was queued before. Call with
    or without the lock; emit_logs() logs outside it."""
    if key in _warned or len(_warned) >= MAX_WARNINGS:
        return
    _warned.add(key)
    _pending_logs.append((message, args))


def emit_logs():
    while _pending_logs:
        try:
            message, args = _pending_logs.pop(0)
        except IndexError:
            return
        log.warning(message, *args)


def _canonical_tags(name, tags):
    """Sorted ((key, text), ...) or None after warning about bad tags."""
    if not tags:
        return ()
    if not hasattr(tags, "items"):
        _warn_once(("tags", name), "minutely: tags of %r must be a dict, got %s; dropped",
                   name, type(tags).__name__)
        return None
    out = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not _TAG_KEY.match(k):
            _warn_once(("tags", name), "minutely: tag key %r of %r is invalid (use 1-64 "
                       "characters of A-Z a-z 0-9 _ . : / -); dropped", k, name)
            return None
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, (str, int, float)):
            text = str(v)
        else:
            _warn_once(("tags", name), "minutely: tag %r of %r has a %s value; use str, "
                       "int, float or bool; dropped", k, name, type(v).__name__)
            return None
        if not 1 <= len(text) <= 256 or _CONTROL.search(text):
            _warn_once(("tags", name), "minutely: tag %r of %r has an invalid value (use "
                       "1-256 characters without control characters); dropped", k, name)
            return None
        out[k] = text
    if len(out) > MAX_TAGS:
        _warn_once(("tags", name), "minutely: %r has %d tags; at most %d are allowed; dropped",
                   name, len(out), MAX_TAGS)
        return None
    return tuple(sorted(out.items()))


def _slow(kind, name, value, tags):
    try:
        _slow_inner(kind, name, value, tags)
    except Exception:  # never raise into the application
        log.debug("minutely: unexpected error recording %r", name, exc_info=True)
    if _pending_logs:
        emit_logs()


def _slow_inner(kind, name, value, tags):
    if on_new_series is not None:
        on_new_series()
    if not isinstance(name, str) or not _NAME.match(name):
        _warn_once(("name", repr(name)[:300]), "minutely: metric name %r is invalid (use "
                   "1-200 characters of A-Z a-z 0-9 _ . : - starting with a letter or _); "
                   "dropped", name)
        return
    if agg.number(value) is None:
        _warn_once(("value", name), "minutely: %s %r got %r, not a finite number; dropped",
                   kind, name, value)
        return
    ctags = _canonical_tags(name, tags)
    if ctags is None:
        return
    fast = (name, tuple(tags.items())) if tags else name
    skey = (name, ctags)
    with _lock:
        known = _kinds.get(name)
        if known is not None and known[0] != kind:
            _warn_once(("kind", name, kind), "minutely: %r is a %s in this process; a %s "
                       "value for it is dropped (use another name)", name, known[0], kind)
            return
        s = _series.get(skey)
        if s is None:
            if len(_series) >= limits.max_series:
                _warn_once(("series_limit",), "minutely: more than %d series in this "
                           "process; new series are dropped (check for a tag with "
                           "unbounded values, or raise max_series)", limits.max_series)
                return
            s = _series[skey] = _Series(kind, skey)
            if known is None:
                known = _kinds[name] = [kind, 0]
            known[1] += 1
        s.fast_keys.add(fast)
        (_counters if kind is COUNTER else _gauges if kind is GAUGE else _dists)[fast] = s.buf
        s.buf.append(value)


# --- folding (lock held) ------------------------------------------------------


def _fold(s, now):
    buf = s.buf
    n = len(buf)
    if not n:
        s.idle += 1
        return
    values = buf[:n]
    del buf[:n]
    s.idle = 0
    try:
        _fold_values(s, values, now)
    except Exception:  # values that defeat even the careful path
        global _bad_values
        _bad_values += len(values)
        _warn_once(("fold", s.skey[0]), "minutely: could not aggregate values of %r; "
                   "dropped", s.skey[0])


def _fold_values(s, values, now):
    name = s.skey[0]
    if s.kind is COUNTER:
        total, bad = agg.counter_total(values)
        if len(values) > bad:
            _outbox.minute(int(now // 60) * 60).add_counter(s.skey, total)
    elif s.kind is DISTRIBUTION:
        good, total, bad = agg.floats_of(values)
        if good:
            _outbox.minute(int(now // 60) * 60).add_dist(s.skey, good, total)
    else:
        good, bad = agg.gauge_values(values)
        if good:
            _outbox.minute(int(now // 60) * 60).add_gauge_many(s.skey, good, now)
    if bad:
        global _bad_values
        _bad_values += bad
        _warn_once(("value", name), "minutely: %s %r got a value that is not a finite "
                   "number; dropped", s.kind, name)


def fold_all(now, attribute_to=None):
    """Folds every buffer into its minute (counters and distributions into the
    minute of ``attribute_to``, default ``now``), forgets idle series and
    enforces the outbox bound. Called by the pusher and by flush()."""
    at = now if attribute_to is None else attribute_to
    with _lock:
        graveyard = _graveyard[:]
        del _graveyard[:]
        for s in graveyard:
            _fold(s, at)
        idle = []
        for s in _series.values():
            _fold(s, at)
            if s.idle >= IDLE_TICKS:
                idle.append(s)
        for s in idle:
            _forget(s)
        _outbox.max_points = limits.max_buffer_points
        _outbox.enforce(now)
    emit_logs()


def _forget(s):
    del _series[s.skey]
    table = _counters if s.kind is COUNTER else _gauges if s.kind is GAUGE else _dists
    for fast in s.fast_keys:
        if table.get(fast) is s.buf:
            del table[fast]
    # A thread that looked the buffer up just before may still append to it.
    _graveyard.append(s)
    known = _kinds.get(s.skey[0])
    if known is not None:
        known[1] -= 1
        if known[1] <= 0:
            del _kinds[s.skey[0]]


def outbox():
    return _outbox


def lock():
    return _lock


def stats():
    with _lock:
        return {
            "series": len(_series),
            "buffered_points": _outbox.size(),
            "dropped_points": _outbox.dropped_points,
            "dropped_minutes": _outbox.dropped_minutes,
            "bad_values": _bad_values,
        }


def reset_after_fork():
    """In a forked child: everything recorded before the fork belongs to the
    parent, which sends it; the child starts empty with new locks."""
    _fresh_state()
