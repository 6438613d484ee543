from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pricing.matching import (
    compile_rule,
    exact_names,
    has_only_equals,
    in_window,
    normalize_compact_date,
    parse_time_window,
    validate_match_rules,
)

RULE = {
    "or": [
        {"equals": "GPT-4o-Mini"},
        {"starts_with": "gpt-4o-mini-2024"},
        {"and": [{"contains": "mini"}, {"regex": "^o4-"}]},
    ]
}


def test_rules_match_case_insensitively_like_genai_prices():
    match = compile_rule(RULE)
    assert match("gpt-4o-mini")
    assert match("gpt-4o-mini-2024-07-18")
    assert match("o4-mini")
    assert not match("gpt-4o")
    assert compile_rule({"ends_with": "-Preview"})("x-preview")


def test_exact_names_are_the_equals_reachable_through_ors():
    assert exact_names(RULE) == {"gpt-4o-mini"}
    assert exact_names({"and": [{"equals": "x"}, {"regex": "y"}]}) == set()
    assert has_only_equals({"or": [{"equals": "a"}, {"equals": "b"}]})
    assert not has_only_equals(RULE)


@pytest.mark.parametrize(
    "bad", [{"equals": ""}, {"or": []}, {"regex": "("}, {"nope": "x"}, ["equals", "x"]]
)
def test_bad_rules_are_refused_with_an_example(bad):
    with pytest.raises(ValidationError, match="Example"):
        validate_match_rules(bad)


def test_compact_dates():
    assert normalize_compact_date("gpt-5.2-20251211") == "gpt-5.2-2025-12-11"
    assert normalize_compact_date("model-20251341") == "model-20251341"  # not a date


def test_time_windows_wrap_midnight():
    window = parse_time_window("16:30-00:30")
    assert window == (59_400, 1_800)
    assert in_window(23 * 3600, window) and not in_window(12 * 3600, window)
    assert parse_time_window("") is None
    with pytest.raises(ValueError, match="HH:MM"):
        parse_time_window("25:00-01:00")
