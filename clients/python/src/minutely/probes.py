"""Minutely probes: functions called once a minute, aligned to the minute.

``register(name, fn)`` adds (or replaces) a probe and starts the probe
thread. A probe that takes one argument receives what it returned last time
(``None`` the first time), as AppSignal's probes do. Each run happens on its
own short-lived thread, so a slow probe delays no other: a probe that raises
is logged at warning level with its traceback and keeps its old state; a
probe that runs past its timeout is reported, and is not started again until
it has finished. The interval is ``MINUTELY_PROBE_INTERVAL`` seconds (default
60), read when the probe thread starts. After ``fork`` (gunicorn
``--preload``, Celery prefork) probes keep running in the child.
"""

import inspect
import logging
import os
import threading
from math import floor
from time import monotonic, time

__all__ = ["register", "unregister", "start", "stop", "clear"]

log = logging.getLogger("minutely")

DEFAULT_INTERVAL = 60.0


class _Probe:
    __slots__ = ("name", "fn", "takes_state", "state", "timeout", "running",
                 "started", "overran")

    def __init__(self, name, fn, timeout):
        self.name = name
        self.fn = fn
        self.takes_state = _takes_one_argument(fn)
        self.state = None
        self.timeout = timeout
        self.running = False
        self.started = 0.0
        self.overran = False


def _takes_one_argument(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 1 or any(p.kind == p.VAR_POSITIONAL for p in params)


class _Runner:
    def __init__(self):
        self.lock = threading.Lock()
        self.probes = {}
        self.thread = None
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.interval = DEFAULT_INTERVAL
        self.wanted = False  # started and not stopped

    def start(self, interval=None):
        with self.lock:
            if interval is None:
                interval = float(os.environ.get("MINUTELY_PROBE_INTERVAL") or DEFAULT_INTERVAL)
            if not interval > 0:
                raise ValueError("probe interval must be positive, got %r" % (interval,))
            self.interval = float(interval)
            self.wanted = True
            if self.thread is not None and self.thread.is_alive():
                self.wake.set()
                return
            self.stop_event = threading.Event()
            self.thread = threading.Thread(target=self._loop, args=(self.stop_event,),
                                           name="minutely-probes", daemon=True)
            self.thread.start()

    def stop(self, timeout=2.0):
        with self.lock:
            self.wanted = False
            t, self.thread = self.thread, None
            self.stop_event.set()
            self.wake.set()
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _loop(self, stop_event):
        while not stop_event.is_set():
            now = time()
            iv = self.interval
            due = (floor(now / iv) + 1) * iv
            wake = due
            with self.lock:
                for p in self.probes.values():
                    if p.running and not p.overran:
                        timeout = p.timeout or iv
                        wake = min(wake, now + (timeout - (monotonic() - p.started)))
            self.wake.wait(max(0.0, wake - now))
            self.wake.clear()
            if stop_event.is_set():
                return
            self._report_overruns()
            if time() >= due - 0.001:
                self._run_due(stop_event)

    def _report_overruns(self):
        late = []
        with self.lock:
            now = monotonic()
            for p in self.probes.values():
                timeout = p.timeout or self.interval
                if p.running and not p.overran and now - p.started > timeout:
                    p.overran = True
                    late.append((p.name, now - p.started, timeout))
        for name, ran, timeout in late:
            log.warning("minutely: probe %r has run for %.1f s, past its timeout of %.1f s; "
                        "it is not started again until it finishes", name, ran, timeout)

    def _run_due(self, stop_event):
        with self.lock:
            probes = list(self.probes.values())
        for p in probes:
            with self.lock:
                if p.running:
                    log.debug("minutely: probe %r is still running; skipped", p.name)
                    continue
                p.running = True
                p.overran = False
                p.started = monotonic()
            t = threading.Thread(target=self._run_one, args=(p,),
                                 name="minutely-probe-%s" % (p.name,), daemon=True)
            try:
                t.start()
            except RuntimeError:  # interpreter shutting down
                p.running = False
                return

    def _run_one(self, p):
        try:
            result = p.fn(p.state) if p.takes_state else p.fn()
            if p.takes_state:
                p.state = result
        except Exception:
            log.warning("minutely: probe %r raised; its state is kept and other probes "
                        "keep running", p.name, exc_info=True)
        finally:
            with self.lock:
                p.running = False
                if p.overran:
                    log.info("minutely: probe %r finished after %.1f s", p.name,
                             monotonic() - p.started)

    def after_fork_child(self):
        """Probe runs of the parent do not exist here: clear their marks and
        restart the probe thread if the parent had one."""
        self.lock = threading.Lock()
        self.wake = threading.Event()
        for p in self.probes.values():
            p.running = False
            p.overran = False
        self.thread = None
        if self.wanted:
            self.wanted = False
            try:
                self.start(self.interval)
            except Exception:
                log.debug("minutely: could not restart probes after fork", exc_info=True)


_runner = _Runner()


def register(name, fn, timeout=None):
    """Registers probe ``fn`` under ``name`` (replacing one of that name) and
    starts the probe thread. ``timeout``: seconds after which a run is
    reported as overrunning (default: the probe interval)."""
    if not callable(fn):
        raise TypeError("probe %r must be callable" % (name,))
    probe = _Probe(str(name), fn, float(timeout) if timeout is not None else None)
    with _runner.lock:
        old = _runner.probes.get(probe.name)
        if old is not None and old.fn is fn:
            probe.state = old.state
        _runner.probes[probe.name] = probe
    if not (_runner.thread is not None and _runner.thread.is_alive()):
        start()


def unregister(name):
    """Removes probe ``name``; True if there was one. A run in progress ends
    on its own."""
    with _runner.lock:
        return _runner.probes.pop(str(name), None) is not None


def clear():
    """Removes every probe."""
    with _runner.lock:
        _runner.probes.clear()


def start(interval=None):
    """Starts the probe thread (``interval`` seconds, default
    ``MINUTELY_PROBE_INTERVAL`` or 60)."""
    _runner.start(interval)


def stop(timeout=2.0):
    """Stops the probe thread; registered probes stay registered."""
    _runner.stop(timeout)


def _after_fork_child():
    _runner.after_fork_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
