"""Model-name match rules: genai-prices' clause structure stored as JSON.

A rule is one of {"equals": s}, {"starts_with": s}, {"ends_with": s},
{"contains": s}, {"regex": s}, {"or": [rule, ...]}, {"and": [rule, ...]}.
Text comparisons are case-insensitive (names are lowered before matching);
regexes apply to the lowered name as written, as genai-prices does.

The engine compiles each rule once into a predicate and pulls out the exact
names a rule accepts (`exact_names`), so most calls resolve with one dict
lookup and the predicates only run for names never seen before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from django.core.exceptions import ValidationError

Matcher = Callable[[str], bool]
_TEXT_CLAUSES = ("equals", "starts_with", "ends_with", "contains")
_COMPACT_DATE = re.compile(r"-(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")
_WINDOW = re.compile(
    r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?-([01]\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?$"
)


def compile_rule(rule: object) -> Matcher:
    """A predicate over a lowered model name. Raises ValueError on a bad rule."""
    if not isinstance(rule, dict) or len(rule) != 1:
        raise ValueError(f"a match rule is a one-key object, got {rule!r}")
    ((kind, value),) = rule.items()
    if kind in _TEXT_CLAUSES:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{kind} needs a non-empty string")
        text = value.lower()
        if kind == "equals":
            return text.__eq__
        if kind == "starts_with":
            return lambda name: name.startswith(text)
        if kind == "ends_with":
            return lambda name: name.endswith(text)
        return lambda name: text in name
    if kind == "regex":
        if not isinstance(value, str):
            raise ValueError("regex needs a string")
        try:
            return re.compile(value).search  # type: ignore[return-value]
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
    if kind in ("or", "and"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{kind} needs a non-empty list of rules")
        parts = tuple(compile_rule(part) for part in value)
        if kind == "or":
            return lambda name: any(part(name) for part in parts)
        return lambda name: all(part(name) for part in parts)
    raise ValueError(f"unknown match clause {kind!r}")


def exact_names(rule: object) -> set[str]:
    """Names the rule accepts by equality alone (equals at the top or inside ors).

    Equals inside an "and" are left out: the other branches could still reject.
    """
    if not isinstance(rule, dict) or len(rule) != 1:
        return set()
    ((kind, value),) = rule.items()
    if kind == "equals" and isinstance(value, str):
        return {value.lower()}
    if kind == "or" and isinstance(value, list):
        names: set[str] = set()
        for part in value:
            names |= exact_names(part)
        return names
    return set()


def has_only_equals(rule: object) -> bool:
    """True when `exact_names` is everything the rule accepts (no predicate needed)."""
    if not isinstance(rule, dict) or len(rule) != 1:
        return False
    ((kind, value),) = rule.items()
    if kind == "equals":
        return True
    if kind == "or" and isinstance(value, list):
        return all(has_only_equals(part) for part in value)
    return False


def normalize_compact_date(name: str) -> str:
    """`gpt-5.2-20251211` → `gpt-5.2-2025-12-11` (LiteLLM/OpenRouter spell dates compactly)."""

    def replace(match: re.Match[str]) -> str:
        year, month, day = (int(match.group(i)) for i in (1, 2, 3))
        try:
            date(year, month, day)
        except ValueError:
            return match.group(0)
        return f"-{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(replace, name)


def parse_time_window(window: str) -> tuple[int, int] | None:
    """ "HH:MM-HH:MM" (UTC) → (start, end) seconds of day; "" → None."""
    if not window:
        return None
    match = _WINDOW.match(window)
    if match is None:
        raise ValueError(f"time window {window!r} is not HH:MM-HH:MM (UTC)")
    h1, m1, s1, h2, m2, s2 = match.groups()
    start = int(h1) * 3600 + int(m1) * 60 + int(s1 or 0)
    end = int(h2) * 3600 + int(m2) * 60 + int(s2 or 0)
    return start, end


def in_window(second_of_day: int, window: tuple[int, int]) -> bool:
    start, end = window
    if end < start:  # wraps past midnight
        return second_of_day >= start or second_of_day < end
    return start <= second_of_day < end


def validate_match_rules(value: object) -> None:
    if value in (None, ""):
        return
    try:
        compile_rule(value)
    except ValueError as exc:
        raise ValidationError(
            f"Invalid match rule: {exc}. Example: "
            '{"or": [{"equals": "my-model"}, {"starts_with": "my-model-2025"}]}'
        ) from exc


def validate_time_window(value: str) -> None:
    try:
        parse_time_window(value)
    except ValueError as exc:
        raise ValidationError(f"{exc}; example: 00:30-16:30, or blank for all day.") from exc
