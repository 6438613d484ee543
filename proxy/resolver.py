"""Connect-time guard on upstream addresses (issue 9): a provider staff
registered must not lead tenants' provider keys to internal addresses.

aiohttp asks `PublicResolver` for a host's addresses (at most once per host
per DNS-cache TTL, never per call) and connects to exactly what it returns,
so a name that re-resolves to a private address after the save-time check
(DNS rebinding) is refused here. aiohttp does not resolve IP literals, so
`literal_refusal` checks those (a dict lookup per call once seen).

The built-in upstreams come from settings (the operator's choice, trusted):
their hosts are exempt. `AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS=1` turns the
guard off (the runtime then installs neither).
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from config.netguard import address_is_public

HINT = "refused; an operator can allow it with AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS=1"


def trusted_hosts(*urls: str) -> frozenset[str]:
    return frozenset(host for url in urls if (host := URL(url).host))


def _refusal(host: str, address: str) -> str | None:
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{host} resolves to {address!r}, not an IP address; {HINT}"
    if address_is_public(parsed):
        return None
    return f"{host} resolves to {parsed}, an internal address; {HINT}"


class PublicResolver(AbstractResolver):
    def __init__(self, *, trusted: frozenset[str], inner: AbstractResolver | None = None):
        self.trusted = trusted
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host not in self.trusted:
            for result in results:
                problem = _refusal(host, result["host"])
                if problem is not None:
                    # aiohttp turns an OSError here into ClientConnectorDNSError: a 502.
                    raise OSError(problem)
        return results

    async def close(self) -> None:
        await self._inner.close()


class LiteralGuard:
    """Refusals for IP-literal upstream hosts, remembered per host."""

    def __init__(self, trusted: frozenset[str]):
        self.trusted = trusted
        self._seen: dict[str, str | None] = {}

    def refusal(self, host: str | None) -> str | None:
        if not host:
            return None
        try:
            return self._seen[host]
        except KeyError:
            pass
        problem = None
        if host not in self.trusted:
            try:
                ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                problem = None  # a name: PublicResolver sees it
            else:
                problem = _refusal(host, host.strip("[]"))
        if len(self._seen) < 10_000:
            self._seen[host] = problem
        return problem
