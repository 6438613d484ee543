"""Raw key material: generation and hashing, shared by keys and invitations."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ask_"
# 32 random bytes → 43 URL-safe characters (the issue asks for at least 32).
SECRET_BYTES = 32
DISPLAY_CHARS = 8


def generate_raw_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(raw: str) -> str:
    """SHA-256 hex digest. Keys are high-entropy, so no salt or slow KDF is needed."""
    return hashlib.sha256(raw.encode()).hexdigest()


def display_prefix(raw: str) -> str:
    return raw[: len(KEY_PREFIX) + DISPLAY_CHARS]


def generate_token() -> str:
    return secrets.token_urlsafe(32)
