"""Registered OpenAI-compatible providers: slug → (base URL, API style), in memory.

A base URL is the upstream root without /v1 (https://api.groq.com/openai), as
pricing.models.Provider.base_url holds it: `/<slug>/v1/…` goes to
`<base URL>/v1/…`.

The router asks this map on every `/<slug>/v1/*` request, so it never
queries: `providers_refresh` reloads it from the registry (pricing's
Provider rows) every few seconds off the hot path, in the ledger's thread.
`provider_register` adds an entry by hand (tests, or a deployment without
the registry).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("aispendtrack.proxy")

try:  # TODO(merge): pricing.selectors lands with the pricing branch; drop the shim then.
    from pricing.selectors import provider_upstreams_all
except ImportError:  # pragma: no cover - depends on which branches are merged
    provider_upstreams_all = None

REFRESH_SECONDS = 5.0
# Path prefixes the proxy or Django own: never a provider slug.
RESERVED = frozenset(
    {"v1", "openai", "anthropic", "gemini", "admin", "accounts", "api", "static", "healthz"}
)
STYLES = frozenset({"openai", "anthropic", "gemini"})

_registry: dict[str, tuple[str, str]] = {}
_manual: dict[str, tuple[str, str]] = {}


def provider_upstream(slug: str) -> tuple[str, str] | None:
    """(base URL, API style) of a registered provider, or None. No I/O."""
    return _manual.get(slug) or _registry.get(slug)


def provider_register(slug: str, base_url: str, api_style: str = "openai") -> None:
    if slug in RESERVED or api_style not in STYLES:
        raise ValueError(f"cannot register provider {slug!r} with style {api_style!r}")
    _manual[slug] = (base_url.rstrip("/"), api_style)


def provider_unregister(slug: str) -> None:
    _manual.pop(slug, None)


def providers_refresh() -> int:
    """Reload the registry (sync: run it in a worker thread). Returns how many."""
    global _registry
    if provider_upstreams_all is None:
        return 0
    try:
        loaded = provider_upstreams_all()
    except Exception:  # the DB may be down: keep the last good map
        logger.warning("provider registry refresh failed; keeping the last map", exc_info=True)
        return len(_registry)
    _registry = {
        slug: (base_url.rstrip("/"), style)
        for slug, (base_url, style) in loaded.items()
        if slug not in RESERVED and style in STYLES and base_url
    }
    return len(_registry)
