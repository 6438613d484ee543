"""Settings → Billing (owners) and the Stripe webhook. Views parse, call, render."""

from __future__ import annotations

import logging
from functools import wraps

import stripe
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.decorators import organization_required
from accounts.middleware import SESSION_KEY
from accounts.models import Role
from billing import gdpr
from billing.models import DataExport
from billing.selectors import billing_enabled, plan_effective, plan_get, plan_usage
from billing.stripe_sync import (
    BillingError,
    StripeUnavailable,
    checkout_session_create,
    portal_session_create,
    stripe_configured,
    stripe_event_apply,
)
from billing.tasks import organization_export_task

logger = logging.getLogger("aispendtrack.billing")


def owner_required(view):
    @organization_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.membership.role != Role.OWNER:
            raise PermissionDenied("Only owners can manage billing.")
        return view(request, *args, **kwargs)

    return wrapper


def _absolute(request, name: str) -> str:
    base = settings.AISPENDTRACK_PUBLIC_URL.rstrip("/")
    path = reverse(name)
    return f"{base}{path}" if base else request.build_absolute_uri(path)


@owner_required
def billing_settings(request):
    if not billing_enabled():
        return render(request, "billing/self_hosted.html")
    organization = request.organization
    if request.GET.get("checkout") == "success":
        messages.success(request, "Thanks! Your upgrade is confirmed as soon as Stripe tells us.")
    effective = plan_effective(organization=organization)
    return render(
        request,
        "billing/settings.html",
        {
            "effective": effective,
            "usage": plan_usage(organization=organization),
            "pro": plan_get(slug="pro"),
            "stripe_ready": stripe_configured(),
        },
    )


@owner_required
@require_POST
def billing_upgrade(request):
    try:
        url = checkout_session_create(
            organization=request.organization,
            email=request.user.email,
            success_url=_absolute(request, "billing_settings") + "?checkout=success",
            cancel_url=_absolute(request, "billing_settings"),
        )
    except BillingError as error:
        messages.error(request, str(error))
        return redirect("billing_settings")
    return redirect(url)


@owner_required
@require_POST
def billing_portal(request):
    try:
        url = portal_session_create(
            organization=request.organization,
            return_url=_absolute(request, "billing_settings"),
        )
    except BillingError as error:
        messages.error(request, str(error))
        return redirect("billing_settings")
    return redirect(url)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Verified with STRIPE_WEBHOOK_SECRET; 400 on a bad signature (nothing
    changes), 503 when Stripe cannot be reached (Stripe retries), else 200."""
    try:
        event = stripe.Webhook.construct_event(
            request.body,
            request.headers.get("Stripe-Signature", ""),
            settings.STRIPE_WEBHOOK_SECRET,
        )
    except (ValueError, stripe.SignatureVerificationError) as error:
        return HttpResponse(
            f"Invalid Stripe webhook: {error}", status=400, content_type="text/plain"
        )
    try:
        outcome = stripe_event_apply(event.to_dict())
    except StripeUnavailable:
        logger.warning("Stripe unreachable while applying %s; Stripe will retry", event.id)
        return HttpResponse("Stripe is unreachable; retry later.", status=503)
    logger.info("Stripe event %s %s: %s", event.id, event.type, outcome)
    return HttpResponse(outcome, content_type="text/plain")


# --- GDPR: export, delete organization, delete account ----------------------------


@owner_required
@require_POST
def organization_export(request):
    export = gdpr.data_export_request(organization=request.organization, user=request.user)
    base_url = settings.AISPENDTRACK_PUBLIC_URL or request.build_absolute_uri("/")
    transaction.on_commit(lambda: organization_export_task.delay(export.pk, base_url))
    messages.success(
        request,
        "Your export is being prepared; owners get an email with the link when it is ready.",
    )
    return redirect("org_settings")


@owner_required
def organization_export_download(request, export_id: int):
    export = DataExport.objects.filter(organization=request.organization, pk=export_id).first()
    path = gdpr.data_export_path(export) if export is not None else None
    if path is None:  # missing, not yours, not ready or expired: the same 404
        raise Http404("No such export (exports are kept for 24 hours).")
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


@owner_required
@require_POST
def organization_delete(request):
    organization = request.organization
    try:
        gdpr.organization_delete_request(
            organization=organization,
            user=request.user,
            confirm_name=request.POST.get("confirm_name", ""),
        )
    except gdpr.GdprError as error:
        messages.error(request, str(error))
        return redirect("org_settings")
    request.session.pop(SESSION_KEY, None)
    messages.success(
        request,
        f"{organization.name} is deleted: its keys no longer work and its data is erased "
        f"within {gdpr.DELETION_DAYS} days.",
    )
    return redirect("home")


@login_required
def account_settings(request):
    if request.method == "POST":
        if request.POST.get("confirm_email", "").strip().lower() != request.user.email.lower():
            messages.error(request, "Type your email address exactly to confirm.")
            return redirect("account_settings")
        try:
            gdpr.account_delete(user=request.user)
        except gdpr.GdprError as error:
            messages.error(request, str(error))
            return redirect("account_settings")
        logout(request)
        return redirect("account_login")
    return render(request, "billing/account.html")
