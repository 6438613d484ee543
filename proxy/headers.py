"""Which headers go upstream, which come back, and our tags (pure functions).

Everything the client sends is forwarded as received except hop-by-hop
headers and ours. The provider key (Authorization, x-api-key,
x-goog-api-key) is forwarded and never read, stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# RFC 9110 §7.6.1 connection-specific headers, plus the ones the proxy recomputes:
# host (the upstream's), content-length (of the body actually sent) and expect
# (the server already answered 100-continue; the body is read in full).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
KEY_HEADER = b"x-aispendtrack-key"
TAG_HEADERS = {
    b"x-customer-id": "customer_id",
    b"x-feature": "feature",
    b"x-trace-id": "trace_id",
    b"x-environment": "environment",
}
PROPERTY_PREFIX = b"x-property-"
MAX_TAG_LENGTH = 256
MAX_PROPERTIES = 20
MAX_PROPERTY_NAME = 64

# The encodings the proxy can decode (zlib) to read usage from its side copy.
DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "identity"})


@dataclass(slots=True)
class SplitHeaders:
    """The request's headers sorted into what is forwarded and what is ours."""

    forward: list[tuple[str, str]] = field(default_factory=list)
    key: str | None = None
    tags: dict[str, bytes] = field(default_factory=dict)
    properties: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: str = ""
    accept_encoding: str | None = None


class TagError(ValueError):
    """A tag header the proxy refuses; the message tells the caller what to fix."""


@dataclass(slots=True)
class Tags:
    customer_id: str = ""
    feature: str = ""
    trace_id: str = ""
    environment: str = ""
    properties: dict[str, str] = field(default_factory=dict)


def split_request_headers(raw: list[tuple[bytes, bytes]]) -> SplitHeaders:
    """One pass over ASGI headers (lower-case names): forward, ours, or dropped."""
    split = SplitHeaders()
    dropped: frozenset[bytes] | set[bytes] = HOP_BY_HOP
    for name, value in raw:
        if name == b"connection":
            # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
            dropped = set(HOP_BY_HOP) | {
                token.strip().lower() for token in value.split(b",") if token.strip()
            }
    for name, value in raw:
        if name in dropped:
            continue
        if name.startswith(b"x-"):
            if name == KEY_HEADER:
                split.key = value.decode("latin-1").strip()
                continue
            if name in TAG_HEADERS:
                split.tags[TAG_HEADERS[name]] = value
                continue
            if name.startswith(PROPERTY_PREFIX):
                split.properties.append((name[len(PROPERTY_PREFIX) :], value))
                continue
        text = value.decode("latin-1")
        if name == b"content-type":
            split.content_type = text.lower()
        elif name == b"accept-encoding":
            split.accept_encoding = text
            continue  # added back by upstream_accept_encoding
        split.forward.append((name.decode("latin-1"), text))
    return split


def _tag_value(header: str, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TagError(f"{header} is not valid UTF-8; send plain UTF-8 text.") from None
    if len(text) > MAX_TAG_LENGTH:
        raise TagError(
            f"{header} is {len(text)} characters long; the limit is {MAX_TAG_LENGTH}. "
            "Send a shorter value (an id, not a description)."
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise TagError(f"{header} contains control characters; remove them.")
    return text


def parse_tags(split: SplitHeaders) -> Tags:
    """Validated tags; raises TagError with a message for the caller."""
    tags = Tags()
    for attribute, raw in split.tags.items():
        header = "x-" + attribute.replace("_", "-")
        setattr(tags, attribute, _tag_value(header, raw))
    if len(split.properties) > MAX_PROPERTIES:
        raise TagError(
            f"{len(split.properties)} x-property-* headers sent; the limit is "
            f"{MAX_PROPERTIES}. Merge or drop some."
        )
    for raw_name, raw_value in split.properties:
        name = raw_name.decode("latin-1")
        header = f"x-property-{name}"
        if not name or len(name) > MAX_PROPERTY_NAME:
            raise TagError(
                f"{header}: a property name needs 1 to {MAX_PROPERTY_NAME} characters "
                "after x-property-."
            )
        tags.properties[name] = _tag_value(header, raw_value)
    return tags


def upstream_accept_encoding(value: str | None, *, identity_only: bool) -> str | None:
    """The Accept-Encoding sent upstream: the client's, minus codings we cannot decode.

    The body is relayed byte for byte (compressed if the provider compressed
    it); our side copy must be readable to count tokens, so codings without a
    decoder here (br, zstd) are not offered. When the stream is edited (our
    usage chunk removed) it must arrive uncompressed.
    """
    if identity_only:
        return "identity"
    if value is None:
        return None
    kept = [
        part.strip()
        for part in value.split(",")
        if part.split(";", 1)[0].strip().lower() in DECODABLE or part.strip().startswith("*;q=0")
    ]
    return ", ".join(kept) if kept else "identity"


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers for the client, minus hop-by-hop ones."""
    return [(name, value) for name, value in raw if name.lower() not in HOP_BY_HOP]
