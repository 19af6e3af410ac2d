"""minutely: record gauges, counters and distributions; pushed per minute.

    import minutely
    minutely.start()   # MINUTELY_ENDPOINT, MINUTELY_PUSH_KEY, MINUTELY_ENV, or keywords
    minutely.set_gauge("active_shoppers", 12, {"region": "eu"})
    minutely.increment_counter("invoice_count")
    minutely.add_distribution_value("order_item_count", 3)
    minutely.probes.register("active_shoppers", count_active_carts)

The helpers aggregate in the process (no I/O, no lock, no exception for
transport faults) and a background thread pushes every 10 seconds. See the
README for what each kind keeps per minute.
"""

__version__ = "0.1.0"

from . import probes  # noqa: E402
from ._pusher import Config, flush, start, stop  # noqa: E402
from ._registry import add_distribution_value, increment_counter, set_gauge  # noqa: E402
from ._registry import stats as _stats  # noqa: E402

__all__ = [
    "start",
    "flush",
    "stop",
    "set_gauge",
    "increment_counter",
    "add_distribution_value",
    "probes",
    "stats",
    "Config",
]


def stats():
    """Counters about this process's client: ``series``, ``buffered_points``,
    ``dropped_points``, ``dropped_minutes``, ``bad_values``."""
    return _stats()
