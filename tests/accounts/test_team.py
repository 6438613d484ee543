"""Team management: only owners and admins invite, change roles, remove."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Invitation, Membership, Role
from tests.factories import MembershipFactory


@pytest.mark.django_db
def test_member_cannot_invite(member_client):
    member_client.post(reverse("team"), {"email": "x@y.test", "role": Role.MEMBER})
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_member_cannot_change_roles_or_remove(member_client, owner, org):
    target = Membership.objects.get(user=owner)
    assert (
        member_client.post(
            reverse("member_role", args=[target.pk]), {"role": Role.MEMBER}
        ).status_code
        == 403
    )
    assert member_client.post(reverse("member_remove", args=[target.pk])).status_code == 403
    target.refresh_from_db()
    assert target.role == Role.OWNER


@pytest.mark.django_db
def test_owner_changes_a_role_and_removes_a_member(owner_client, member, org):
    target = Membership.objects.get(user=member)
    owner_client.post(reverse("member_role", args=[target.pk]), {"role": Role.ADMIN})
    target.refresh_from_db()
    assert target.role == Role.ADMIN

    owner_client.post(reverse("member_remove", args=[target.pk]))
    assert not Membership.objects.filter(pk=target.pk).exists()


@pytest.mark.django_db
def test_admin_cannot_demote_an_owner(client, owner, org):
    admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    client.force_login(admin)
    target = Membership.objects.get(user=owner)

    client.post(reverse("member_role", args=[target.pk]), {"role": Role.MEMBER})

    target.refresh_from_db()
    assert target.role == Role.OWNER


@pytest.mark.django_db
def test_last_owner_cannot_be_demoted(owner_client, owner, org):
    MembershipFactory(organization=org, role=Role.OWNER)  # a co-owner to act on
    me = Membership.objects.get(user=owner)
    other = Membership.objects.exclude(pk=me.pk).get(role=Role.OWNER)
    owner_client.post(reverse("member_role", args=[other.pk]), {"role": Role.MEMBER})
    other.refresh_from_db()
    assert other.role == Role.MEMBER  # fine: I am still an owner

    # Now I am the only owner; a co-admin cannot make the org ownerless via me.
    from accounts.services import AccountError, membership_role_change

    with pytest.raises(AccountError):
        membership_role_change(organization=org, membership=me, role=Role.MEMBER, by=me)


@pytest.mark.django_db
def test_other_org_members_are_not_reachable(client, other_owner, member, org):
    client.force_login(other_owner)
    target = Membership.objects.get(user=member)

    assert (
        client.post(reverse("member_role", args=[target.pk]), {"role": "admin"}).status_code == 404
    )
    assert client.post(reverse("member_remove", args=[target.pk])).status_code == 404
    assert "member@acme.test" not in client.get(reverse("team")).content.decode()


@pytest.mark.django_db
def test_invitation_revoke_is_org_scoped(owner_client, client, other_owner):
    owner_client.post(reverse("team"), {"email": "inv@acme.test", "role": Role.MEMBER})
    invitation = Invitation.objects.get()
    client.force_login(other_owner)
    assert client.post(reverse("invitation_revoke", args=[invitation.pk])).status_code == 404

    owner_client.force_login(
        Membership.objects.get(role=Role.OWNER, organization=invitation.organization).user
    )
    owner_client.post(reverse("invitation_revoke", args=[invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


@pytest.mark.django_db
def test_inviting_an_existing_member_says_so(owner_client, member):
    response = owner_client.post(reverse("team"), {"email": "member@acme.test", "role": "member"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()


@pytest.mark.django_db
def test_org_switch_only_to_own_orgs(client, owner, org, other_org):
    client.force_login(owner)
    client.post(reverse("org_switch"), {"organization_id": other_org.pk})
    assert client.get(reverse("org_settings")).context["organization"] == org


@pytest.mark.django_db
def test_org_settings_updates_name_and_timezone(owner_client, org):
    owner_client.post(
        reverse("org_settings"), {"name": "Acme Corp", "timezone": "America/New_York"}
    )
    org.refresh_from_db()
    assert (org.name, org.timezone) == ("Acme Corp", "America/New_York")


@pytest.mark.django_db
def test_member_cannot_change_org_settings(member_client, org):
    member_client.post(reverse("org_settings"), {"name": "Hijacked", "timezone": "UTC"})
    org.refresh_from_db()
    assert org.name == "Acme"
