"""The shop's probe: active shoppers are carts updated in the last minute."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from minutely import set_gauge

from .models import Cart


def active_shoppers():
    since = timezone.now() - timedelta(minutes=1)
    count = Cart.objects.filter(updated_at__gte=since).count()
    set_gauge("active_shoppers", count, {"region": settings.SHOP_REGION})
