from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect


def organization_required(view):
    """Logged in and resolved to an organization (else: create one first)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.organization is None:
            return redirect("org_create")
        return view(request, *args, **kwargs)

    return wrapper


def manager_required(view):
    """Owners and admins only; members get a 403 page that says why."""

    @organization_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.membership.can_manage:
            raise PermissionDenied("Only owners and admins can do this.")
        return view(request, *args, **kwargs)

    return wrapper
