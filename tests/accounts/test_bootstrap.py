"""`bootstrap_org`: the output contract scripts rely on."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.models import Membership, Role
from accounts.selectors import api_key_authenticate


def bootstrap(*args: str) -> str:
    out = io.StringIO()
    call_command("bootstrap_org", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_prints_a_working_proxy_and_read_key_alone_on_the_last_line():
    output = bootstrap("--org", "Acme Labs", "--email", "ops@acme.test", "--password", "pw-123456!")

    last_line = output.rstrip("\n").splitlines()[-1]
    assert last_line == last_line.strip() and " " not in last_line
    identity = api_key_authenticate(last_line)
    assert identity is not None
    assert identity.scopes == {"proxy", "read"}

    user = get_user_model().objects.get(email="ops@acme.test")
    assert user.check_password("pw-123456!")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER and membership.organization.name == "Acme Labs"
    assert identity.organization_id == membership.organization_id


@pytest.mark.django_db
def test_reuses_an_existing_user():
    bootstrap("--org", "First", "--email", "same@acme.test")
    bootstrap("--org", "Second", "--email", "same@acme.test")

    assert get_user_model().objects.filter(email="same@acme.test").count() == 1
    orgs = Membership.objects.filter(user__email="same@acme.test").values_list(
        "organization__name", flat=True
    )
    assert sorted(orgs) == ["First", "Second"]
