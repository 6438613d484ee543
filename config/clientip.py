"""The client's IP address, for throttles and logs.

`X-Forwarded-For` is believed only when the connection comes from a proxy
listed in AISPENDTRACK_TRUSTED_PROXIES (addresses or CIDR ranges): anyone
can send the header, so trusting it from everyone would let an attacker pick
a fresh IP per guess. The chain is read right to left, skipping trusted
proxies; the first address that is not one is the client. uvicorn runs with
--no-proxy-headers so that this is the only place the header is read.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def trusted_proxy(address: str) -> bool:
    parsed = _address(address)
    networks = _networks(tuple(settings.AISPENDTRACK_TRUSTED_PROXIES))
    return parsed is not None and any(parsed in network for network in networks)


def client_ip(request) -> str:
    remote = request.META.get("REMOTE_ADDR") or ""
    if not settings.AISPENDTRACK_TRUSTED_PROXIES or not trusted_proxy(remote):
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        parsed = _address(hop)
        if parsed is None:
            break  # garbage in the chain: believe no further than the last proxy
        if not trusted_proxy(str(parsed)):
            return str(parsed)
        remote = str(parsed)
    return remote
