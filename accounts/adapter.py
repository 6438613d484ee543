from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    """Usernames are not shown anywhere; allauth derives one from the email."""

    def populate_username(self, request, user):
        from allauth.account.utils import user_email, user_username

        email = user_email(user) or ""
        if not user_username(user):
            user_username(user, self.generate_unique_username([email, "user"]))
