"""Project-level views: health check, favicon and the landing redirect."""

from __future__ import annotations

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "degraded", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (admin, API docs)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


def home(request):
    if not request.user.is_authenticated:
        return redirect("account_login")
    if request.organization is None:
        return redirect("org_create")
    return redirect("dashboard")
