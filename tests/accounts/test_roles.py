"""Roles never escalate: every role × every role-changing path.

The expectations are written out by hand (the tables below), not derived from
the rank rule in accounts.services, so a wrong rule cannot agree with itself.
Paths: invite then accept, change a role, accept after the inviter lost
their role, sign up through an invitation, remove a member.
"""

from __future__ import annotations

import itertools
import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Invitation, Membership, Role
from tests.factories import MembershipFactory, UserFactory

ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER)

# (inviter's role, role offered) that may be granted.
MAY_INVITE = {
    (Role.OWNER, Role.OWNER),
    (Role.OWNER, Role.ADMIN),
    (Role.OWNER, Role.MEMBER),
    (Role.ADMIN, Role.ADMIN),
    (Role.ADMIN, Role.MEMBER),
}
# (actor's role, target's current role, new role) that may be applied to
# another person (the organization has a second owner throughout).
MAY_CHANGE = {
    *((Role.OWNER, current, new) for current in ROLES for new in ROLES),
    (Role.ADMIN, Role.ADMIN, Role.ADMIN),
    (Role.ADMIN, Role.ADMIN, Role.MEMBER),
    (Role.ADMIN, Role.MEMBER, Role.ADMIN),
    (Role.ADMIN, Role.MEMBER, Role.MEMBER),
}
# (actor's role, target's role) that may remove another person.
MAY_REMOVE = {
    (Role.OWNER, Role.OWNER),
    (Role.OWNER, Role.ADMIN),
    (Role.OWNER, Role.MEMBER),
    (Role.ADMIN, Role.ADMIN),
    (Role.ADMIN, Role.MEMBER),
}


def _person(org, role, email):
    return MembershipFactory(organization=org, role=role, user=UserFactory(email=email))


@pytest.fixture
def team(org, owner):
    """The org with one of each role besides the fixture owner (a second owner)."""
    return {role: _person(org, role, f"{role}-actor@acme.test") for role in ROLES}


def _invite(client, actor, email, role):
    client.force_login(actor.user)
    mail.outbox.clear()
    client.post(reverse("team"), {"email": email, "role": role})
    found = re.search(r"https?://\S+(/invite/\S+/)", mail.outbox[-1].body) if mail.outbox else None
    return found.group(1) if found else None


@pytest.mark.django_db
@pytest.mark.parametrize(("actor_role", "offered"), list(itertools.product(ROLES, ROLES)))
def test_invite_then_accept(client, team, org, actor_role, offered):
    link = _invite(client, team[actor_role], "new@acme.test", offered)
    invitee = UserFactory(email="new@acme.test")
    if link is not None:
        client.force_login(invitee)
        client.post(link)

    joined = Membership.objects.filter(organization=org, user=invitee).first()
    if (actor_role, offered) in MAY_INVITE:
        assert joined is not None and joined.role == offered
    else:
        assert link is None and not Invitation.objects.exists()
        assert joined is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actor_role", "current", "new"), list(itertools.product(ROLES, ROLES, ROLES))
)
def test_change_another_members_role(client, team, org, actor_role, current, new):
    target = _person(org, current, "target@acme.test")
    client.force_login(team[actor_role].user)

    client.post(reverse("member_role", args=[target.pk]), {"role": new})

    target.refresh_from_db()
    expected = new if (actor_role, current, new) in MAY_CHANGE else current
    assert target.role == expected
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() >= 1


@pytest.mark.django_db
@pytest.mark.parametrize(("actor_role", "new"), list(itertools.product(ROLES, ROLES)))
def test_change_own_role(client, team, org, actor_role, new):
    """Nobody promotes themselves; stepping down is fine while another owner remains."""
    me = team[actor_role]
    client.force_login(me.user)

    client.post(reverse("member_role", args=[me.pk]), {"role": new})

    me.refresh_from_db()
    may = {
        (Role.OWNER, Role.OWNER),
        (Role.OWNER, Role.ADMIN),
        (Role.OWNER, Role.MEMBER),
        (Role.ADMIN, Role.ADMIN),
        (Role.ADMIN, Role.MEMBER),
    }
    assert me.role == (new if (actor_role, new) in may else actor_role)


@pytest.mark.django_db
@pytest.mark.parametrize("new", [Role.ADMIN, Role.MEMBER])
def test_the_last_owner_cannot_step_down(client, org, owner, new):
    me = Membership.objects.get(user=owner)
    client.force_login(owner)

    client.post(reverse("member_role", args=[me.pk]), {"role": new})
    client.post(reverse("member_remove", args=[me.pk]))

    me.refresh_from_db()
    assert me.role == Role.OWNER


@pytest.mark.django_db
@pytest.mark.parametrize(("actor_role", "target_role"), list(itertools.product(ROLES, ROLES)))
def test_remove_a_member(client, team, org, actor_role, target_role):
    target = _person(org, target_role, "target@acme.test")
    client.force_login(team[actor_role].user)

    client.post(reverse("member_remove", args=[target.pk]))

    removed = not Membership.objects.filter(pk=target.pk).exists()
    assert removed == ((actor_role, target_role) in MAY_REMOVE)


# (inviter's role when inviting, role offered, inviter's role at acceptance);
# None: the inviter left the organization.
AFTER_DEMOTION = [
    (first, offered, later)
    for first, offered in sorted(MAY_INVITE)
    for later in (*ROLES, None)
    if later != first
]
STILL_VALID = {
    (Role.OWNER, Role.ADMIN, Role.ADMIN),
    (Role.OWNER, Role.MEMBER, Role.ADMIN),
    (Role.ADMIN, Role.ADMIN, Role.OWNER),
    (Role.ADMIN, Role.MEMBER, Role.OWNER),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("first", "offered", "later"), AFTER_DEMOTION)
@pytest.mark.parametrize("how", ["accept", "signup"])
def test_acceptance_rechecks_the_inviter(client, team, org, first, offered, later, how):
    inviter = team[first]
    link = _invite(client, inviter, "new@acme.test", offered)
    assert link is not None
    if later is None:
        inviter.delete()
    else:
        Membership.objects.filter(pk=inviter.pk).update(role=later)
    client.logout()

    if how == "accept":
        invitee = UserFactory(email="new@acme.test")
        client.force_login(invitee)
        client.post(link)
    else:
        client.get(link)  # remembers the invitation in the session
        client.post(
            reverse("account_signup"),
            {
                "email": "new@acme.test",
                "password1": "a long passphrase 42",
                "password2": "a long passphrase 42",
                "organization_name": "",
            },
        )

    joined = Membership.objects.filter(organization=org, user__email="new@acme.test").first()
    if (first, offered, later) in STILL_VALID:
        assert joined is not None and joined.role == offered
    else:
        assert joined is None
