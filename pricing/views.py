"""Pricing pages: the public model price list and Settings → Pricing
(organization overrides). Views parse, call a selector or service, render."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.decorators import manager_required, organization_required
from analytics.repricing import usage_reprice
from analytics.tasks import reprice_runs_start
from pricing import selectors, services
from pricing.forms import PriceOverrideForm

MODELS_PER_PAGE = 50
UNPRICED_WINDOW = timedelta(days=30)


@require_http_methods(["GET"])
def models_public(request):
    """Every model's current price; public, searchable, paginated."""
    query = request.GET.get("q", "").strip()[:100]
    provider = request.GET.get("provider", "").strip()[:64]
    rows = selectors.model_price_current_list(query=query, provider=provider)
    page = Paginator(rows, MODELS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "pricing/models.html",
        {
            "page": page,
            "query": query,
            "provider": provider,
            "providers": selectors.provider_list(),
        },
    )


def _settings_page(request, *, form, status=200):
    organization = request.organization
    return render(
        request,
        "pricing/settings.html",
        {
            "overrides": selectors.price_override_list(organization=organization),
            "unpriced": selectors.unpriced_model_summary(
                organization=organization, since=timezone.now() - UNPRICED_WINDOW
            ),
            "form": form,
        },
        status=status,
    )


def _repricing_note(request, override) -> str:
    """Start re-pricing the calls this price can now price (a Celery worker
    does it; the banner follows) and say so."""
    runs = reprice_runs_start(label=override.model, organization=request.organization)
    calls = sum(run.calls for run in runs)
    if not calls:
        return "New calls use it within seconds."
    return (
        f"New calls use it within seconds; re-pricing {calls:,} call{pluralize(calls)} "
        "recorded without a price in the background."
    )


@organization_required
@require_http_methods(["GET", "POST"])
def pricing_settings(request):
    """List the organization's prices; owners/admins add one (members read only)."""
    if request.method == "POST":
        if not request.membership.can_manage:
            messages.error(request, "Only owners and admins can set prices.")
            return redirect("pricing_settings")
        form = PriceOverrideForm(request.POST)
        if not form.is_valid():
            return _settings_page(request, form=form, status=400)
        try:
            override = services.price_override_create(
                organization=request.organization,
                created_by=request.user,
                provider=form.cleaned_data["provider"],
                model=form.cleaned_data["model"],
                prices=form.prices,
                effective_from=form.cleaned_data["effective_from"],
                notes=form.cleaned_data["notes"],
            )
        except services.PricingError as exc:
            form.add_error(None, str(exc))
            return _settings_page(request, form=form, status=400)
        messages.success(
            request, f"Saved your price for {override.model}. {_repricing_note(request, override)}"
        )
        return redirect("pricing_settings")
    # Prefill from "add a price" links next to unpriced models.
    initial = {k: request.GET[k][:200] for k in ("model", "provider") if request.GET.get(k)}
    return _settings_page(request, form=PriceOverrideForm(initial=initial))


@manager_required
@require_http_methods(["GET", "POST"])
def price_override_edit(request, override_id: int):
    organization = request.organization
    override = selectors.price_override_get_for_org(
        organization=organization, override_id=override_id
    )
    if request.method == "POST":
        form = PriceOverrideForm(request.POST)
        if form.is_valid():
            try:
                services.price_override_update(
                    organization=organization,
                    override=override,
                    provider=form.cleaned_data["provider"],
                    model=form.cleaned_data["model"],
                    prices=form.prices,
                    effective_from=form.cleaned_data["effective_from"],
                    notes=form.cleaned_data["notes"],
                )
            except services.PricingError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"Updated your price for {override.model}. "
                    + _repricing_note(request, override),
                )
                return redirect("pricing_settings")
        status = 400
    else:
        form = PriceOverrideForm(initial=PriceOverrideForm.initial_from(override))
        status = 200
    return render(
        request, "pricing/override_form.html", {"form": form, "override": override}, status=status
    )


@manager_required
@require_http_methods(["GET", "POST"])
def price_override_delete(request, override_id: int):
    organization = request.organization
    override = selectors.price_override_get_for_org(
        organization=organization, override_id=override_id
    )
    if request.method == "POST":
        services.price_override_delete(organization=organization, override=override)
        messages.success(request, f"Deleted your price for {override.model}.")
        return redirect("pricing_settings")
    return render(request, "pricing/override_delete.html", {"override": override})


@manager_required
@require_http_methods(["POST"])
def pricing_reprice(request):
    """Re-price this organization's unpriced calls (and, when asked, all of a model's)."""
    model = request.POST.get("model", "").strip()[:200] or None
    changed = usage_reprice(
        organization=request.organization,
        model=model,
        include_priced=bool(model) and request.POST.get("all") == "1",
    )
    messages.success(request, f"Re-priced {changed:,} call{pluralize(changed)}.")
    return redirect("pricing_settings")
