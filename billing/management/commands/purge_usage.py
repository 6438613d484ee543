from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from billing.retention import usage_purge_all_orgs


class Command(BaseCommand):
    help = (
        "Delete raw calls older than each organization's retention (its plan's, or "
        "AISPENDTRACK_RETENTION_DAYS with billing off). Rollups stay."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--org", metavar="SLUG", help="only this organization")

    def handle(self, *args, dry_run: bool, org: str | None, **options):
        if org is not None and not Organization.objects.filter(slug=org).exists():
            raise CommandError(f"No organization with slug {org!r}.")
        results = usage_purge_all_orgs(dry_run=dry_run, slug=org)
        verb = "would delete" if dry_run else "deleted"
        for result in results:
            self.stdout.write(
                f"{result.organization.slug}: {verb} {result.deleted} raw calls before "
                f"{result.cutoff:%Y-%m-%d %H:%M} UTC ({result.retention_days}-day retention)"
            )
        total = sum(result.deleted for result in results)
        self.stdout.write(f"{verb} {total} raw calls in {len(results)} organizations")
