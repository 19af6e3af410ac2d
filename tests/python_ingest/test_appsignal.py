"""An app instrumented with AppSignal's own Python package moves over by
pointing `collector_endpoint` at minutely: its push key travels in the
resource attribute `appsignal.config.push_api_key` and its environment in
`appsignal.config.environment`."""

import subprocess
import sys
import textwrap

from conftest import PUSH_KEY

SCRIPT = textwrap.dedent("""
    import sys
    import appsignal
    from opentelemetry import metrics

    client = appsignal.Appsignal(active=True, name="webshop", push_api_key=sys.argv[2],
                        environment="staging", collector_endpoint=sys.argv[1],
                        enable_host_metrics=False, disable_default_instrumentations=True)
    client.start()
    from appsignal import add_distribution_value, increment_counter, set_gauge
    for _ in range(5):
        increment_counter("as_invoices", 2, {"region": "eu"})
    increment_counter("as_invoices", -1, {"region": "eu"})
    set_gauge("as_active_shoppers", 12)
    set_gauge("as_active_shoppers", 15)
    for v in [3, 1, 4, 1, 5, 9, 2, 6]:
        add_distribution_value("as_order_items", v)
    assert metrics.get_meter_provider().force_flush()
""")


def test_appsignal_collector_mode(server):
    run = subprocess.run([sys.executable, "-c", SCRIPT, server.url, PUSH_KEY],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    server.wait_value("as_invoices", "sum", 9, env="staging", tags=["region:eu"])
    server.wait_value("as_active_shoppers", "last", 15, env="staging")
    server.wait_value("as_order_items", "count", 8, env="staging")
    server.wait_value("as_order_items", "sum", 31, env="staging")
    server.wait_value("as_order_items", "max", 9, env="staging")
