"""Hypothesis over every page's query parameters: never a 500.

The pages are found by walking the URL configuration (admin and the REST API
excepted: Django's admin is its own, the API has its schemathesis fuzz), so
a page added later is fuzzed too. Each is requested logged in (as an owner of
an organization with ledger rows) and anonymously, with query parameters
drawn from the names the pages read and from arbitrary text, and values from
arbitrary text and known edges (dates past 2000–2100, NUL, huge numbers).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from analytics.services import usage_record_batch
from tests.analytics.conftest import call

PARAM_NAMES = [
    "range",
    "start_date",
    "end_date",
    "startDate",
    "endDate",
    "q",
    "sort",
    "order",
    "page",
    "per_page",
    "limit",
    "cursor",
    "customer_id",
    "feature",
    "model",
    "provider",
    "status",
    "trace_id",
    "environment",
    "key_id",
    "group_by",
    "by",
    "next",
    "format",
    "tab",
    "days",
    "window",
]
EDGES = [
    "0001-01-01",
    "9999-12-31",
    "1999-12-31",
    "2101-01-01",
    "2026-02-30",
    "\x00",
    "a\x00b",
    "\x1b",
    "-1",
    "0",
    "1e309",
    "NaN",
    "99999999999999999999999",
    "",
    "(untagged)",
    "today",
    "last_month",
    "cost",
    "name",
    "https://evil.test/",
    "//evil.test",
    "💥" * 200,
]
SAMPLE_ARGS = {"int": "1", "str": "gpt-4o", "path": "gpt-4o", "slug": "x", "uuid": "x"}
SKIPPED_PREFIXES = ("admin/", "api/")


def _pages() -> list[str]:
    """Every GET-able path of the URL configuration, sample values for its arguments."""
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if route.startswith(SKIPPED_PREFIXES) or "^" in route:
                continue
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                path = re.sub(
                    r"<(?:(\w+):)?\w+>", lambda m: SAMPLE_ARGS.get(m.group(1) or "str", "x"), route
                )
                found.append("/" + path)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


PAGES = _pages()
# Every query may also carry a date anywhere in datetime's range: dates were
# the pages' most common crash (year 9999 overflowed), too rare to hit by
# drawing names and values independently.
_dated = st.tuples(
    st.sampled_from(["start_date", "end_date", "startDate", "endDate"]),
    st.dates().map(lambda day: day.isoformat())
    | st.sampled_from(["0001-01-01", "0001-01-31", "9999-12-31", "1999-12-31", "2101-01-01"]),
)
params = st.builds(
    lambda extra, date: {**extra, **dict([date] if date else [])},
    st.dictionaries(
        keys=st.sampled_from(PARAM_NAMES) | st.text(max_size=6),
        values=st.sampled_from(EDGES) | st.text(max_size=30),
        max_size=4,
    ),
    st.none() | _dated,
)


def test_the_walk_finds_the_pages():
    for page in ("/dashboard/", "/customers/", "/pricing/models", "/models/gpt-4o/", "/healthz"):
        assert page in PAGES


@pytest.fixture
def ledger(org):
    now = timezone.now()
    usage_record_batch(
        [
            call(org, now - timedelta(hours=1), customer_id="c-1", feature="chat", trace_id="t-1"),
            call(org, now - timedelta(days=2), model="claude-opus-4", provider="anthropic"),
        ]
    )


def _fuzz(client, examples: int) -> list[str]:
    client.raise_request_exception = False  # count a crash as the 500 a server would send
    failures: list[str] = []
    for page in PAGES:
        _probe(client, page, examples, failures)
    return failures


# Tried on every page before the random draws (hypothesis' explicit phase):
# the inputs that used to crash pages, which random draws reach too rarely.
KNOWN_CRASHERS = [
    {"start_date": "9999-12-31"},
    {"end_date": "0001-01-01"},
    {"startDate": "0001-01-31", "endDate": "0001-01-31"},
    {name: "99999999999999999999999" for name in PARAM_NAMES},
    {name: "-1" for name in PARAM_NAMES},
    {"q": "\x00"},
]


def _probe(client, page: str, examples: int, failures: list[str]) -> None:
    @given(query=params)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def probe(query):
        response = client.get(page, query)
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {page} {query!r}")

    for query in KNOWN_CRASHERS:
        probe = example(query=query)(probe)
    probe()


@pytest.mark.django_db
def test_pages_logged_in_never_500(client, owner, ledger):
    client.force_login(owner)
    failures = _fuzz(client, examples=8)
    assert failures == [], failures[:20]


@pytest.mark.django_db
def test_public_views_never_500(client, ledger):
    failures = _fuzz(client, examples=8)
    assert failures == [], failures[:20]
