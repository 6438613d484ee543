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
  alive (a cancelled or cut answer closes it); one the server closed while
  idle (its FIN or reset seen by the loop) or idle longer than KEEPALIVE
  (aiohttp's 15 s) is never reused. Most recently used first (aiohttp takes
  the oldest), so fewer connections stay warm.
- a request that fails before any answer: retried once on a fresh
  connection for idempotent methods (aiohttp's rule), and, beyond aiohttp,
  for any method when a reused connection was reset before any answer
  byte: the request met a socket the server had already closed, so it was
  never read (the server answered, then closed with bytes unread: the fake
  provider after a gzip body it cannot inflate, as tests/proxy/test_fuzz.py
  sends; aiohttp gave the next POST a 502 for 2–7 in 150 such pairs in a
  loop, the lean client none). A clean close
  (FIN) after the request is never replayed for a POST: the server may have
  read it.
"""

from proxy.lean_http.client import LeanClient
from proxy.lean_http.connection import LeanResponse

__all__ = ["LeanClient", "LeanResponse"]
