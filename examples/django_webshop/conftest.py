"""Runs the webshop's tests against the real minutely server (the client
tests' harness starts it), with Django set up by hand: no pytest plugin."""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "clients" / "python" / "tests"))

from server_harness import PUSH_KEY, Server  # noqa: E402


@pytest.fixture(scope="session")
def webshop():
    """A minutely server, and Django started with MINUTELY_* pointing at it
    (the shop's AppConfig.ready() calls minutely.start())."""
    server = Server().start()
    os.environ.update(
        MINUTELY_ENDPOINT=server.url,
        MINUTELY_PUSH_KEY=PUSH_KEY,
        MINUTELY_ENV="webshop-test",
        MINUTELY_PROBE_INTERVAL="1",
        MINUTELY_PUSH_INTERVAL="0.5",
        DJANGO_SETTINGS_MODULE="webshop.settings",
    )
    import django
    from django.test.utils import setup_test_environment, teardown_test_environment

    django.setup()
    setup_test_environment()
    from django.db import connection

    old_name = connection.creation.create_test_db(verbosity=0)
    yield server
    connection.creation.destroy_test_db(old_name, verbosity=0)
    teardown_test_environment()
    import minutely

    minutely.probes.clear()
    minutely.probes.stop()
    minutely.stop()
    server.stop()
