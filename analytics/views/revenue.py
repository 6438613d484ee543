"""Settings → Revenue: CSV upload with a preview, entries, the thin-margin threshold."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import manager_required, organization_required
from analytics.models import RevenueSource
from analytics.params import ParamError, parse_int
from analytics.revenue import (
    TEMPLATE_CSV,
    CsvError,
    RevenueCheck,
    revenue_csv_check,
    revenue_entry_delete,
    revenue_rows_save,
    revenue_settings_save,
)
from analytics.selectors.revenue import (
    revenue_entries,
    revenue_entry_get_for_org,
    revenue_settings_get,
)
from analytics.stripe_revenue import (
    stripe_revenue_connect,
    stripe_revenue_disconnect,
    stripe_unmapped_revenue,
)
from analytics.tasks import stripe_revenue_sync_task
from analytics.views.common import bad_request

MAX_UPLOAD_BYTES = 2_000_000
PREVIEW_ROWS = 20
PER_PAGE = 50


def _read_upload(upload) -> str:
    if upload is None:
        raise CsvError("choose a CSV file to upload")
    raw = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise CsvError(f"the file is over {MAX_UPLOAD_BYTES // 1_000_000} MB; split it")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvError("the file is not UTF-8 text; save it as “CSV UTF-8”") from None


def _page(request, *, status: int = 200, **extra):
    org = request.organization
    extra.setdefault("unmapped", stripe_unmapped_revenue(organization=org))
    try:
        page = parse_int(request.GET, "page", default=1, minimum=1, maximum=100_000)
    except ParamError as error:
        return bad_request(request, error)
    entries, count = revenue_entries(organization=org, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    context = {
        "entries": entries,
        "count": count,
        "page": page,
        "pages": max(1, -(-count // PER_PAGE)),
        "settings": revenue_settings_get(organization=org),
        **extra,
    }
    return render(request, "analytics/revenue_settings.html", context, status=status)


@organization_required
@require_http_methods(["GET", "POST"])
def revenue_settings(request):
    """GET: entries and the upload form. POST (owners/admins): `preview` an
    uploaded CSV, `import` a previewed one (its good lines), or save the
    `threshold`."""
    if request.method == "GET":
        return _page(request)
    if not request.membership.can_manage:
        messages.error(request, "Only owners and admins can change revenue.")
        return redirect("revenue_settings")
    action = request.POST.get("action")
    if action == "threshold":
        return _threshold(request)
    if action in STRIPE_ACTIONS:
        return _stripe(request, action)
    try:
        if action == "preview":
            text = _read_upload(request.FILES.get("file"))
        elif action == "import":
            text = request.POST.get("csv_text", "")
            if len(text) > MAX_UPLOAD_BYTES:
                raise CsvError("the file is too large; split it")
        else:
            return _page(request, status=400, upload_error="Unknown action.")
        check = revenue_csv_check(text)
    except CsvError as error:
        return _page(request, status=400, upload_error=str(error))
    if action == "preview":
        return _page(request, preview=_preview(check), csv_text=text)
    result = revenue_rows_save(
        organization=request.organization, source=RevenueSource.CSV, check=check
    )
    skipped = f"; skipped {len(result.rejected)} bad line(s)" if result.rejected else ""
    messages.success(
        request,
        f"Imported revenue: {result.created} new, {result.updated} replaced{skipped}.",
    )
    return redirect("revenue_settings")


def _preview(check: RevenueCheck) -> dict:
    return {
        "rows": [row for _, row in check.rows[:PREVIEW_ROWS]],
        "good": len(check.rows),
        "errors": check.rejected,
    }


def _threshold(request):
    raw = (request.POST.get("thin_margin_percent") or "").strip()
    try:
        value = Decimal(raw)
        if not value.is_finite() or not Decimal(-100) <= value <= Decimal(100):
            raise InvalidOperation
    except InvalidOperation:
        return _page(
            request,
            status=400,
            threshold_error=f"The threshold is a percentage between -100 and 100; got {raw!r}.",
        )
    revenue_settings_save(organization=request.organization, thin_margin_percent=value)
    messages.success(request, f"Customers below a {value} % margin now count as thin.")
    return redirect("revenue_settings")


STRIPE_ACTIONS = ("stripe_connect", "stripe_sync", "stripe_disconnect")


def _stripe(request, action: str):
    org = request.organization
    if action == "stripe_disconnect":
        stripe_revenue_disconnect(organization=org)
        messages.success(request, "Disconnected Stripe; the revenue already imported stays.")
        return redirect("revenue_settings")
    if action == "stripe_connect":
        try:
            stripe_revenue_connect(
                organization=org,
                key=request.POST.get("stripe_key", ""),
                metadata_key=request.POST.get("metadata_key", ""),
            )
        except ValueError as error:
            return _page(request, status=400, stripe_error=str(error).capitalize() + ".")
    if not revenue_settings_get(organization=org).stripe_key_encrypted:
        return _page(request, status=400, stripe_error="Connect a Stripe key first.")
    stripe_revenue_sync_task.delay(org.pk)
    messages.success(
        request, "Syncing paid invoices from Stripe in the background; reload in a minute."
    )
    return redirect("revenue_settings")


@organization_required
def revenue_template(request):
    response = HttpResponse(TEMPLATE_CSV, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="revenue-template.csv"'
    return response


@manager_required
@require_POST
def revenue_entry_remove(request, entry_id: int):
    entry = revenue_entry_get_for_org(organization=request.organization, entry_id=entry_id)
    revenue_entry_delete(organization=request.organization, entry=entry)
    messages.success(request, f"Deleted the revenue entry {entry.external_id}.")
    return redirect("revenue_settings")
