"""`manage.py sync_prices`: flatten genai-prices into the price tables (idempotent)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from pricing.services import prices_sync


class Command(BaseCommand):
    help = (
        "Add new models and effective-dated prices from the genai-prices package; "
        "never overwrites prices staff created or edited. Safe to run repeatedly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--online",
            action="store_true",
            default=None,
            help="Try genai-prices' published update first (default: "
            "AISPENDTRACK_PRICES_ONLINE_UPDATE); falls back to the bundled data.",
        )
        parser.add_argument(
            "--offline", dest="online", action="store_false", help="Use the bundled data only."
        )

    def handle(self, *args, online=None, verbosity=1, **options):
        if online is None:
            online = settings.AISPENDTRACK_PRICES_ONLINE_UPDATE
        started = time.monotonic()
        report = prices_sync(online=online)
        elapsed = time.monotonic() - started
        if verbosity >= 2:
            for title, names in (
                ("providers added", report.providers_added),
                ("added", report.added),
                ("changed", report.changed),
                ("skipped, edited by staff", report.skipped_admin),
                ("skipped, not priced per token", report.skipped_unpriced),
            ):
                for name in names:
                    self.stdout.write(f"  {title}: {name}")
        elif report.changed or report.skipped_admin:
            for name in report.changed:
                self.stdout.write(f"  changed: {name}")
            for name in report.skipped_admin:
                self.stdout.write(f"  skipped, edited by staff: {name}")
        self.stdout.write(self.style.SUCCESS(f"{report.summary()} ({elapsed:.1f} s)"))
