"""Settings of the example webshop: the smallest Django project that shows
minutely in use. Not for production (DEBUG, a fixed secret key)."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["shop"]
MIDDLEWARE = []
ROOT_URLCONF = "webshop.urls"
WSGI_APPLICATION = "webshop.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# minutely reads MINUTELY_ENDPOINT, MINUTELY_PUSH_KEY and MINUTELY_ENV from the
# environment (see shop/apps.py); the region tags every order.
SHOP_REGION = "eu"
