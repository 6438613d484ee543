"""A live page's refresh (static/js/live.js, issue 12): the #live block alone,
rendered once per (organization, role, exact URL) and shared by that
organization's open tabs for AISPENDTRACK_LIVE_FRAGMENT_SECONDS.

Without it, every visible tab of a busy organization (a call every second
moves the marker every poll) rendered its whole page every 5 s: 50 tabs at
10M events, ~150 ms of CPU an overview, were ~1.5 cores. Shared, an
organization's tabs on one URL cost one render per interval between them.

What makes sharing safe: the block (templates/analytics/_*_live.html) holds
the organization's data and, of the user, only `membership.role` (the usage
meter's "Upgrade" button), which is in the key; no form, so no CSRF token; no
inline script that runs (charts read `json_script` data, not nonce'd code).
A render that asked for the CSRF token anyway is answered but not shared.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers

logger = logging.getLogger("aispendtrack.live")

# Sent by static/js/live.js on a refresh: the #live block alone, please.
FRAGMENT_HEADER = "X-AiSpendTrack-Live"
FRAGMENT_VALUE = "fragment"
# While one tab renders a stale entry again, the others keep the previous
# render for this long at most (then they render themselves).
RENDER_LOCK_SECONDS = 10.0
# A poll's `page` longer than this is no live page's URL (httpguard bounds a
# request line at 8 KB anyway).
MAX_PAGE_LENGTH = 4096


def live_fragment_wanted(request: HttpRequest) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == FRAGMENT_VALUE


def live_template(request: HttpRequest, *, page: str, fragment: str) -> str:
    """The template a live page's view renders: the whole page, or its #live
    block alone on live.js's refresh. Only a response rendered from `fragment`
    is shared (the overview's empty state, a whole page, is not)."""
    if not live_fragment_wanted(request):
        return page
    request.live_fragment_rendered = True  # type: ignore[attr-defined]
    return fragment


def live_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Inside `spend_page` (the organization and membership are resolved):
    a refresh's render is shared as the module says; the page itself is not."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if live_fragment_wanted(request):
            return live_fragment_answer(
                _shared_fragment(request, lambda: view(request, *args, **kwargs))
            )
        response = view(request, *args, **kwargs)
        patch_vary_headers(response, (FRAGMENT_HEADER,))
        return response

    return wrapper


def live_fragment_answer(response: HttpResponse) -> HttpResponse:
    """A refresh's answer, shared or not: never kept by a browser or proxy."""
    add_never_cache_headers(response)
    patch_vary_headers(response, (FRAGMENT_HEADER,))
    return response


def live_fragment_cached(request: HttpRequest) -> HttpResponse | None:
    """The shared render for this member's organization, role and URL while it
    is fresh (what `live_page` would answer without rendering), else None.
    The lean path (proxy/live.py) answers a refresh with it."""
    entry = _fresh_entry(live_fragment_key(request))
    return None if entry is None else live_fragment_answer(_from_entry(entry))


def live_fragment_for_page(request: HttpRequest, page: str) -> str | None:
    """The shared #live block of `page` (a live page's path and query, as its
    tab would fetch it) for this member's organization and role while it is
    fresh, else None: what the poll carries when the marker moved, so a tab
    of a busy organization makes one request a tick, not two. Only a block
    `live_page` shared is ever found; any other path finds nothing."""
    if len(page) > MAX_PAGE_LENGTH or not page.startswith("/"):
        return None
    entry = _fresh_entry(_key(request, page))
    return None if entry is None else entry["body"].decode()  # a template's HTML (_shareable)


def live_fragment_key(request: HttpRequest) -> str:
    """Organization, role and the exact path with its query: what the block's
    output depends on (the organization's time zone is the organization's)."""
    return _key(request, request.get_full_path())


def _key(request: HttpRequest, url: str) -> str:
    organization = request.organization  # type: ignore[attr-defined]
    role = request.membership.role  # type: ignore[attr-defined]
    digest = hashlib.sha256(url.encode()).hexdigest()
    return f"analytics:live-fragment:{organization.pk}:{role}:{digest}"


def _fresh_entry(key: str) -> dict | None:
    seconds = settings.AISPENDTRACK_LIVE_FRAGMENT_SECONDS
    entry = cache.get(key) if seconds > 0 else None
    if entry is None or time.time() - entry["at"] >= seconds:
        return None
    return entry


def _shared_fragment(request: HttpRequest, render: Callable[[], HttpResponse]) -> HttpResponse:
    seconds = settings.AISPENDTRACK_LIVE_FRAGMENT_SECONDS
    if seconds <= 0:
        return render()
    key = live_fragment_key(request)
    entry = cache.get(key)
    now = time.time()
    if entry is not None:
        age = now - entry["at"]
        if age < seconds:
            return _from_entry(entry)
        # Stale: one tab renders again, the others keep this one meanwhile.
        if age < 2 * seconds and not cache.add(f"{key}:render", 1, RENDER_LOCK_SECONDS):
            return _from_entry(entry)
    try:
        response = render()
        if _shareable(request, response):
            cache.set(
                key,
                {"at": now, "body": response.content, "type": response["Content-Type"]},
                int(2 * seconds) + 1,
            )
    finally:
        cache.delete(f"{key}:render")
    return response


def _shareable(request: HttpRequest, response: HttpResponse) -> bool:
    if not getattr(request, "live_fragment_rendered", False):
        return False
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        # get_token() was called: the body may hold this user's CSRF token.
        logger.error("live fragment %s asked for a CSRF token: not shared", request.path)
        return False
    return True


def _from_entry(entry: dict) -> HttpResponse:
    return HttpResponse(entry["body"], content_type=entry["type"])
