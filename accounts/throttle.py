"""`/admin/login/` throttled like the user login (issue 9).

Django's admin login calls `authenticate` directly, past allauth's limits.
This wrapper applies the same allauth rate limits (ACCOUNT_RATE_LIMITS):
`login` per client IP on every POST, and `login_failed` per account + IP
(accounts.adapter.login_attempts_key), rolled back when the login succeeds,
as allauth does.
"""

from __future__ import annotations

from functools import wraps

from allauth.core.internal import ratelimit

from accounts.adapter import login_attempts_key

APP = "allauth.account"


def throttled_admin_login(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        if not ratelimit.consume(request, app=APP, action="login"):
            return ratelimit.respond_429(request)
        key = login_attempts_key(request, request.POST.get("username", ""))
        usage = ratelimit.consume(request, app=APP, action="login_failed", key=key)
        if not usage:
            return ratelimit.respond_429(request)
        response = view(request, *args, **kwargs)
        if request.user.is_authenticated and request.user.is_staff:
            usage.rollback()  # a success does not count against the account
        return response

    return wrapper
