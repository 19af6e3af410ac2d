"""Probes run repeatedly aligned to the interval, pass their state, survive a
raising probe, never overlap, and report an overrun."""

import logging
import threading
import time

import pytest

from minutely import probes


@pytest.fixture
def probe_runner():
    probes.start(interval=1.0)
    yield
    probes.clear()
    probes.stop()


def test_probes_run_repeatedly_aligned_with_state(probe_runner):
    seen, times = [], []

    def counting(state):
        times.append(time.time())
        state = (state or 0) + 1
        seen.append(state)
        return state

    probes.register("counting", counting)
    time.sleep(3.3)
    assert seen[:3] == [1, 2, 3]
    for t in times:  # each run starts just after a whole second
        assert t % 1.0 < 0.25, times


def test_a_raising_probe_is_logged_keeps_state_and_others_run(probe_runner, caplog):
    caplog.set_level(logging.WARNING, logger="minutely")
    states, others = [], []

    def flaky(state):
        states.append(state)
        if state == "ok":
            raise RuntimeError("database away")
        return "ok"

    probes.register("flaky", flaky)
    probes.register("steady", lambda: others.append(1))
    time.sleep(3.3)
    # First run returns "ok"; later runs raise and keep the state "ok".
    assert states[0] is None and states[1:] == ["ok"] * (len(states) - 1)
    assert len(states) >= 3 and len(others) >= 3
    raised = [r for r in caplog.records if "'flaky' raised" in r.getMessage()]
    assert raised and raised[0].levelno == logging.WARNING and raised[0].exc_info


def test_a_slow_probe_does_not_overlap_and_is_reported(probe_runner, caplog):
    caplog.set_level(logging.WARNING, logger="minutely")
    lock = threading.Lock()
    running, most, runs, fast = [0], [0], [0], []

    def slow():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            runs[0] += 1
        time.sleep(2.5)
        with lock:
            running[0] -= 1

    probes.register("slow", slow, timeout=0.5)
    probes.register("fast", lambda: fast.append(1))
    time.sleep(4.4)
    assert most[0] == 1
    assert 1 <= runs[0] <= 2
    assert len(fast) >= 4  # the slow one delays no other
    assert any("'slow' has run for" in r.getMessage() for r in caplog.records)


def test_unregister_clear_and_stop(probe_runner):
    a, b = [], []
    probes.register("a", lambda: a.append(1))
    probes.register("b", lambda: b.append(1))
    assert probes.unregister("a") is True
    assert probes.unregister("a") is False
    time.sleep(1.2)
    assert not a and b
    probes.clear()
    n = len(b)
    time.sleep(1.1)
    assert len(b) == n
    probes.register("b", lambda: b.append(1))
    probes.stop()
    time.sleep(1.1)
    assert len(b) == n


def test_probe_interval_from_environment(monkeypatch):
    monkeypatch.setenv("MINUTELY_PROBE_INTERVAL", "0.5")
    runs = []
    probes.start()
    try:
        probes.register("env", lambda: runs.append(1))
        time.sleep(1.3)
        assert len(runs) >= 2
    finally:
        probes.clear()
        probes.stop()
