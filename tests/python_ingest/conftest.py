"""Runs the real minutely binary with StatsD on a free UDP port for the
ingestion tests of real clients (statsd, datadog, OpenTelemetry, AppSignal).

The binary is ``$MINUTELY_BIN`` or ``target/debug/minutely``; when it is
missing it is built with ``cargo build -p minutely``.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUSH_KEY = "mk_push_ingesttests00000000000000000"
ADMIN_KEY = "mk_admin_ingesttests0000000000000000"


def binary():
    path = Path(os.environ.get("MINUTELY_BIN") or REPO / "target" / "debug" / "minutely")
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "minutely"], cwd=REPO, check=True)
    return path


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="minutely-ingest-")
        log = Path(self.dir) / "server.log"
        env = dict(os.environ, MINUTELY_PUSH_KEY=PUSH_KEY, MINUTELY_ADMIN_KEY=ADMIN_KEY)
        env.pop("MINUTELY_CONFIG", None)
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--listen", "127.0.0.1:0", "--statsd", "127.0.0.1:0",
             "--data-dir", str(Path(self.dir) / "data")],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        deadline = time.monotonic() + 60
        self.url = self.statsd = None
        while time.monotonic() < deadline and not (self.url and self.statsd):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("minutely listening on "):
                    self.url = line.split(" on ", 1)[1].strip()
                if line.startswith("minutely statsd listening on udp://"):
                    host, port = line.rsplit("//", 1)[1].strip().rsplit(":", 1)
                    self.statsd = (host, int(port))
            if self.proc.poll() is not None:
                raise RuntimeError("minutely exited: " + log.read_text(errors="replace"))
            time.sleep(0.02)
        if not (self.url and self.statsd):
            raise RuntimeError("minutely did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self._log.close()
        # Kept only when the server did not stop cleanly, for its log.
        if self.proc.returncode == 0:
            shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + ADMIN_KEY,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def value(self, metric, field, env=None, app=None, tags=()):
        """One value over the last few minutes, or None."""
        frm = (int(time.time()) // 60) * 60 - 240
        params = [("metric", metric), ("field", field), ("from", frm), ("to", frm + 420),
                  ("step", 420)]
        params += [("env", env)] if env else []
        params += [("app", app)] if app else []
        params += [("tag", t) for t in tags]
        try:
            ans = self.request("GET", "/api/v1/query?" + urllib.parse.urlencode(params))
        except urllib.error.HTTPError:
            return None
        series = ans["series"]
        return series[0]["points"][0][1] if series else None

    def wait_value(self, metric, field, want, tolerance=0.0, timeout=15, **kw):
        """Polls until the value is `want` (flushes are asynchronous); returns it."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.value(metric, field, **kw)
            if got is not None and abs(got - want) <= tolerance:
                return got
            time.sleep(0.2)
        raise AssertionError("%s %s: got %r, want %r ± %r" % (metric, field, got, want, tolerance))

    def metrics_text(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


def exact_quantile(values, q):
    """The value at rank floor(q * (n - 1)), the rank minutely's percentiles use."""
    v = sorted(values)
    return v[int(q * (len(v) - 1))]
