"""`manage.py reprice [--model M] [--since DATE]`: re-price ledger events and their rollups."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from analytics.repricing import parse_since, usage_reprice


class Command(BaseCommand):
    help = (
        "Re-price events recorded without a price (priced=false) now that one exists, "
        "and fix their hourly rollups. --all also re-prices priced events (after a "
        "price was corrected)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="Only this model (as asked or as answered).")
        parser.add_argument("--since", help="Only events at or after this UTC date/time (ISO).")
        parser.add_argument("--org", help="Only this organization (slug).")
        parser.add_argument(
            "--all",
            action="store_true",
            dest="include_priced",
            help="Also re-price events that already have a price.",
        )

    def handle(self, *args, model=None, since=None, org=None, include_priced=False, **options):
        try:
            since_at = parse_since(since) if since else None
        except ValueError as exc:
            raise CommandError(f"--since {since!r}: use a date like 2025-06-01 ({exc})") from exc
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization with slug {org!r}.")
        changed = usage_reprice(
            model=model,
            since=since_at,
            organization=organization,
            include_priced=include_priced,
        )
        self.stdout.write(self.style.SUCCESS(f"Re-priced {changed} events."))
