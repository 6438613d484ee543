from collections import Counter

from accounts.selectors import organizations_for_user


def organization(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    organizations = list(organizations_for_user(user=user))
    names = Counter(org.name.casefold() for org in organizations)
    for org in organizations:  # two orgs of the same name (joined by invitation) show slugs
        label = f"{org.name} ({org.slug})" if names[org.name.casefold()] > 1 else org.name
        org.display_name = label  # type: ignore[attr-defined]
    return {
        "organization": getattr(request, "organization", None),
        "membership": getattr(request, "membership", None),
        "user_organizations": organizations,
    }
