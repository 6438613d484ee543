"""Project-level views: health check, favicon and the landing redirect."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.dbguard import db_deadline
from proxy.ledger import dead_letter_count
from proxy.writer import queue_backlog, writer_running

# /healthz answers within 2 s whatever the database does: the probe runs in
# its own thread and is given up on after this long.
HEALTH_PROBE_SECONDS = 1.2
# One probe thread, keeping its connection between probes: a new connection
# per probe forked a PostgreSQL backend each time, and under a saturating
# load (the 20-minute soak) one fork missed the deadline, a 503 that would
# take a busy but healthy host out of a load balancer. A probe stuck on a
# database that does not answer makes the next ones wait, and time out: down.
_probes = ThreadPoolExecutor(1, thread_name_prefix="aispendtrack-health")


def _select_one() -> bool:
    try:
        with db_deadline(HEALTH_PROBE_SECONDS), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except DatabaseError:
        with contextlib.suppress(Exception):
            connection.close()  # the next probe opens a fresh one
        return False


def _database_answers() -> bool:
    # A kept connection may have been cut since the last probe (a database
    # restart, an idle timeout): once more, on a fresh connection.
    return _select_one() or _select_one()


def probe_connection_close() -> None:
    """Close the probe thread's kept connection (before its database is moved
    or dropped: tests, which swap and drop databases under it)."""
    _probes.submit(lambda: connection.close()).result()


def _redis_state() -> str:
    ping = getattr(cache, "ping", None)
    if ping is None:
        return "not_configured"  # local-memory cache: no Redis to depend on
    return "ok" if ping() else "down"


@never_cache
@require_GET
def healthz(request):
    """200 when the database answers (Redis down is degraded, still 200); 503 when not.

    `dead_letter` counts usage records the database refused one by one
    (var/spool/dead/; `manage.py ledger_redrive` re-drives them). `queue` is
    this host's hand-off queue: records and bytes the web workers handed off
    that the ledger writer has not written yet, the oldest one's age in
    seconds, and whether a writer runs here (`manage.py ledger_writer`).
    """
    probe = _probes.submit(_database_answers)
    try:
        database = probe.result(timeout=HEALTH_PROBE_SECONDS)
    except FutureTimeout:
        database = False
    redis = _redis_state()
    body = {
        "status": "ok" if database and redis != "down" else "degraded",
        "database": "ok" if database else "down",
        "redis": redis,
        "dead_letter": dead_letter_count(settings.AISPENDTRACK_SPOOL_DIR),
        "queue": {
            **queue_backlog(settings.AISPENDTRACK_QUEUE_DIR),
            "writer": "running" if writer_running(settings.AISPENDTRACK_QUEUE_DIR) else "stopped",
        },
    }
    return JsonResponse(body, status=200 if database else 503)


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (admin, API docs)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


def home(request):
    """Signed out: what AiSpendTrack is, with the two-line setup. Signed in: the overview."""
    if not request.user.is_authenticated:
        public_url = (settings.AISPENDTRACK_PUBLIC_URL or request.build_absolute_uri("/")).rstrip(
            "/"
        )
        return render(request, "landing.html", {"base_url": public_url})
    if request.organization is None:
        return redirect("org_create")
    return redirect("dashboard")
