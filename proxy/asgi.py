"""The proxy's lean ASGI endpoint (placeholder until the proxy lands).

`build_application(django_app)` returns the ASGI callable that config/asgi.py
serves: provider paths go to the proxy, everything else to Django.
"""

from __future__ import annotations


def build_application(django_application):
    async def application(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await django_application(scope, receive, send)

    return application
