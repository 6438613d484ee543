import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# A web process: settings add a statement timeout to its database connections.
os.environ.setdefault("AISPENDTRACK_WEB_PROCESS", "1")

application = get_wsgi_application()
