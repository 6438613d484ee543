"""`python manage.py rollups_rebuild [--org NAME]`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from analytics.fold import daily_rollups_rebuild, daily_rollups_rebuild_pending


class Command(BaseCommand):
    help = (
        "Rebuild the daily rollups (DailyCoarseRollup, CustomerRollup) from the hourly "
        "ones, in each organization's time zone: every organization whose daily tables "
        "are keyed in another zone (after an upgrade or a zone change), or --org NAME."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", help="rebuild this organization even if it is up to date")

    def handle(self, *args, **options):
        started = time.perf_counter()
        if options["org"]:
            organization = Organization.objects.filter(name=options["org"]).first()
            if organization is None:
                raise CommandError(f"No organization named {options['org']!r}.")
            rows = daily_rollups_rebuild(organization.pk)
            self.stdout.write(
                f"{organization.name}: {rows:,} hourly rows re-grouped "
                f"in {time.perf_counter() - started:.1f} s"
            )
            return
        done = daily_rollups_rebuild_pending()
        if done:
            self.stdout.write(
                f"Daily rollups rebuilt for {len(done)} organization(s) "
                f"in {time.perf_counter() - started:.1f} s"
            )
