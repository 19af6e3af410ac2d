from django.db import models


class Cart(models.Model):
    items = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)


class Order(models.Model):
    cart = models.ForeignKey(Cart, on_delete=models.PROTECT)
    item_count = models.PositiveIntegerField()
    payment = models.CharField(max_length=20)
    confirmed_at = models.DateTimeField(auto_now_add=True)


class Invoice(models.Model):
    order = models.OneToOneField(Order, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
