"""Shared fixtures: `org`, `other_org`, `owner`, `member`, `api_key`, clients."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import pytest
from django.core.cache import cache

from accounts import selectors as account_selectors
from accounts.models import ApiKey, Role, Scope
from accounts.services import api_key_issue
from config.views import probe_connection_close
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

PASSWORD = "correct-horse-battery-staple"


def pytest_collection_modifyitems(config, items):
    """In CI, tests that need PostgreSQL/Redis must run: fail if they are absent."""
    if os.environ.get("CI") and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise pytest.UsageError("CI must run against PostgreSQL: DATABASE_URL is not postgres://")
    if os.environ.get("CI") and not os.environ.get("REDIS_URL"):
        raise pytest.UsageError("CI must run against Redis: REDIS_URL is not set")


@pytest.fixture(autouse=True)
def _health_probe_connection_closed():
    """/healthz's probe thread keeps its database connection between probes;
    close it after each test, so that no test database is dropped (or
    flushed, or moved by a test) under an open connection of that thread."""
    yield
    probe_connection_close()


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Key lookups are cached per process and in the shared cache; isolate tests."""
    cache.clear()
    account_selectors._local.clear()
    yield
    cache.clear()
    account_selectors._local.clear()


@pytest.fixture
def builtin_providers(db):
    """The providers a data migration seeds. Transactional tests flush the
    database afterwards, so tests that need them ask for them again."""
    from django.apps import apps

    seed = importlib.import_module("pricing.migrations.0002_seed_builtin_providers").seed
    seed(apps, None)


@pytest.fixture
def plans(db):
    """Billing's seeded plans by slug; transactional tests flush them, so they ask again."""
    from billing.models import Plan
    from billing.plans import PLANS

    for values in PLANS:
        Plan.objects.get_or_create(slug=values["slug"], defaults=values)
    return {plan.slug: plan for plan in Plan.objects.all()}


@dataclass
class IssuedKey:
    row: ApiKey
    raw: str


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def owner(org):
    return MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="owner@acme.test")
    ).user


@pytest.fixture
def member(org):
    return MembershipFactory(
        organization=org, role=Role.MEMBER, user=UserFactory(email="member@acme.test")
    ).user


@pytest.fixture
def other_owner(other_org):
    return MembershipFactory(
        organization=other_org, role=Role.OWNER, user=UserFactory(email="owner@globex.test")
    ).user


@pytest.fixture
def api_key(org, owner) -> IssuedKey:
    row, raw = api_key_issue(
        organization=org, name="test key", scopes=[Scope.PROXY, Scope.READ], created_by=owner
    )
    return IssuedKey(row=row, raw=raw)


@pytest.fixture
def other_api_key(other_org, other_owner) -> IssuedKey:
    row, raw = api_key_issue(
        organization=other_org,
        name="globex key",
        scopes=[Scope.PROXY, Scope.READ],
        created_by=other_owner,
    )
    return IssuedKey(row=row, raw=raw)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client
