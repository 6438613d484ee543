"""Opening the upstream request, and what a failure to get an answer means."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

from proxy import errors


@dataclass
class UpstreamFailed(Exception):
    """No HTTP answer from the provider: 502 (unreachable) or 504 (too slow)."""

    status: int
    reason: str
    connect: bool = False

    @property
    def code(self) -> str:
        return "upstream_timeout" if self.status == 504 else "upstream_unreachable"

    def message(self, provider: str, runtime) -> str:
        if self.status == 504:
            seconds = runtime.connect_timeout if self.connect else runtime.read_timeout
            return errors.UPSTREAM_TIMEOUT.format(provider=provider, seconds=seconds)
        return errors.UPSTREAM_UNREACHABLE.format(provider=provider, reason=self.reason)


async def open_upstream(runtime, method: str, url: URL, headers, body: bytes, *, stream: bool):
    """Send the request; returns the response once its headers arrived. A
    plain call goes through the lean client (proxy/lean_http/), a stream (or
    a HEAD, whose answer has no body whatever its headers say) through
    aiohttp; both raise aiohttp's errors, mapped here the same way."""
    guard = runtime.literal_guard
    if guard is not None and (problem := guard.refusal(url.host)) is not None:
        raise UpstreamFailed(502, problem)
    try:
        if not stream and method != "HEAD" and runtime.lean is not None:
            return await runtime.lean.request(method, url, headers, body)
        return await runtime.session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        )
    except aiohttp.ConnectionTimeoutError as error:
        raise UpstreamFailed(504, "connect timeout", connect=True) from error
    except TimeoutError as error:  # aiohttp's read timeouts are TimeoutError too
        raise UpstreamFailed(504, "read timeout") from error
    except aiohttp.ClientConnectorError as error:
        raise UpstreamFailed(502, f"connection failed: {error.os_error}") from error
    except (aiohttp.ClientError, OSError) as error:
        raise UpstreamFailed(502, type(error).__name__) from error
