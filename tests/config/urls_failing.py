"""The project's URLs plus one view that fails, to see the 500 page."""

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


def failing_view(request):
    raise RuntimeError("a bug, on purpose")


urlpatterns = [path("fails/", failing_view), *project_urlpatterns]
