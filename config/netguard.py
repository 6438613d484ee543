"""Outbound URLs that tenants or staff type never reach internal addresses.

Provider base URLs, webhook and Slack URLs are checked when saved
(`check_public_url`) and again when connecting (`public_addresses`, which
resolves once and returns the addresses to connect to, so a DNS answer that
changes between the check and the connect (rebinding) cannot slip through).

Refused: loopback, private (RFC 1918, ULA), link-local (cloud metadata at
169.254.169.254 included), carrier-grade NAT, multicast, reserved and
unspecified addresses, and IPv4 addresses hidden in IPv6 (mapped, 6to4,
Teredo). An operator lifts the rule per kind of URL with a setting
(`AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS`, `AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE`).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeURL(ValueError):
    """The URL is malformed or points at an address we refuse to call."""


class Unresolvable(UnsafeURL):
    """The host name does not resolve (now): a save-time check may let it pass,
    since the connect-time check sees whatever it resolves to later."""


def address_is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour):
            if embedded is not None:
                return address_is_public(embedded)
        if address.teredo is not None:
            return all(address_is_public(part) for part in address.teredo)
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def split_url(url: str, *, schemes: tuple[str, ...] = ("https", "http")) -> tuple[str, int]:
    """(host, port) of an absolute URL with an allowed scheme, or UnsafeURL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeURL(f"{url!r} is not a valid URL: {error}") from None
    if parts.scheme not in schemes:
        raise UnsafeURL(f"the URL must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host name")
    if parts.username or parts.password:
        raise UnsafeURL("the URL must not carry a user name or password")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def public_addresses(host: str, port: int, *, allow_private: bool = False) -> list[IPAddress]:
    """Resolve `host`; every address it resolves to must be public (unless
    `allow_private`). Returns the addresses, to connect to exactly those."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses: list[IPAddress] = [literal]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise Unresolvable(f"cannot resolve {host!r}: {error}") from None
        addresses = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"{host!r} resolves to no address")
    if not allow_private:
        refused = [a for a in addresses if not address_is_public(a)]
        if refused:
            raise UnsafeURL(
                f"{host!r} resolves to {refused[0]}, an internal address (loopback, private, "
                "link-local or metadata); only public addresses may be called"
            )
    return addresses


def check_public_url(
    url: str, *, allow_private: bool = False, schemes: tuple[str, ...] = ("https", "http")
) -> None:
    """Save-time check: the URL is well formed and resolves only to public
    addresses (unless `allow_private`). Raises UnsafeURL with a message for people."""
    host, port = split_url(url, schemes=schemes)
    public_addresses(host, port, allow_private=allow_private)
