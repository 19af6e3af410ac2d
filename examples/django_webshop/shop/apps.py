from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import minutely
        from minutely import probes

        from .metrics import active_shoppers

        # Reads MINUTELY_ENDPOINT, MINUTELY_PUSH_KEY and MINUTELY_ENV.
        minutely.start()
        # Once a minute: how many carts changed in the last minute.
        probes.register("active_shoppers", active_shoppers)
