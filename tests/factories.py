"""factory_boy factories for the models tests build most."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from accounts.models import Membership, Organization, Role
from analytics.models import RevenueEntry


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.LazyAttribute(lambda o: o.email)
    password = factory.django.Password("correct-horse-battery-staple")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.MEMBER


class RevenueEntryFactory(factory.django.DjangoModelFactory):
    """Revenue of one customer; tests pass organization, customer_id, amount and dates."""

    class Meta:
        model = RevenueEntry

    source = "api"
    external_id = factory.LazyAttribute(lambda o: o.customer_id)
