"""proxy.calls: the request id a call is given."""

from __future__ import annotations

import re
from unittest import mock

from proxy.calls import new_request_id


def test_request_ids_are_unique_and_in_time_order_to_the_second():
    with mock.patch("proxy.calls.time.time", return_value=1_800_000_000.9):
        first = [new_request_id() for _ in range(1000)]
    with mock.patch("proxy.calls.time.time", return_value=1_800_000_001.0):
        later = new_request_id()
    assert all(re.fullmatch(r"req_6b49d200[0-9a-f]{24}", rid) for rid in first)
    assert len(set(first)) == len(first)  # 96 random bits each
    assert max(first) < later  # the ledger's unique index takes new ids at its end
