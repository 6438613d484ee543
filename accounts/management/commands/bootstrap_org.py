"""`bootstrap_org --org NAME --email EMAIL [--password P]`.

Prints the raw key alone on the last line of stdout: scripts read it with
`tail -n 1`. Keep the name and the output contract.
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Scope
from accounts.services import AccountError, organization_bootstrap


class Command(BaseCommand):
    help = "Create a user (if absent), an organization, an owner membership and a proxy+read key."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization name")
        parser.add_argument("--email", required=True, help="owner's email")
        parser.add_argument("--password", default=None, help="owner's password (optional)")
        parser.add_argument(
            "--scopes",
            default="proxy,read",
            help="the key's scopes, comma-separated: proxy, read, manage (default proxy,read)",
        )

    def handle(self, *args, org, email, password, scopes, **options):
        chosen = [part.strip() for part in scopes.split(",") if part.strip()]
        unknown = sorted(set(chosen) - set(Scope.values))
        if unknown or not chosen:
            raise CommandError(
                f"--scopes: unknown scope(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(Scope.values)}"
            )
        try:
            organization, key, raw = organization_bootstrap(
                org_name=org, email=email, password=password, scopes=chosen
            )
        except AccountError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"organization: {organization.name} (slug {organization.slug})")
        self.stdout.write(f"owner: {email}")
        self.stdout.write(f"api key ({', '.join(key.scopes)}), shown once:")
        self.stdout.write(raw)
