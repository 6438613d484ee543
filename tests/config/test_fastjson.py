"""config.fastjson answers exactly as the stdlib's json does (the oracle)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import fastjson

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**80)  # orjson would read floats
    | st.integers(min_value=-(2**80), max_value=-(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_loads_reads_what_json_reads(value):
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert fastjson.loads(text.encode("utf-8", "surrogatepass")) == json.loads(
            text.encode("utf-8", "surrogatepass")
        )


@given(JSON_VALUES)
def test_dumps_round_trips_through_json(value):
    assert json.loads(fastjson.dumps(value)) == value


def test_what_orjson_refuses_still_reads():
    big = fastjson.loads(b'{"n": 123456789012345678901234567890}')["n"]
    assert big == 10**29 + 23456789012345678901234567890 and isinstance(big, int)
    assert math.isnan(fastjson.loads(b'{"x": NaN}')["x"])
    assert fastjson.loads('"\\ud800"') == "\ud800"
    assert fastjson.dumps({"s": "\ud800"}) == b'{"s":"\\ud800"}'


@pytest.mark.parametrize("body", [b"", b"{", b"[" * 5000, b"\xff\xfe"])
def test_errors_are_json_errors(body):
    with pytest.raises((ValueError, RecursionError)):
        json.loads(body)
    with pytest.raises((ValueError, RecursionError)):
        fastjson.loads(body)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 12345678901234567890123}',  # 23 digits: past 64 bits
        "[9223372036854775808, -9223372036854775809, 1e400]",
        '{"id": "x1234567890123456789y", "n": 1234567890123456789}',  # 19 in a string, 19 a number
        '{"s": "\ud800", "n": 99999999999999999999}',  # a lone surrogate as a character
        '{"digits": "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠", "n": 1}',  # non-ASCII digits are text to JSON
    ],
)
def test_text_and_bytes_read_as_json_reads_them(text):
    # repr tells 10**20 from 1e20, which == does not.
    assert repr(fastjson.loads(text)) == repr(json.loads(text))
    raw = text.encode("utf-8", "surrogatepass")
    assert repr(fastjson.loads(raw)) == repr(json.loads(raw))
