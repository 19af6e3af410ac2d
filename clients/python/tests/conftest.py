import itertools
import re
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import minutely  # noqa: E402
from server_harness import PUSH_KEY, Server  # noqa: E402

_ids = itertools.count()


@pytest.fixture(scope="session")
def server():
    s = Server().start()
    yield s
    s.stop()


@pytest.fixture
def env(request):
    """A fresh env per test, so tests never see each other's points."""
    return "t%d-%s" % (next(_ids), re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:40])


@pytest.fixture
def client(server, env):
    """minutely started against the test server with short intervals."""
    minutely.start(endpoint=server.url, push_key=PUSH_KEY, env=env, push_interval=0.2,
                   timeout=2.0, retry_initial=0.05, retry_max=0.3)
    yield server
    minutely.stop(timeout=5.0)
