"""The live pages' poll (`/dashboard/live.json`, static/js/live.js) without
Django's full request machinery (issue 12: 50 open tabs add < 5 % CPU).

Through Django's ASGI handler a poll cost ~17 ms of CPU (the middleware
chain with its thread hops, six queries) and a fresh PostgreSQL backend
(CONN_MAX_AGE 0), ~4–5 ms more. Here a poll is one hop to a thread of this
worker's own that keeps its database connection, where:
- `accounts.sessions.session_member` resolves the session cookie to a member
  exactly as the session, auth and organization middleware would (anything
  else: expired, logged out, hash changed, no membership, falls through to
  Django, which answers as it always did);
- the stateless edge middleware of settings.MIDDLEWARE (security headers,
  host validation, control characters, CSP, framing) wraps the answer as in
  the full stack;
- the view itself is Django's (`analytics.views.live`: never_cache, the
  organization's marker, shared by its open pages for a second);
- a live page's refresh (live.js's `X-AiSpendTrack-Live: fragment`) is
  answered here only with the organization's shared #live block while it is
  fresh (`analytics.views.live_fragment.live_fragment_cached`, keyed by the
  member's organization and role and the URL); otherwise Django renders it.
A database error falls through too (closing this thread's connection, so the
next poll opens a fresh one); each poll's database work is bounded by
`db_deadline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connection, connections
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string

from accounts.sessions import session_member
from analytics.views import live as live_view
from analytics.views.live_fragment import FRAGMENT_HEADER, FRAGMENT_VALUE, live_fragment_cached
from config.dbguard import db_deadline

logger = logging.getLogger("aispendtrack.live")

# Middleware of settings.MIDDLEWARE that neither read nor write the session or
# the user: run here too, in their order.
EDGE_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "config.inputguard.ControlCharacterMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
# What session_member stands in for, or what has nothing to do on this
# answer (static files, messages, CSRF on a GET, allauth's /accounts/ 404s).
STOOD_IN_FOR = (
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.OrganizationMiddleware",
)
DB_SECONDS = 3.0


class _NotOurs(Exception):  # noqa: N818 - a signal, not an error
    """The request is Django's to answer."""


def _member_view(request: HttpRequest) -> HttpResponse:
    member = session_member(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    if member is None:
        raise _NotOurs
    request.session = member.session
    request.user = member.membership.user
    request.membership = member.membership  # type: ignore[attr-defined]
    request.organization = member.membership.organization  # type: ignore[attr-defined]
    if request.path == reverse("live"):
        response = live_view(request)
    else:  # a live page's refresh: the shared #live block while fresh, else Django renders
        response = live_fragment_cached(request)
        if response is None:
            raise _NotOurs
    patch_vary_headers(response, ("Cookie",))  # SessionMiddleware's, on a read session
    return response


def _edge_chain():
    handler = _member_view
    for path in reversed([m for m in settings.MIDDLEWARE if m in EDGE_MIDDLEWARE]):
        handler = import_string(path)(handler)
    return handler


def live_endpoint() -> LiveEndpoint | None:
    """This worker's lean poll endpoint, or None (Django answers every poll)
    when it is switched off or settings.MIDDLEWARE holds a middleware this
    module does not know: one added later (an IP allow-list, say) must not be
    skipped silently, so the lean path stands down until it is listed here."""
    if not settings.AISPENDTRACK_LIVE_LEAN:
        return None
    unknown = [m for m in settings.MIDDLEWARE if m not in EDGE_MIDDLEWARE + STOOD_IN_FOR]
    if unknown:
        logger.warning(
            "live polls go through Django: proxy/live.py does not know the middleware %s; "
            "list it in EDGE_MIDDLEWARE (run for polls too) or STOOD_IN_FOR",
            ", ".join(unknown),
        )
        return None
    return LiveEndpoint()


class LiveEndpoint:
    """One per worker: `serve` answers a poll, or returns False for Django."""

    def __init__(self) -> None:
        self.path = reverse("live")
        # The live pages, whose refresh (live.js's header) is answered here
        # when the organization's shared render is fresh.
        self.pages = {reverse("dashboard"), reverse("requests")}
        self._header = FRAGMENT_HEADER.lower().encode("latin-1")
        self._fragment = FRAGMENT_VALUE.encode("latin-1")
        self._handler = _edge_chain()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="aispendtrack-live")

    def wants(self, scope: dict[str, Any]) -> bool:
        if scope["method"] != "GET" or scope.get("root_path"):
            return False
        if scope["path"] == self.path:
            return True
        return scope["path"] in self.pages and any(
            name == self._header and value == self._fragment for name, value in scope["headers"]
        )

    async def serve(self, scope: dict[str, Any], send) -> bool:
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self._thread, self._answer, scope)
        if response is None:
            return False
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
        for cookie in response.cookies.values():
            headers.append((b"set-cookie", cookie.output(header="").encode("ascii").strip()))
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": response.content})
        return True

    def _answer(self, scope: dict[str, Any]) -> HttpResponse | None:
        """On the live thread: the whole answer, or None (Django's to give)."""
        request = ASGIRequest(scope, io.BytesIO())
        try:
            with db_deadline(DB_SECONDS):
                return self._handler(request)
        except _NotOurs:
            return None
        except DatabaseError as error:
            logger.warning("live poll handed to Django: %s", error)
            with contextlib.suppress(Exception):
                connection.close()  # possibly severed: the next poll opens a fresh one
            return None
        except Exception:  # a bad Host, a bug: Django answers it (400, 500) as it would
            logger.debug("live poll handed to Django", exc_info=True)
            return None

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await asyncio.get_running_loop().run_in_executor(
                    self._thread, connections.close_all
                )
        self._thread.shutdown(wait=False)
