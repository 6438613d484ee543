"""Errors the proxy itself answers, in the caller's provider error shape.

The caller's SDK parses the error it expects (OpenAI `{"error": {...}}`,
Anthropic `{"type": "error", ...}`, Gemini `{"error": {"code", ...}}`), so
the message reaches the developer instead of a parse failure.
"""

from __future__ import annotations

import json

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}


# Codes that are also the error's `type` (OpenAI and Anthropic shapes), so a
# client can tell a closed budget from a provider's rate limit by type alone.
TYPED_CODES = frozenset({"budget_exceeded"})


def error_body(style: str, status: int, message: str, code: str) -> bytes:
    """The JSON body of an error in API style `style` (openai|anthropic|gemini)."""
    if style == "anthropic":
        kind = code if code in TYPED_CODES else _ANTHROPIC_TYPES.get(status, "api_error")
        payload: dict = {"type": "error", "error": {"type": kind, "message": message}}
    elif style == "gemini":
        payload = {
            "error": {
                "code": status,
                "message": message,
                "status": _GEMINI_STATUS.get(status, "UNKNOWN"),
            }
        }
    else:
        payload = {
            "error": {
                "message": message,
                "type": code if code in TYPED_CODES else _OPENAI_TYPES.get(status, "api_error"),
                "param": None,
                "code": code,
            }
        }
    return json.dumps(payload).encode()


KEY_MISSING = (
    "x-aispendtrack-key header is missing; add the key from Settings → API keys "
    "(header x-aispendtrack-key: ask_…)."
)
KEY_INVALID = (
    "x-aispendtrack-key is not a valid key (unknown or revoked); create a key in "
    "Settings → API keys and send it in the x-aispendtrack-key header."
)
KEY_NO_SCOPE = (
    "This AiSpendTrack key lacks the 'proxy' scope; create a key with the proxy scope "
    "in Settings → API keys."
)
KEY_UNVERIFIABLE = (
    "AiSpendTrack cannot verify the x-aispendtrack-key right now (its key store is "
    "unreachable); retry in a few seconds."
)
UPSTREAM_UNREACHABLE = (
    "AiSpendTrack could not reach {provider} ({reason}); retry, and check the "
    "provider's status page if it persists."
)
UPSTREAM_TIMEOUT = (
    "{provider} did not answer within {seconds:g} s; retry, or raise "
    "AISPENDTRACK_READ_TIMEOUT / AISPENDTRACK_CONNECT_TIMEOUT if your calls are this slow."
)
PROXY_FAILED = (
    "AiSpendTrack failed to forward this request (request id {request_id}); retry, and "
    "report the request id if it persists."
)
UNKNOWN_PROVIDER = (
    "No provider '{slug}' is registered; ask staff to add it in admin (Providers), or use "
    "/openai/v1, /anthropic/v1 or /gemini/v1beta."
)
BODY_TOO_LARGE = (
    "AiSpendTrack: the request body is larger than this proxy accepts ({limit:g} MB, "
    "AISPENDTRACK_MAX_BODY_MB). Nothing was forwarded to the provider."
)
DOT_SEGMENT = (
    "The path {path!r} contains a '.' or '..' segment (perhaps percent-encoded); "
    "AiSpendTrack forwards only plain API paths. Remove the dot segments."
)
