"""ASGI entry point: the proxy's lean endpoint for provider paths, Django for the rest.

Django's request machinery costs ~1.8 ms a request (DESIGN.md, "What the hot
path costs"), so provider traffic never enters it: `proxy.asgi` speaks ASGI
directly and uses only Django's settings, cache and async ORM.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# A web process: settings add a statement timeout to its database connections.
os.environ.setdefault("AISPENDTRACK_WEB_PROCESS", "1")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from config.mail import warn_if_mail_disabled  # noqa: E402
from proxy.asgi import build_application  # noqa: E402

application = build_application(django_application)
warn_if_mail_disabled()
