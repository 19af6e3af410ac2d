"""Runs the real minutely binary on a free port for end-to-end tests.

The binary is ``$MINUTELY_BIN`` or ``target/debug/minutely`` in the
repository; when it is missing it is built with ``cargo build -p minutely``.
"""

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PUSH_KEY = "mk_push_pythonclienttests0000000000"
ADMIN_KEY = "mk_admin_pythonclienttests000000000"


def binary():
    path = Path(os.environ.get("MINUTELY_BIN") or REPO / "target" / "debug" / "minutely")
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "minutely"], cwd=REPO, check=True)
    return path


class Server:
    def __init__(self, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="minutely-pytest-")
        self.port = 0
        self.proc = None
        self.url = None

    def start(self, timeout=60.0):
        log_path = Path(self.data_dir) / ("server-%d.log" % time.time_ns())
        env = dict(os.environ, MINUTELY_PUSH_KEY=PUSH_KEY, MINUTELY_ADMIN_KEY=ADMIN_KEY)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--listen", "127.0.0.1:%d" % self.port,
             "--data-dir", str(Path(self.data_dir) / "data")],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        marker = b"minutely listening on http://127.0.0.1:"
        while time.monotonic() < deadline:
            text = log_path.read_bytes()
            if marker in text:
                port = text.split(marker, 1)[1].split(b"\n", 1)[0].strip()
                self.port = int(port.decode().strip("/"))
                self.url = "http://127.0.0.1:%d" % self.port
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("minutely exited: %s" % text.decode(errors="replace"))
            time.sleep(0.02)
        raise RuntimeError("minutely did not start in %s s" % timeout)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()

    def query(self, metric, field=None, frm=None, to=None, step=None, env=None, tags=(),
              group_by=None):
        """The answer's series for one bucket covering ``frm``..``to``."""
        now = time.time()
        frm = int(frm if frm is not None else now - 3600) // 60 * 60
        to = int(to if to is not None else now + 240)
        to = frm + ((to - frm) // 60 + 1) * 60
        params = [("metric", metric), ("from", frm), ("to", to), ("step", step or to - frm)]
        if field:
            params.append(("field", field))
        if env:
            params.append(("env", env))
        for t in tags:
            params.append(("tag", t))
        if group_by:
            params.append(("group_by", group_by))
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + ADMIN_KEY})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["series"]

    def value(self, metric, field=None, **kw):
        """The single value over the whole range (None when there is none)."""
        series = self.query(metric, field, **kw)
        if not series:
            return None
        assert len(series) == 1, series
        values = [v for _, v in series[0]["points"] if v is not None]
        assert len(values) <= 1, series
        return values[0] if values else None

    def push_raw(self, body, gzip_body=True):
        data = body
        headers = {"Authorization": "Bearer " + PUSH_KEY}
        if gzip_body:
            headers["Content-Encoding"] = "gzip"
        req = urllib.request.Request(self.url + "/api/v1/push", data=data, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)


def wait_for(fn, timeout=10.0, interval=0.1):
    """Polls fn() until it returns a truthy value; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
