"""Which upstream serves a path (pure: no I/O, no request data in the URL base).

`/v1/messages*` → Anthropic; every other `/v1/*` → OpenAI (one base URL
`…/v1` serves both SDKs); explicit prefixes `/openai/v1/*`,
`/anthropic/v1/*`, `/gemini/v1beta/*`; `/<slug>/v1/*` for providers
registered by staff. Upstream bases come from settings or the provider
registry, never from the request (no SSRF).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from proxy.providers import RESERVED

# Ledger provider ids: the pricing app's Provider slugs for the built-ins.
OPENAI, ANTHROPIC, GEMINI = "openai", "anthropic", "gemini"


@dataclass(frozen=True, slots=True)
class Route:
    provider: str  # the ledger's provider id
    style: str  # API style: openai | anthropic | gemini
    base_url: str  # upstream origin (+ base path), no trailing slash
    path: str  # raw (still percent-encoded) path to request upstream


@dataclass(frozen=True, slots=True)
class UnknownProvider:
    """`/<slug>/v1/…` for a slug nobody registered."""

    slug: str


ProviderLookup = Callable[[str], "tuple[str, str] | None"]


class Router:
    def __init__(self, *, openai: str, anthropic: str, gemini: str, providers: ProviderLookup):
        self._openai = openai.rstrip("/")
        self._anthropic = anthropic.rstrip("/")
        self._gemini = gemini.rstrip("/")
        self._providers = providers

    def resolve(self, path: str) -> Route | UnknownProvider | None:
        """The route for a raw request path; None: not a proxy path (Django's)."""
        if path.startswith("/v1/"):
            if path == "/v1/messages" or path.startswith("/v1/messages/"):
                return Route(ANTHROPIC, "anthropic", self._anthropic, path)
            return Route(OPENAI, "openai", self._openai, path)
        if path.startswith("/openai/v1/"):
            return Route(OPENAI, "openai", self._openai, path[7:])
        if path.startswith("/anthropic/v1/"):
            return Route(ANTHROPIC, "anthropic", self._anthropic, path[10:])
        if path.startswith("/gemini/v1beta/") or path.startswith("/gemini/v1/"):
            return Route(GEMINI, "gemini", self._gemini, path[7:])
        return self._registered(path)

    def _registered(self, path: str) -> Route | UnknownProvider | None:
        slash = path.find("/", 1)
        if slash < 0 or not path.startswith("/v1/", slash):
            return None
        slug = path[1:slash]
        if slug in RESERVED:  # Django's page (e.g. /customers/v1/ for customer "v1")
            return None
        found = self._providers(slug)
        if found is None:
            return UnknownProvider(slug)
        base_url, style = found
        # A registered base URL is the upstream root without /v1
        # (https://api.groq.com/openai): the path after /<slug> follows it.
        return Route(slug, style, base_url.rstrip("/"), path[slash:])


def has_dot_segment(path: str) -> bool:
    """Whether a raw path has a `.` or `..` segment, literally or percent-encoded
    (once or twice, e.g. `%2e%2e`, `%252e`), or hides a slash or backslash in
    an encoded segment: an upstream that normalises it would serve another path
    than the one routed (`/v1/../admin/`)."""
    for _ in range(3):
        for segment in path.replace("\\", "/").split("/"):
            if segment in (".", ".."):
                return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True  # encoded three times over: nobody's SDK sends that
