"""Registered OpenAI-compatible providers: slug → (base URL, API style), no I/O.

The map is the pricing engine's in-memory snapshot of active Provider rows
(`pricing.engine.provider_upstreams`), reloaded with the prices when staff
save a provider (the proxy awaits `aensure_fresh` each second, off the hot
path). A base URL is the upstream root without /v1
(https://api.groq.com/openai): `/<slug>/v1/…` goes to `<base URL>/v1/…`.
`provider_register` adds an entry by hand (tests, or a deployment that wants
one without the admin).
"""

from __future__ import annotations

from pricing.engine import provider_upstreams
from pricing.models import RESERVED_SLUGS as RESERVED

STYLES = frozenset({"openai", "anthropic", "gemini"})

_manual: dict[str, tuple[str, str]] = {}


def provider_upstream(slug: str) -> tuple[str, str] | None:
    """(base URL, API style) of a registered provider, or None. No I/O."""
    found = _manual.get(slug) or provider_upstreams().get(slug)
    if found is None or slug in RESERVED or found[1] not in STYLES:
        return None
    return found


def provider_register(slug: str, base_url: str, api_style: str = "openai") -> None:
    if slug in RESERVED or api_style not in STYLES:
        raise ValueError(f"cannot register provider {slug!r} with style {api_style!r}")
    _manual[slug] = (base_url.rstrip("/"), api_style)


def provider_unregister(slug: str) -> None:
    _manual.pop(slug, None)
