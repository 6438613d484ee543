from accounts.selectors import organizations_for_user


def organization(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "organization": getattr(request, "organization", None),
        "membership": getattr(request, "membership", None),
        "user_organizations": organizations_for_user(user=user),
    }
