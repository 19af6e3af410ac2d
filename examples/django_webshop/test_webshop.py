"""The webshop's flows, and the four metrics they produce read back from a
real minutely server."""

import time

import pytest

ENV = "webshop-test"


def _post(client, url, **data):
    import json

    resp = client.post(url, data=json.dumps(data), content_type="application/json")
    assert resp.status_code == 200, resp.content
    return resp.json()


def _wait(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture
def http(webshop):
    from django.test import Client

    return Client()


def test_checkout_creates_order_and_invoice(http):
    from shop.models import Invoice, Order

    _post(http, "/carts/1/items", quantity=2)
    _post(http, "/carts/1/items", quantity=1)
    answer = _post(http, "/carts/1/checkout", payment="card")
    assert answer["items"] == 3
    order = Order.objects.get(pk=answer["order"])
    assert order.item_count == 3 and Invoice.objects.filter(order=order).exists()


def test_all_four_metrics_reach_minutely(http, webshop):
    import minutely

    sizes = {"paypal": [1, 4], "voucher": [2, 5, 9]}
    cart = 100
    for payment, items in sizes.items():
        for n in items:
            cart += 1
            _post(http, "/carts/%d/items" % cart, quantity=n)
            _post(http, "/carts/%d/checkout" % cart, payment=payment)
    assert minutely.flush(5)
    # Orders of test_checkout_creates_order_and_invoice count too.
    orders = webshop.value("order_count", "sum", env=ENV)
    assert orders >= 5
    by_payment = {s["tags"]["payment"]: [v for _, v in s["points"] if v is not None][0]
                  for s in webshop.query("order_count", "sum", env=ENV, group_by="payment")}
    assert by_payment["paypal"] == 2
    assert webshop.value("invoice_count", "sum", env=ENV) == orders
    assert webshop.value("order_item_count", "max", env=ENV, tags=["payment:voucher"]) == 9
    p50 = webshop.value("order_item_count", "p50", env=ENV, tags=["payment:voucher"])
    assert abs(p50 - 5) <= 0.05
    # The probe runs every second here (MINUTELY_PROBE_INTERVAL=1) and counts
    # the carts updated in the last minute.
    # A probe that ran before the last cart was updated may land first:
    # wait for one that saw them all.
    def seen_all():
        minutely.flush(5)
        v = webshop.value("active_shoppers", "max", env=ENV, tags=["region:eu"])
        return v if v is not None and v >= 5 else None
    shoppers = _wait(seen_all)
    assert shoppers is not None and shoppers >= 5
