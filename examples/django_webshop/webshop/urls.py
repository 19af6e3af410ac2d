from django.urls import path

from shop import views

urlpatterns = [
    path("carts/<int:cart_id>/items", views.add_item),
    path("carts/<int:cart_id>/checkout", views.checkout),
]
