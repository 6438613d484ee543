"""`python manage.py seed_demo_usage --org SLUG|NAME --days 30 --events N [--seed S] [--fast]`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey, Organization, Scope
from accounts.services import api_key_issue, organization_bootstrap
from analytics.demo import DemoGenerator, demo_usage_write
from analytics.demo_copy import WRITTEN, OrganizationHasEvents, demo_usage_copy


class Command(BaseCommand):
    help = (
        "Write realistic demo usage for an organization through the ledger path "
        "(usage_record_batch), so events and rollups agree. Deterministic per --seed; "
        "re-running adds nothing. Creates the organization (and an owner) if it is missing. "
        "--fast (PostgreSQL only; benchmark databases): the same events COPY'd straight "
        "into the events table, then every rollup built from them in SQL, ~10x faster; "
        "for an organization with no events yet. On SQLite --fast uses the ledger path."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--org", required=True, help="organization slug or name (created if absent)"
        )
        parser.add_argument("--days", type=int, default=30, help="spread over the last N days")
        parser.add_argument("--events", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--batch", type=int, default=5000, help="records per ledger batch")
        parser.add_argument("--customers", type=int, default=None, help="default: events/400")
        parser.add_argument(
            "--owner-email", default=None, help="owner of a new organization (default demo@…)"
        )
        parser.add_argument("--password", default=None, help="password of a new owner")
        parser.add_argument(
            "--fast",
            action="store_true",
            help="PostgreSQL: COPY the events and build the rollups from them in SQL, then "
            "ANALYZE (an organization with no events; into an empty events table the "
            "indexes are built once after the load); SQLite: the ledger path",
        )

    def handle(self, *args, **options):
        if options["days"] < 1 or options["events"] < 0:
            raise CommandError("--days must be ≥ 1 and --events ≥ 0.")
        organization = self._organization(options)
        key_ids = self._keys(organization)
        generator = DemoGenerator(
            organization_id=organization.pk,
            key_ids=key_ids,
            days=options["days"],
            events=options["events"],
            seed=options["seed"],
            end=timezone.now(),
            customers=options["customers"],
        )
        every = max(options["batch"], options["events"] // 20)

        def progress(done: int, new: int, elapsed: float) -> None:
            if done % every < options["batch"]:
                rate = done / elapsed if elapsed else 0
                self.stdout.write(f"  {done:>10,} records, {new:,} new, {rate:,.0f}/s")

        if options["fast"] and connection.vendor == "postgresql":
            new, seconds = self._copy(generator, every=every, progress=progress)
        else:
            if options["fast"]:
                self.stdout.write("--fast is PostgreSQL's; writing through the ledger path.")
            new, seconds = demo_usage_write(
                generator, batch_size=options["batch"], progress=progress
            )
        rate = options["events"] / seconds if seconds else 0
        self.stdout.write(
            self.style.SUCCESS(
                f"{organization.name}: {new:,} new events of {options['events']:,} "
                f"in {seconds:,.1f} s ({rate:,.0f} events/s)"
            )
        )

    def _copy(self, generator: DemoGenerator, *, every: int, progress) -> tuple[int, float]:
        try:
            new, seconds = demo_usage_copy(generator, every=every, progress=progress)
        except OrganizationHasEvents:
            raise CommandError(
                "--fast builds the rollups from the organization's events, so it seeds only "
                "an organization with no events; drop --fast to add to this one."
            ) from None
        started = time.monotonic()
        # Fresh tables have no statistics (and outside a transaction, VACUUM
        # sets the visibility map the index-only scans need).
        analyze = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            cursor.execute(f"{analyze} {', '.join(WRITTEN)}")
        return new, seconds + time.monotonic() - started

    def _organization(self, options) -> Organization:
        wanted = options["org"].strip()
        by_slug = Organization.objects.filter(slug=wanted).first()
        if by_slug is not None:
            return by_slug
        named = list(Organization.objects.filter(name__iexact=wanted).order_by("slug"))
        if len(named) > 1:
            slugs = ", ".join(org.slug for org in named)
            raise CommandError(
                f"{len(named)} organizations are named {wanted!r} (slugs {slugs}); "
                "pass --org with the slug of the one you mean."
            )
        if named:
            return named[0]
        slug = "".join(c if c.isalnum() else "-" for c in options["org"].lower()).strip("-")
        email = options["owner_email"] or f"demo@{slug or 'demo'}.example"
        organization, _, _ = organization_bootstrap(
            org_name=options["org"], email=email, password=options["password"]
        )
        self.stdout.write(f"Created organization {organization.name!r} (owner {email}).")
        return organization

    def _keys(self, organization: Organization) -> dict[str, int]:
        """One demo key per environment, created once."""
        key_ids = {}
        for env in ("production", "staging", "development"):
            name = f"demo {env}"
            key = ApiKey.objects.filter(organization=organization, name=name).first()
            if key is None:
                key, _ = api_key_issue(organization=organization, name=name, scopes=[Scope.PROXY])
            key_ids[env] = key.pk
        return key_ids
