"""Control characters never reach a view: a NUL or other C0/DEL character in
the path or in any query parameter (name or value) gets a 400 that says where.

PostgreSQL refuses NUL in text (a DataError, i.e. a 500, from any filter that
reaches a query), and no legitimate id, model name or search contains one.
This middleware runs before everything else in Django; the proxy's endpoint
has its own checks (proxy/headers.py, proxy/routing.py).
"""

from __future__ import annotations

import json
import re

from django.http import HttpResponse
from django.utils.html import escape

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_character_problem(path: str, query: dict[str, list[str]]) -> str | None:
    """A message naming the first control character found, or None."""
    found = _CONTROL.search(path)
    if found:
        return (
            f"The URL path contains a control character (U+{ord(found.group()):04X}); "
            "remove it from the address."
        )
    for name, values in query.items():
        for text in (name, *values):
            found = _CONTROL.search(text)
            if found:
                return (
                    f"The query parameter {name!r} contains a control character "
                    f"(U+{ord(found.group()):04X}); remove it."
                )
    return None


class ControlCharacterMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = control_character_problem(request.path, dict(request.GET.lists()))
        if problem is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return HttpResponse(
                json.dumps({"detail": problem}), status=400, content_type="application/json"
            )
        return HttpResponse(
            "<!doctype html><title>Bad request</title><h1>Bad request</h1>"
            f"<p>{escape(problem)}</p>",
            status=400,
            content_type="text/html; charset=utf-8",
        )
