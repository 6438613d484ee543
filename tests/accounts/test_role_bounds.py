"""Roles never escalate, whichever door is used: the invite form offers only
the roles its user may grant, and staff editing memberships in Django admin
cannot leave an organization without an owner."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import Invitation, Membership, Organization, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _options(html: str, select_name: str) -> list[set[str]]:
    """The option values of every <select name=…> on the page, in page order
    (the members table's role selects, then the invite form's)."""
    selects = re.findall(rf'<select name="{select_name}"[^>]*>(.*?)</select>', html, re.S)
    return [set(re.findall(r'<option value="([^"]*)"', body)) for body in selects]


@pytest.fixture
def admin_client(client, org):
    client.force_login(MembershipFactory(organization=org, role=Role.ADMIN).user)
    return client


def test_an_admin_is_offered_no_owner_role(admin_client, owner, member):
    html = admin_client.get(reverse("team")).content.decode()

    *member_rows, invite = _options(html, "role")
    assert invite == {Role.MEMBER, Role.ADMIN}
    # A role select only on rows the admin may change: the member's, not the owner's.
    assert member_rows == [{Role.MEMBER, Role.ADMIN}]
    assert f"Role of {owner.email}" not in html
    assert f"Role of {member.email}" in html


def test_an_owner_is_offered_every_role(owner_client, member):
    html = owner_client.get(reverse("team")).content.decode()

    *member_rows, invite = _options(html, "role")
    assert invite == {Role.MEMBER, Role.ADMIN, Role.OWNER}
    assert member_rows == [{Role.MEMBER, Role.ADMIN, Role.OWNER}]


def test_an_admin_posting_owner_gets_a_form_error_and_no_invitation(admin_client):
    response = admin_client.post(reverse("team"), {"email": "x@y.test", "role": Role.OWNER})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Invitation.objects.exists()


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(email="staff@example.test", is_staff=True, is_superuser=True))
    return client


def _change(staff_client, membership: Membership, **fields):
    data = {
        "user": membership.user_id,
        "organization": membership.organization_id,
        "role": membership.role,
        **fields,
    }
    return staff_client.post(
        reverse("admin:accounts_membership_change", args=[membership.pk]), data
    )


def test_staff_cannot_demote_the_last_owner(staff_client, owner, org):
    last = Membership.objects.get(user=owner, organization=org)

    response = _change(staff_client, last, role=Role.MEMBER)

    assert response.status_code == 200  # the form again, with the error
    assert "at least one owner" in response.content.decode()
    last.refresh_from_db()
    assert last.role == Role.OWNER


def test_staff_cannot_move_the_last_owner_to_another_organization(staff_client, owner, org):
    last = Membership.objects.get(user=owner, organization=org)
    elsewhere = Organization.objects.create(name="Elsewhere", slug="elsewhere")

    _change(staff_client, last, organization=elsewhere.pk)

    last.refresh_from_db()
    assert (last.organization_id, last.role) == (org.pk, Role.OWNER)


def test_staff_may_demote_an_owner_who_is_not_the_last(staff_client, owner, org):
    MembershipFactory(organization=org, role=Role.OWNER)
    first = Membership.objects.get(user=owner, organization=org)

    response = _change(staff_client, first, role=Role.MEMBER)

    assert response.status_code == 302
    first.refresh_from_db()
    assert first.role == Role.MEMBER


def test_staff_cannot_delete_the_last_owner(staff_client, owner, org):
    last = Membership.objects.get(user=owner, organization=org)
    url = reverse("admin:accounts_membership_delete", args=[last.pk])

    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert Membership.objects.filter(pk=last.pk).exists()


def test_the_bulk_delete_refuses_to_remove_every_owner(staff_client, owner, member, org):
    MembershipFactory(organization=org, role=Role.OWNER)
    owners = list(Membership.objects.filter(organization=org, role=Role.OWNER))
    url = reverse("admin:accounts_membership_changelist")

    staff_client.post(
        url,
        {"action": "delete_selected", "_selected_action": [m.pk for m in owners], "post": "yes"},
    )
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 2

    # One of the two may go.
    staff_client.post(
        url, {"action": "delete_selected", "_selected_action": [owners[0].pk], "post": "yes"}
    )
    assert list(Membership.objects.filter(organization=org, role=Role.OWNER)) == owners[1:]


def _inline_post(org: Organization, roles: dict[int, str]) -> dict[str, object]:
    memberships = list(Membership.objects.filter(organization=org).order_by("pk"))
    data: dict[str, object] = {
        "name": org.name,
        "slug": org.slug,
        "timezone": org.timezone,
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
    }
    for index, membership in enumerate(memberships):
        prefix = f"memberships-{index}-"
        data[prefix + "id"] = membership.pk
        data[prefix + "organization"] = org.pk
        data[prefix + "user"] = membership.user_id
        data[prefix + "role"] = roles.get(membership.pk, membership.role)
    return data


def test_the_organization_page_cannot_demote_every_owner(staff_client, owner, member, org):
    last = Membership.objects.get(user=owner, organization=org)
    url = reverse("admin:accounts_organization_change", args=[org.pk])

    response = staff_client.post(url, _inline_post(org, {last.pk: Role.MEMBER}))

    assert "at least one owner" in response.content.decode()
    last.refresh_from_db()
    assert last.role == Role.OWNER


def test_the_organization_page_can_hand_ownership_over(staff_client, owner, member, org):
    last = Membership.objects.get(user=owner, organization=org)
    heir = Membership.objects.get(user=member, organization=org)
    url = reverse("admin:accounts_organization_change", args=[org.pk])

    response = staff_client.post(
        url, _inline_post(org, {last.pk: Role.MEMBER, heir.pk: Role.OWNER})
    )

    assert response.status_code == 302
    heir.refresh_from_db()
    last.refresh_from_db()
    assert (heir.role, last.role) == (Role.OWNER, Role.MEMBER)
