"""Decoding the side copy of a compressed response, to read its usage.

The client gets the provider's bytes unchanged (compressed if they were);
only the proxy's copy is inflated. Upstream is only offered codings that
zlib can decode (headers.upstream_accept_encoding).
"""

from __future__ import annotations

import zlib

_MAX_OUTPUT = 64 * 1024 * 1024  # a side copy never inflates past this (zip bombs)


class Decoder:
    """Incremental: feed compressed chunks, get plain bytes. Unknown codings yield b""."""

    __slots__ = ("_inflate", "_produced")

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        # wbits 47 = 32 + 15: zlib or gzip header, detected automatically.
        known = encoding in {"gzip", "x-gzip", "deflate"}
        self._inflate = zlib.decompressobj(47) if known else None
        self._produced = 0

    def feed(self, chunk: bytes) -> bytes:
        if self._inflate is None or self._produced > _MAX_OUTPUT:
            return b""
        try:
            plain = self._inflate.decompress(chunk, _MAX_OUTPUT)
        except zlib.error:
            self._inflate = None
            return b""
        self._produced += len(plain)
        return plain


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """A whole body, decoded for reading; the same bytes when not encoded."""
    if not encoding or encoding.strip().lower() == "identity":
        return body
    return Decoder(encoding).feed(body)
