"""The live pages' poll served beside Django's stack (proxy/live.py): the same
answer as Django's view, to exactly the sessions Django's middleware accepts,
and only ever the member's own organization's marker."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parsedate_to_datetime

import httpx
import pytest
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from accounts.middleware import SESSION_KEY as ORGANIZATION_SESSION_KEY
from accounts.models import Membership, Role
from analytics.fold import rollups_fold_until_done
from analytics.models import UsageEvent
from analytics.services import usage_record_batch
from proxy import live as live_module
from tests.analytics.conftest import call
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIVE = "/dashboard/live.json"
# Headers the lean path's answer must carry as Django's does.
DJANGO_HEADERS = (
    "content-type",
    "cache-control",
    "expires",
    "vary",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
)


def _headers_as_djangos(ours: httpx.Response, django, names=DJANGO_HEADERS) -> None:
    """Each header as Django's answer has it. `Expires` is never_cache's "now"
    at each answer, so two answers taken a moment apart may straddle a second:
    it must be present in both and name the same instant within 2 s."""
    for header in names:
        if header == "expires":
            theirs = parsedate_to_datetime(django.headers[header])
            assert abs(parsedate_to_datetime(ours.headers[header]) - theirs) <= timedelta(
                seconds=2
            ), header
            continue
        assert ours.headers.get(header) == django.headers.get(header), header


@pytest.fixture
def lean(proxy, monkeypatch):
    """The polls the lean path answered itself (True) or handed to Django (False)."""
    endpoint = proxy.runtime.live
    answered: list[bool] = []
    original = endpoint._answer

    def spy(scope):
        response = original(scope)
        answered.append(response is not None)
        return response

    monkeypatch.setattr(endpoint, "_answer", spy)
    return answered


def _login(user, organization=None) -> str:
    client = Client()
    client.force_login(user)
    if organization is not None:
        session = client.session
        session[ORGANIZATION_SESSION_KEY] = organization.pk
        session.save()
    return client.cookies["sessionid"].value


def _poll(proxy, session_key: str | None, **headers) -> httpx.Response:
    cookies = {"sessionid": session_key} if session_key else None
    return httpx.get(f"{proxy.url}{LIVE}", cookies=cookies, headers=headers)


def _record(org) -> str:
    usage_record_batch([call(org, timezone.now())])
    rollups_fold_until_done()
    return str(UsageEvent.objects.filter(organization=org).latest("created_at", "pk").pk)


def test_a_member_gets_what_django_answers(proxy, lean, org, owner, settings):
    settings.AISPENDTRACK_LIVE_MARKER_SECONDS = 0
    newest = _record(org)
    key = _login(owner)
    ours = _poll(proxy, key)
    assert lean == [True]
    assert ours.status_code == 200 and ours.json() == {"latest": newest}
    client = Client()
    client.cookies["sessionid"] = key
    django = client.get(LIVE)
    assert django.json() == ours.json()
    _headers_as_djangos(ours, django)
    assert "no-store" in ours.headers["cache-control"] and "Cookie" in ours.headers["vary"]
    assert "set-cookie" not in ours.headers


def test_sessions_django_would_refuse_get_no_marker(proxy, lean, org, owner):
    _record(org)
    assert _poll(proxy, None).status_code == 302  # no cookie: Django's login redirect
    assert _poll(proxy, "not-a-session-key").headers["location"].startswith("/accounts/login/")

    logged_out = _login(owner)
    browser = Client()
    browser.cookies["sessionid"] = logged_out
    browser.logout()
    expired = _login(owner)
    Session.objects.filter(session_key=expired).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    for key in (logged_out, expired):
        answer = _poll(proxy, key)
        assert answer.status_code == 302, key
        assert answer.headers["location"].startswith("/accounts/login/")

    before_password_change = _login(owner)
    owner.set_password("a new password, so every session ends")
    owner.save()
    answer = _poll(proxy, before_password_change)
    assert answer.status_code == 302 and answer.headers["location"].startswith("/accounts/login/")
    # Django flushed it, as it does on any request with a stale hash.
    assert not Session.objects.filter(session_key=before_password_change).exists()

    deactivated = _login(owner)
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert _poll(proxy, deactivated).status_code == 302
    assert lean == [False] * 6


def test_a_removed_member_stops_getting_the_marker(proxy, lean, org, owner):
    _record(org)
    key = _login(owner)
    assert _poll(proxy, key).status_code == 200
    Membership.objects.filter(user=owner, organization=org).delete()
    answer = _poll(proxy, key)
    assert answer.status_code == 302 and "json" not in answer.headers.get("content-type", "")
    assert lean == [True, False]


def test_only_the_members_own_organization(proxy, lean, org, other_org, owner, other_owner):
    ours, theirs = _record(org), _record(other_org)
    assert ours != theirs
    assert _poll(proxy, _login(owner)).json() == {"latest": ours}
    assert _poll(proxy, _login(other_owner)).json() == {"latest": theirs}
    # A session that names an organization the user does not belong to gets
    # the user's own (OrganizationMiddleware's rule), never the one named.
    assert _poll(proxy, _login(owner, organization=other_org)).json() == {"latest": ours}
    # A member of both gets the one chosen in the session, until removed from it.
    MembershipFactory(user=owner, organization=other_org, role=Role.MEMBER)
    both = _login(owner, organization=other_org)
    assert _poll(proxy, both).json() == {"latest": theirs}
    Membership.objects.filter(user=owner, organization=other_org).delete()
    assert _poll(proxy, both).json() == {"latest": ours}
    assert lean == [True] * 5


def test_requests_that_are_not_a_plain_poll_go_to_django(proxy, lean, org, owner):
    key = _login(owner)
    bad_host = _poll(proxy, key, host="evil.example")
    assert bad_host.status_code == 400  # DisallowedHost, answered by Django
    posted = httpx.post(f"{proxy.url}{LIVE}", cookies={"sessionid": key})
    assert posted.status_code == 403  # Django's CSRF check; never the lean path
    assert lean == [False]


def test_a_database_error_hands_the_poll_to_django_and_the_next_reconnects(
    proxy, lean, org, owner, monkeypatch
):
    """A severed kept connection (a PostgreSQL restart) costs one poll a trip
    through Django, which opens its own; the lean path then opens a fresh one."""
    newest = _record(org)
    key = _login(owner)
    assert _poll(proxy, key).json() == {"latest": newest}
    real = live_module.session_member
    failures = iter([OperationalError("server closed the connection unexpectedly")])

    def flaky(session_key):
        for error in failures:
            raise error
        return real(session_key)

    monkeypatch.setattr(live_module, "session_member", flaky)
    assert _poll(proxy, key).json() == {"latest": newest}  # Django's answer
    assert _poll(proxy, key).json() == {"latest": newest}  # lean again
    assert lean == [True, False, True]


def test_an_unknown_middleware_sends_every_poll_to_django(settings):
    """A middleware added to settings later is never skipped silently."""
    assert isinstance(live_module.live_endpoint(), live_module.LiveEndpoint)
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "somewhere.IpAllowListMiddleware"]
    assert live_module.live_endpoint() is None
    settings.MIDDLEWARE = settings.MIDDLEWARE[:-1]
    settings.AISPENDTRACK_LIVE_LEAN = False
    assert live_module.live_endpoint() is None


def _refresh(proxy, session_key: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{proxy.url}{path}",
        cookies={"sessionid": session_key},
        headers={"X-AiSpendTrack-Live": "fragment"},
    )


@pytest.mark.parametrize("path", ["/dashboard/", "/requests/?range=7d"])
def test_a_refresh_gets_the_shared_block_as_django_answers_it(proxy, lean, org, owner, path):
    """A live page's refresh: Django renders (and shares) the first, the lean
    path answers the next from the share, with Django's headers."""
    _record(org)
    key = _login(owner)
    django = _refresh(proxy, key, path)
    ours = _refresh(proxy, key, path)
    assert lean == [False, True]
    assert django.status_code == ours.status_code == 200
    assert ours.text == django.text and ours.text.startswith('<div id="live"')
    _headers_as_djangos(ours, django, (*DJANGO_HEADERS, "content-security-policy"))
    assert "set-cookie" not in ours.headers
    page = httpx.get(f"{proxy.url}{path}", cookies={"sessionid": key})
    assert lean == [False, True]  # the page itself is always Django's
    assert ours.text in page.text


def test_a_refresh_never_crosses_organizations_roles_or_sessions(
    proxy, lean, org, other_org, owner, member, other_owner
):
    _record(org), _record(other_org)
    ours = _refresh(proxy, _login(owner), "/dashboard/")
    theirs = _refresh(proxy, _login(other_owner), "/dashboard/")
    assert lean == [False, False]  # each organization renders its own
    assert ours.text != theirs.text
    assert _refresh(proxy, _login(other_owner), "/dashboard/").text == theirs.text
    assert lean == [False, False, True]
    _refresh(proxy, _login(member), "/dashboard/")
    assert lean[-1] is False  # another role: rendered for it, never the owner's
    logged_out = _login(owner)
    browser = Client()
    browser.cookies["sessionid"] = logged_out
    browser.logout()
    answer = _refresh(proxy, logged_out, "/dashboard/")
    assert answer.status_code == 302 and lean[-1] is False  # Django's login redirect


def test_a_moved_markers_poll_carries_the_shared_block_on_the_lean_path(
    proxy, lean, org, owner, other_owner, other_org
):
    """live.js's poll with its page and marker: once the organization's tabs
    share a render of the page, the lean path's answer carries it."""
    latest = _record(org)
    key = _login(owner)
    query = {"page": "/requests/?range=7d", "since": "older"}
    before = httpx.get(f"{proxy.url}{LIVE}", params=query, cookies={"sessionid": key})
    assert before.json() == {"latest": latest} and lean == [True]
    shared = _refresh(proxy, key, "/requests/?range=7d")  # Django renders and shares
    carried = httpx.get(f"{proxy.url}{LIVE}", params=query, cookies={"sessionid": key})
    assert lean == [True, False, True]
    assert carried.json() == {"latest": latest, "fragment": shared.text}
    _record(other_org)
    theirs = httpx.get(
        f"{proxy.url}{LIVE}", params=query, cookies={"sessionid": _login(other_owner)}
    )
    assert "fragment" not in theirs.json()
