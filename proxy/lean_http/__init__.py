"""A lean HTTP/1.1 client for the upstream's plain (non-streamed) calls.

aiohttp's request building and response parsing were ~17 % of a worker's
event-loop samples (docs/architecture.md, "The lean upstream client"). This
client does only what the proxy asks of aiohttp, with httptools' parser
under an asyncio.Protocol. Streams stay on aiohttp (proxy/upstream.py).

What it keeps from the aiohttp session beside it (proxy/runtime.py):
- addresses: the same resolver (PublicResolver, or aiohttp's default when
  private upstreams are allowed), asked once per (host, port) per DNS_TTL;
  IP literals are not resolved (LiteralGuard checked them); it connects only
  to what the resolver returned, through aiohappyeyeballs, address after
  address, as aiohttp does;
- TLS: a default context (certificates and host name verified, ALPN
  http/1.1), SNI the host without its trailing dot;
- timeouts: connect (TCP and TLS handshake, per attempt), read (no byte for
  `read_timeout` seconds while an answer is due); and aiohttp's own error
  classes, so proxy/upstream.py and proxy/relay.py map them unchanged;
- the request's bytes: the raw path and query, Host, the client's headers
  in order, Content-Length when there is a body or the method is not
  GET-like, UTF-8, CR/LF refused (a raw-socket test compares both clients);
- pooling per (scheme, host, port), unbounded. A connection goes back to
  the pool only once its whole answer was read and both sides keep it
  alive; one the server closed while idle (its FIN seen by the loop) or
  idle longer than KEEPALIVE (aiohttp's 15 s) is never reused. A request
  that fails on a connection before any answer (the server closed it as we
  wrote) is retried once on a fresh one for idempotent methods only:
  aiohttp's rule; a POST is not replayed and gets aiohttp's 502.
"""

from proxy.lean_http.client import LeanClient
from proxy.lean_http.connection import LeanResponse

__all__ = ["LeanClient", "LeanResponse"]
