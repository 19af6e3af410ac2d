"""The background pusher: configuration, the push thread, flush, retries,
fork safety and the flush at exit.

Every push interval (aligned to the clock, and always at a minute boundary)
the thread folds the buffers into minutes and pushes what the outbox holds.
A failed push is retried with exponential backoff and jitter while the
outbox keeps a bounded amount. Nothing here runs on an application thread
except flush() and stop(), which the application calls itself.
"""

import atexit
import logging
import os
import random
import socket
import sys
import threading
from math import floor
from time import time

from . import _registry
from ._buffer import make_batches
from ._transport import DELIVERED, REFUSED, Transport, parse_endpoint

log = logging.getLogger("minutely")

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DROPPED_METRIC = "minutely_client_dropped_points"


class Config:
    """Validated settings. Arguments win over ``MINUTELY_*`` variables."""

    def __init__(self, endpoint=None, push_key=None, env=None, app=None, push_interval=None,
                 timeout=5.0, max_buffer_points=100000, max_series=10000,
                 retry_initial=1.0, retry_max=60.0, exit_timeout=2.0):
        environ = os.environ
        self.endpoint = (endpoint or environ.get("MINUTELY_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        parse_endpoint(self.endpoint)  # raises ValueError early
        self.push_key = push_key or environ.get("MINUTELY_PUSH_KEY") or None
        self.env = env or environ.get("MINUTELY_ENV") or None
        self.app = app or environ.get("MINUTELY_APP") or None
        if push_interval is None:
            push_interval = float(environ.get("MINUTELY_PUSH_INTERVAL") or 10.0)
        self.push_interval = _positive("push_interval", push_interval)
        self.timeout = _positive("timeout", timeout)
        self.max_buffer_points = int(_positive("max_buffer_points", max_buffer_points))
        self.max_series = int(_positive("max_series", max_series))
        self.retry_initial = _positive("retry_initial", retry_initial)
        self.retry_max = max(_positive("retry_max", retry_max), self.retry_initial)
        self.exit_timeout = float(exit_timeout)


def _positive(what, value):
    value = float(value)
    if not value > 0:
        raise ValueError("minutely %s must be positive, got %r" % (what, value))
    return value


def _next_multiple(now, step):
    return (floor(now / step) + 1) * step


class Pusher:
    def __init__(self, config):
        self.config = config
        self.transport = Transport(config.endpoint, config.push_key or "")
        self._host = (socket.gethostname() or "host")[:64]
        self._after_fork()

    def _after_fork(self):
        """Fresh per-process state (also the initial state)."""
        self._pid = os.getpid()
        self._token = os.urandom(4).hex()
        self._seq = 0
        self._thread = None
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._failures = 0
        self._backoff_until = 0.0
        self._last_fold = time()
        self._dropped_to_log = [0, 0]
        self.stopped = False

    # --- thread ---------------------------------------------------------

    def ensure_running(self):
        if self._thread is None and not self.stopped:
            t = threading.Thread(target=self._run, name="minutely-pusher", daemon=True)
            self._thread = t
            t.start()

    def _run(self):
        interval = self.config.push_interval
        stop = self._stop
        while not stop.is_set():
            now = time()
            wake = min(_next_multiple(now, interval), _next_multiple(now, 60.0))
            if now < self._backoff_until < wake:
                wake = self._backoff_until
            if stop.wait(max(0.0, wake - now)):
                break
            try:
                self._fold()
                now = time()
                if now >= self._backoff_until:
                    self._send(now + max(self.config.timeout * 2, interval))
            except Exception:  # keep pushing whatever happens
                log.debug("minutely: push tick failed", exc_info=True)

    def _fold(self):
        """Folds buffers; at the first fold after a minute boundary the values
        since the last fold belong to the minute that just closed."""
        now = time()
        last, self._last_fold = self._last_fold, now
        boundary = floor(now / 60.0) * 60.0
        attribute_to = boundary - 0.001 if last < boundary else None
        _registry.fold_all(now, attribute_to)

    def _next_key(self):
        self._seq += 1
        return "%s:%d:%s:%d" % (self._host, self._pid, self._token, self._seq)

    # --- sending ----------------------------------------------------------

    def _send(self, deadline):
        """Pushes the outbox until it is empty (True), a push fails or the
        deadline passes (False)."""
        if not self.config.push_key:
            return False
        if not self._send_lock.acquire(timeout=max(0.0, deadline - time())):
            return False
        try:
            while True:
                lock = _registry.lock()
                outbox = _registry.outbox()
                with lock:
                    points, minutes = outbox.take_unreported()
                    if points:  # pushed with the next batch, logged once it lands
                        minute = int(time() // 60) * 60
                        outbox.minute(minute).add_counter((DROPPED_METRIC, ()), points)
                        self._dropped_to_log[0] += points
                        self._dropped_to_log[1] += minutes
                    aggs = outbox.take_open() if not outbox.frozen and outbox.open else None
                    batch = outbox.frozen[0] if outbox.frozen else None
                if aggs:
                    batches = make_batches(aggs, self.config.env, self.config.app, self._next_key)
                    with lock:
                        outbox.frozen.extend(batches)
                    continue
                if batch is None:
                    return True
                remaining = deadline - time()
                if remaining <= 0:
                    return False
                batch.tries += 1
                outcome, status, answer = self.transport.post(
                    batch.body, min(self.config.timeout, remaining))
                if outcome == DELIVERED:
                    with lock:
                        outbox.remove(batch)
                    self._delivered(batch, answer)
                elif outcome == REFUSED:
                    with lock:
                        outbox.remove(batch)
                        outbox._drop(batch.npoints, 1)
                    log.error("minutely: the server refused a push of %d points (%s); they "
                              "are dropped", batch.npoints, answer)
                else:
                    self._failed(answer)
                    return False
        finally:
            self._send_lock.release()
            _registry.emit_logs()

    def _delivered(self, batch, answer):
        if self._failures:
            log.info("minutely: pushing to %s again after %d failed attempts",
                     self.config.endpoint, self._failures)
        self._failures = 0
        self._backoff_until = 0.0
        for r in (answer.get("rejected") or []) if isinstance(answer, dict) else []:
            try:
                name = batch.names[r["index"]]
                error = str(r.get("error"))
            except Exception:
                continue
            _registry._warn_once(("rejected", name, error[:40]),
                                 "minutely: the server refused a point of %r: %s", name, error)
        points, minutes = self._dropped_to_log
        if points:
            self._dropped_to_log = [0, 0]
            log.warning("minutely: %d points of %d minutes were dropped while they could not "
                        "be pushed (oldest first); counted in %s", points, minutes,
                        DROPPED_METRIC)

    def _failed(self, error):
        self._failures += 1
        c = self.config
        delay = min(c.retry_max, c.retry_initial * 2 ** min(self._failures - 1, 30))
        delay = delay / 2 + random.uniform(0, delay / 2)
        self._backoff_until = time() + delay
        message = ("minutely: push to %s failed (%s); retrying in %.1f s, keeping up to %d "
                   "points meanwhile")
        args = (c.endpoint, error, delay, c.max_buffer_points)
        if self._failures == 1:
            log.warning(message, *args)
        else:
            log.debug(message, *args)

    # --- public operations --------------------------------------------------

    def flush(self, timeout):
        try:
            self._fold()
            return self._send(time() + timeout)
        except Exception:
            log.debug("minutely: flush failed", exc_info=True)
            return False

    def stop(self, timeout):
        self.stopped = True
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None
        done = self.flush(timeout)
        self.transport.close()
        return done


_pusher = None
_forking = [False]


def current():
    return _pusher


def start(**kwargs):
    global _pusher
    config = Config(**kwargs)
    old = _pusher
    if old is not None and old._pid == os.getpid() and not old.stopped:
        old.stop(config.timeout)
    _registry.limits.max_series = config.max_series
    _registry.limits.max_buffer_points = config.max_buffer_points
    if not config.push_key:
        log.warning("minutely: no push key (set MINUTELY_PUSH_KEY or pass push_key); "
                    "metrics are aggregated but not sent")
    _pusher = Pusher(config)
    _pusher.ensure_running()
    return config


def _on_new_series():
    p = _pusher
    if p is not None and p._thread is None and not p.stopped:
        p.ensure_running()


_registry.on_new_series = _on_new_series


def flush(timeout=5.0):
    """Pushes everything recorded so far; True when all of it was delivered
    within ``timeout`` seconds. Never raises."""
    p = _pusher
    if p is None:
        _registry.fold_all(time())
        return False
    return p.flush(timeout)


def stop(timeout=5.0):
    """Stops the push thread after a last flush; True when everything was
    delivered. Recording still works; start() again to resume pushing."""
    p = _pusher
    if p is None or p.stopped:
        return flush(timeout) if p is not None else False
    return p.stop(timeout)


def _at_exit():
    p = _pusher
    if p is not None and not p.stopped and p._pid == os.getpid():
        try:
            p.stop(p.config.exit_timeout)
        except Exception:
            pass


atexit.register(_at_exit)


def _before_fork():
    _forking[0] = _registry.lock().acquire(timeout=1.0)


def _after_fork_parent():
    if _forking[0]:
        _forking[0] = False
        _registry.lock().release()


def _after_fork_child():
    _forking[0] = False
    _registry.reset_after_fork()
    p = _pusher
    if p is not None:
        was_stopped = p.stopped
        p._after_fork()
        p.stopped = was_stopped
        p.transport = Transport(p.config.endpoint, p.config.push_key or "")
    # multiprocessing and billiard (Celery) children leave through os._exit,
    # which skips atexit; their own exit hooks run ours.
    for mod in ("multiprocessing.util", "billiard.util"):
        util = sys.modules.get(mod)
        if util is not None:
            try:
                util.Finalize(None, _at_exit, exitpriority=10)
            except Exception:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
