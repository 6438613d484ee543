from allauth.account.adapter import DefaultAccountAdapter

from config.clientip import client_ip


def login_attempts_key(request, login: str) -> str:
    """Failed logins are counted per account *and* client IP (issue 9): a
    stranger's wrong passwords neither lock the account for its owner
    elsewhere nor everyone else behind the stranger's NAT."""
    return f"{login.strip().lower()}@{client_ip(request)}"


class AccountAdapter(DefaultAccountAdapter):
    """Usernames are not shown anywhere; allauth derives one from the email."""

    def populate_username(self, request, user):
        from allauth.account.utils import user_email, user_username

        email = user_email(user) or ""
        if not user_username(user):
            user_username(user, self.generate_unique_username([email, "user"]))

    def get_client_ip(self, request) -> str:
        return client_ip(request) or "0.0.0.0"  # noqa: S104 (a throttle bucket, not a bind)

    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        # allauth's own key is the login alone (one bucket per account everywhere).
        login = credentials.get("email", credentials.get("username", ""))
        return login_attempts_key(request, login)
