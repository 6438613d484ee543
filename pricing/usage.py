"""The token counts of one call, normalised across providers.

The proxy's parsers produce it, the cost engine prices it, the ledger stores it.
Conventions (the same in the ledger, API and CSV):
- `input_tokens` is the TOTAL input, cached reads and cache writes included
  (Anthropic reports them separately; the parser adds them in).
- `reasoning_tokens` is part of `output_tokens` (OpenAI o-series); Gemini's
  thoughts are added into `output_tokens` and also counted here.
- audio counts are parts of input/output, priced at audio rates when present.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0  # 5-minute cache writes
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def is_empty(self) -> bool:
        return self.input_tokens == 0 and self.output_tokens == 0
