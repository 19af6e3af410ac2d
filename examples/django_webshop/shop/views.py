import json

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from minutely import add_distribution_value, increment_counter

from . import tasks
from .models import Cart, Order


def _body(request):
    try:
        return json.loads(request.body or b"{}")
    except ValueError:
        return {}


@csrf_exempt
@require_POST
def add_item(request, cart_id):
    quantity = int(_body(request).get("quantity", 1))
    cart, _ = Cart.objects.get_or_create(pk=cart_id)
    cart.items += quantity
    cart.save()
    return JsonResponse({"cart": cart.pk, "items": cart.items})


@csrf_exempt
@require_POST
def checkout(request, cart_id):
    payment = str(_body(request).get("payment", "card"))
    with transaction.atomic():
        cart = Cart.objects.select_for_update().get(pk=cart_id)
        order = Order.objects.create(cart=cart, item_count=cart.items, payment=payment)
        cart.items = 0
        cart.save()
    # The order is confirmed: count it, and how many items it had.
    tags = {"region": settings.SHOP_REGION, "payment": payment}
    increment_counter("order_count", 1, tags)
    add_distribution_value("order_item_count", order.item_count, tags)
    invoice = tasks.create_invoice(order.pk)  # with Celery: create_invoice.delay(order.pk)
    return JsonResponse({"order": order.pk, "items": order.item_count, "invoice": invoice})
