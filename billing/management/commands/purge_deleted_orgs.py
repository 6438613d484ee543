from django.core.management.base import BaseCommand

from billing.gdpr import organizations_purge_deleted_all_orgs


class Command(BaseCommand):
    help = (
        "Hard-delete organizations deleted 30 days ago (every row of them); "
        "--now purges every deleted organization at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="do not wait for the 30 days")

    def handle(self, *args, now: bool, **options):
        purged = organizations_purge_deleted_all_orgs(now=now)
        for slug in purged:
            self.stdout.write(f"purged {slug}")
        self.stdout.write(f"purged {len(purged)} deleted organizations")
