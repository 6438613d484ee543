"""The floor: the thinnest proxy, against which bench.proxy sets AiSpendTrack.

A raw ASGI callable relaying each request to the upstream with one pooled
aiohttp session and answering with its body: no key, no usage, no ledger.
`uvicorn bench.floor:app` with the upstream in FLOOR_UPSTREAM; served the
same way as the proxy (uvloop, httptools, same worker count).
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9")
_session: aiohttp.ClientSession | None = None


async def app(scope, receive, send) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0)
                _session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    assert _session is not None
    async with _session.post(UPSTREAM + scope["path"], data=body) as response:
        payload = await response.read()
        headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
