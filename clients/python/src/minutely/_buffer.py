"""The outbox: minutes waiting to be pushed, bounded, oldest dropped first.

Minutes that no push has tried yet stay open, so a long outage merges into
one aggregate per minute instead of piling up parts. A batch, once tried, is
frozen: a retry sends the same body under the same batch key, so the server
counts it once even if an earlier try did arrive. The bound counts points
(one per series per minute); beyond it, and for minutes older than the
server's late-point window, the oldest minutes are dropped and counted, and
the count is reported when pushes succeed again.
"""

import gzip
import json
from collections import deque

from ._aggregate import MinuteAgg

# The server refuses points older than 24 h; keep a margin for clock skew and
# for the time a retry takes.
MAX_AGE_SECONDS = 23 * 3600
# Per push: well under the server's 50,000 points and 10 MiB (after gunzip).
MAX_BATCH_POINTS = 5000
MAX_BATCH_BYTES = 4 * 1024 * 1024


class Batch:
    __slots__ = ("key", "body", "npoints", "minute", "names", "tries")

    def __init__(self, key, body, npoints, minute, names):
        self.key = key
        self.body = body
        self.npoints = npoints
        self.minute = minute
        self.names = names  # metric name per point index, for rejections
        self.tries = 0


def make_batches(aggs, env, app, next_key):
    """Serializes minute aggregates into gzip bodies of bounded size."""
    batches = []
    parts, names, size, first = [], [], 0, None

    def close():
        key = next_key()
        head = {"batch": key}
        if env:
            head["env"] = env
        if app:
            head["app"] = app
        text = json.dumps(head, separators=(",", ":"))[:-1] + ',"points":[' + ",".join(parts) + "]}"
        body = gzip.compress(text.encode("utf-8"), compresslevel=5)
        batches.append(Batch(key, body, len(parts), first, names))

    for a in aggs:
        for p in a.points():
            s = json.dumps(p, separators=(",", ":"), allow_nan=False)
            if parts and (len(parts) >= MAX_BATCH_POINTS or size + len(s) > MAX_BATCH_BYTES):
                close()
                parts, names, size, first = [], [], 0, None
            if first is None:
                first = a.minute
            parts.append(s)
            names.append(p["name"])
            size += len(s) + 1
    if parts:
        close()
    return batches


class Outbox:
    def __init__(self, max_points):
        self.open = {}  # minute start -> MinuteAgg, not tried yet
        self.frozen = deque()  # Batch, tried at least once or about to be
        self.max_points = max_points
        self.dropped_points = 0
        self.dropped_minutes = 0
        self.unreported_points = 0
        self.unreported_minutes = 0

    def minute(self, start):
        a = self.open.get(start)
        if a is None:
            a = self.open[start] = MinuteAgg(start)
        return a

    def size(self):
        return sum(b.npoints for b in self.frozen) + sum(a.npoints() for a in self.open.values())

    def empty(self):
        return not self.frozen and not self.open

    def take_open(self):
        aggs = [self.open[m] for m in sorted(self.open)]
        self.open = {}
        return aggs

    def remove(self, batch):
        try:
            self.frozen.remove(batch)
        except ValueError:  # dropped meanwhile
            pass

    def _drop(self, npoints, nminutes):
        self.dropped_points += npoints
        self.dropped_minutes += nminutes
        self.unreported_points += npoints
        self.unreported_minutes += nminutes

    def enforce(self, now):
        """Drops minutes past the late-point window, then the oldest minutes
        while the outbox holds more than ``max_points`` points."""
        cutoff = now - MAX_AGE_SECONDS
        while self.frozen and self.frozen[0].minute < cutoff:
            self._drop(self.frozen.popleft().npoints, 1)
        for m in [m for m in self.open if m < cutoff]:
            self._drop(self.open.pop(m).npoints(), 1)
        size = self.size()
        while size > self.max_points and (self.frozen or self.open):
            oldest_open = min(self.open) if self.open else None
            if self.frozen and (oldest_open is None or self.frozen[0].minute <= oldest_open):
                n = self.frozen.popleft().npoints
            else:
                n = self.open.pop(oldest_open).npoints()
            self._drop(n, 1)
            size -= n

    def take_unreported(self):
        points, minutes = self.unreported_points, self.unreported_minutes
        self.unreported_points = self.unreported_minutes = 0
        return points, minutes
