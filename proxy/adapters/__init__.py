"""One adapter per provider API style: what a request asks, what a response used.

Everything here is pure (bytes and dicts in, facts out) so it is unit-tested
without a network. The endpoint picks the adapter by the route's API style.
"""

from __future__ import annotations

from proxy.adapters import anthropic, gemini, openai
from proxy.adapters.base import Observed, RequestFacts, StreamTap

ADAPTERS = {"openai": openai, "anthropic": anthropic, "gemini": gemini}

__all__ = ["ADAPTERS", "Observed", "RequestFacts", "StreamTap"]
