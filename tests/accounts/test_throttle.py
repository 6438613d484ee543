"""Login throttles: /admin/login/ like the user login; failed attempts counted
per account + client IP; X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from config.clientip import client_ip
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery-staple"
ATTACKER, NEIGHBOUR, OWNER_HOME = "203.0.113.7", "203.0.113.7", "198.51.100.20"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def admin_login(client, password, ip, username="root", **extra):
    client.logout()
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
        **extra,
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_admin_login_is_throttled_per_account_and_ip(client, admin_user):
    for _ in range(5):
        assert admin_login(client, "wrong", ATTACKER).status_code == 200  # the form again
    # The sixth try, even with the right password, is refused from that address.
    assert admin_login(client, PASSWORD, ATTACKER).status_code == 429
    assert not logged_in(client)
    # The real admin elsewhere is not locked out by the attacker.
    response = admin_login(client, PASSWORD, OWNER_HOME)
    assert response.status_code == 302 and logged_in(client)


@pytest.mark.django_db
def test_admin_success_does_not_count_as_a_failure(client, admin_user):
    for _ in range(8):
        assert admin_login(client, PASSWORD, OWNER_HOME).status_code == 302


def user_login(client, email, password, ip, **extra):
    client.logout()
    return client.post(
        "/accounts/login/", {"login": email, "password": password}, REMOTE_ADDR=ip, **extra
    )


@pytest.mark.django_db
def test_user_login_failures_count_per_account_and_ip(client):
    victim = UserFactory(email="victim@acme.test")
    victim.set_password(PASSWORD)
    victim.save()
    colleague = UserFactory(email="colleague@acme.test")
    colleague.set_password(PASSWORD)
    colleague.save()

    for _ in range(5):
        user_login(client, "victim@acme.test", "wrong", ATTACKER)
    locked = user_login(client, "victim@acme.test", PASSWORD, ATTACKER)
    assert not logged_in(client)
    assert "Too many failed login attempts" in locked.content.decode()

    # Behind the same NAT, another account logs in fine...
    user_login(client, "colleague@acme.test", PASSWORD, NEIGHBOUR)
    assert logged_in(client)
    # ...and the victim, from home, too.
    user_login(client, "victim@acme.test", PASSWORD, OWNER_HOME)
    assert logged_in(client)


@pytest.mark.django_db
def test_forged_x_forwarded_for_does_not_reset_the_count(client, admin_user):
    for n in range(5):
        admin_login(client, "wrong", ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = admin_login(client, PASSWORD, ATTACKER, HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert response.status_code == 429


@pytest.mark.django_db
@override_settings(AISPENDTRACK_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_each_client_has_its_own_count(client, admin_user):
    for _ in range(5):
        admin_login(client, "wrong", "10.0.0.2", HTTP_X_FORWARDED_FOR=ATTACKER)
    assert (
        admin_login(client, PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR=ATTACKER).status_code == 429
    )
    response = admin_login(client, PASSWORD, "10.0.0.3", HTTP_X_FORWARDED_FOR=OWNER_HOME)
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ([], "203.0.113.7", "1.2.3.4", "203.0.113.7"),  # nobody trusted: header ignored
        (["10.0.0.1"], "203.0.113.7", "1.2.3.4", "203.0.113.7"),  # sender not trusted
        (["10.0.0.1"], "10.0.0.1", "1.2.3.4", "1.2.3.4"),
        (
            ["10.0.0.0/8"],
            "10.0.0.1",
            "6.6.6.6, 1.2.3.4, 10.0.0.9",
            "1.2.3.4",
        ),  # rightmost untrusted
        (["10.0.0.0/8"], "10.0.0.1", "garbage, 1.2.3.4", "1.2.3.4"),
        (["10.0.0.0/8"], "10.0.0.1", "1.2.3.4, garbage", "10.0.0.1"),
        (["10.0.0.0/8"], "10.0.0.1", "", "10.0.0.1"),
        (["10.0.0.0/8"], "10.0.0.1", "1.2.3.4:5678", "1.2.3.4"),
        (["::1"], "::1", "[2001:db8::5]:443", "2001:db8::5"),
    ],
)
def test_client_ip(trusted, remote, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(AISPENDTRACK_TRUSTED_PROXIES=trusted):
        assert client_ip(request) == expected
