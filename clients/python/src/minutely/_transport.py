"""One HTTP push: POST a gzip body to /api/v1/push over a kept-alive
connection, and sort the answer into delivered, retry later, or refused."""

import http.client
import json
from urllib.parse import urlsplit

from . import __version__

DELIVERED = "delivered"
RETRY = "retry"
REFUSED = "refused"

# Statuses worth another try: the request may succeed later unchanged.
_RETRY_STATUSES = frozenset((408, 409, 425, 429))


def parse_endpoint(endpoint):
    """(scheme, host, port, push path) of an endpoint such as
    ``http://127.0.0.1:8080``; raises ValueError for anything else."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("minutely endpoint must be an http:// or https:// URL, got %r" % (endpoint,))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/") + "/api/v1/push"
    return parts.scheme, parts.hostname, port, path


class Transport:
    def __init__(self, endpoint, push_key):
        self.scheme, self.host, self.port, self.path = parse_endpoint(endpoint)
        self.headers = {
            "Authorization": "Bearer %s" % (push_key,),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "minutely-python/%s" % (__version__,),
        }
        self._conn = None

    def _connection(self, timeout):
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=timeout)
        else:
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
        return self._conn

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def post(self, body, timeout):
        """(outcome, status, answer or error text)."""
        try:
            conn = self._connection(timeout)
            conn.request("POST", self.path, body, self.headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return RETRY, None, "%s: %s" % (type(e).__name__, e)
        if resp.will_close:
            self.close()
        if 200 <= status < 300:
            try:
                return DELIVERED, status, json.loads(data.decode("utf-8"))
            except ValueError:
                return DELIVERED, status, {}
        text = data.decode("utf-8", "replace")[:500]
        try:
            text = json.loads(text).get("error", text)
        except Exception:
            pass
        if status in _RETRY_STATUSES or status >= 500:
            return RETRY, status, "HTTP %d: %s" % (status, text)
        return REFUSED, status, "HTTP %d: %s" % (status, text)
