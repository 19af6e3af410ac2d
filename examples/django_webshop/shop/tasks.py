"""Background work. With Celery, decorate create_invoice with
``@shared_task`` and call ``create_invoice.delay(order.id)``; minutely's
helpers work the same in a prefork worker."""

from minutely import increment_counter

from .models import Invoice, Order


def create_invoice(order_id):
    order = Order.objects.get(pk=order_id)
    invoice = Invoice.objects.create(order=order)
    increment_counter("invoice_count", 1, {"payment": order.payment})
    return invoice.pk
