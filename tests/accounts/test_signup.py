"""Sign-up, log in, password reset and invitations, through the real pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from tests.conftest import PASSWORD

User = get_user_model()


def signup(client, *, email, org="Initech", password=PASSWORD, follow=False):
    return client.post(
        reverse("account_signup"),
        {"organization_name": org, "email": email, "password1": password, "password2": password},
        follow=follow,
    )


@pytest.mark.django_db
def test_signup_creates_user_org_and_owner_membership(client):
    response = signup(client, email="Founder@Initech.test")

    assert response.status_code == 302
    user = User.objects.get(email__iexact="founder@initech.test")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.organization.name == "Initech"
    assert membership.organization.slug == "initech"
    # Logged in straight away (verification is optional outside production).
    assert client.get(reverse("api_keys")).status_code == 200


@pytest.mark.django_db
def test_signup_requires_an_organization_name(client):
    response = signup(client, email="a@b.test", org="")
    assert response.status_code == 200
    assert "organization_name" in response.context["form"].errors
    assert not User.objects.filter(email="a@b.test").exists()


@pytest.mark.django_db
def test_two_orgs_with_one_name_get_distinct_slugs(client):
    signup(client, email="one@x.test", org="Same Name")
    client.logout()
    signup(client, email="two@x.test", org="Same Name")
    slugs = sorted(Membership.objects.values_list("organization__slug", flat=True))
    assert slugs == ["same-name", "same-name-2"]


@pytest.mark.django_db
def test_mandatory_verification_sends_a_confirmation_email(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    response = signup(client, email="careful@initech.test", follow=True)

    assert response.status_code == 200
    assert len(mail.outbox) == 1
    assert "careful@initech.test" in mail.outbox[0].to
    # Not logged in until the address is confirmed.
    assert client.get(reverse("api_keys")).status_code == 302


@pytest.mark.django_db
def test_login_and_logout(client, owner):
    response = client.post(
        reverse("account_login"), {"login": "owner@acme.test", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert client.get(reverse("team")).status_code == 200

    client.post(reverse("account_logout"))
    assert client.get(reverse("team")).status_code == 302


@pytest.mark.django_db
def test_wrong_password_is_refused(client, owner):
    response = client.post(reverse("account_login"), {"login": "owner@acme.test", "password": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors


@pytest.mark.django_db
def test_password_reset_sends_a_link_that_sets_a_new_password(client, owner):
    client.post(reverse("account_reset_password"), {"email": "owner@acme.test"})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+", mail.outbox[0].body).group(0)

    page = client.get(link, follow=True)
    form_url = page.redirect_chain[-1][0] if page.redirect_chain else link
    client.post(form_url, {"password1": "a-brand-new-pass-42", "password2": "a-brand-new-pass-42"})

    owner.refresh_from_db()
    assert owner.check_password("a-brand-new-pass-42")


def _invite(client, email, role=Role.MEMBER):
    client.post(reverse("team"), {"email": email, "role": role})
    link = re.search(r"https?://\S+/invite/\S+/", mail.outbox[-1].body).group(0)
    return link.split("testserver", 1)[1]


@pytest.mark.django_db
def test_invited_person_signs_up_and_joins_with_the_invited_role(client, owner, org):
    client.force_login(owner)
    path = _invite(client, "newbie@acme.test", Role.ADMIN)
    client.logout()

    page = client.get(path)
    assert page.status_code == 200 and b"Join Acme" in page.content
    signup(client, email="newbie@acme.test", org="")

    newbie = User.objects.get(email="newbie@acme.test")
    membership = Membership.objects.get(user=newbie)
    assert membership.organization == org
    assert membership.role == Role.ADMIN
    # Single use: the link is dead now.
    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_existing_user_accepts_an_invitation(client, owner, org, other_owner):
    client.force_login(owner)
    path = _invite(client, "owner@globex.test")
    client.force_login(other_owner)

    response = client.post(path)

    assert response.status_code == 302
    assert Membership.objects.filter(user=other_owner, organization=org).exists()
    # Their own organization is untouched.
    assert Membership.objects.filter(user=other_owner).count() == 2


@pytest.mark.django_db
def test_invitation_for_someone_else_is_refused(client, owner, org, other_owner):
    client.force_login(owner)
    path = _invite(client, "somebody@else.test")
    client.force_login(other_owner)

    client.post(path)

    assert not Membership.objects.filter(user=other_owner, organization=org).exists()


@pytest.mark.django_db
def test_expired_invitation_is_refused(client, owner, org):
    client.force_login(owner)
    path = _invite(client, "late@acme.test")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    client.logout()

    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_invitation_link_stores_only_a_hash(client, owner):
    client.force_login(owner)
    path = _invite(client, "hash@acme.test")
    token = path.rstrip("/").rsplit("/", 1)[1]
    invitation = Invitation.objects.get(email="hash@acme.test")
    assert token not in invitation.token_hash
