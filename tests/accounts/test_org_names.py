"""Organization names are unique per owner; where two of a person's organizations
share a name anyway (one joined by invitation), the switcher shows their slugs."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Organization, Role
from accounts.services import AccountError, organization_create
from tests.factories import MembershipFactory, OrganizationFactory


def test_an_owner_cannot_create_two_organizations_of_one_name(owner, org):
    with pytest.raises(AccountError, match="already own an organization named 'acme'"):
        organization_create(name="acme", owner=owner)  # "Acme" exists, case aside
    assert organization_create(name="Acme Labs", owner=owner).name == "Acme Labs"


def test_the_new_organization_page_says_so_instead_of_failing(owner_client, org):
    response = owner_client.post("/organizations/new/", {"name": "Acme"})
    assert response.status_code == 400
    assert "already own an organization named" in response.content.decode()
    assert Organization.objects.filter(name="Acme").count() == 1


def test_bootstrap_refuses_a_second_org_of_the_same_name_for_one_owner(db):
    call_command("bootstrap_org", "--org", "Twice", "--email", "t@x.test", stdout=None)
    with pytest.raises(CommandError, match="already own"):
        call_command("bootstrap_org", "--org", "Twice", "--email", "t@x.test")


def test_switcher_shows_slugs_where_names_collide(owner_client, owner, org):
    twin = OrganizationFactory(name="Acme", slug="acme-2")
    MembershipFactory(organization=twin, user=owner, role=Role.MEMBER)  # joined by invitation
    OrganizationFactory(name="Globex", slug="globex")
    page = owner_client.get("/settings/organization/").content.decode()
    assert ">Acme (acme)</option>" in page and ">Acme (acme-2)</option>" in page
