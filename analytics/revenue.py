"""Revenue in: rows from the REST API, a CSV upload or Stripe, checked one by one.

One rule for every path: `revenue_rows_check` turns raw rows (dicts of
strings or JSON values) into clean rows or a reason per row, and
`revenue_rows_save` upserts the clean ones by (organization, source,
external_id), so a re-import replaces and never double-counts. A bad row
never blocks the good ones; each rejection says which row and why.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from accounts.models import Organization
from analytics.models import COST_PLACES, RevenueEntry, RevenueSettings, RevenueSource

REVENUE_FIELDS = ("customer_id", "amount", "period_start", "period_end", "external_id")
MAX_ROWS = 10_000
MAX_PERIOD_DAYS = 731  # two years: an annual contract fits, a typo of a decade does not
MAX_AMOUNT = Decimal(10) ** 9
QUANTUM = Decimal(1).scaleb(-COST_PLACES)
TEMPLATE_CSV = (
    "customer_id,amount,period_start,period_end,external_id\n"
    "cust_42,499.00,2026-11-01,2026-11-30,INV-2026-11-042\n"
)


@dataclass
class CleanRow:
    customer_id: str
    amount: Decimal
    period_start: date
    period_end: date
    external_id: str


@dataclass
class Rejection:
    row: int  # 0-based index in the list; CSV reports line numbers (row + 2)
    external_id: str
    reason: str


@dataclass
class RevenueCheck:
    rows: list[tuple[int, CleanRow]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class RevenueImport:
    created: int = 0
    updated: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def _text(value: Any, name: str, *, limit: int) -> str:
    if value is None:
        raise ValueError(f"{name} is required")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a string")
    text = "".join(
        ch for ch in str(value).strip() if unicodedata.category(ch)[0] != "C" or ch == " "
    )
    if not text:
        raise ValueError(f"{name} is required")
    if len(text) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return text


def _amount(value: Any) -> Decimal:
    if value is None or value == "":
        raise ValueError("amount is required")
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError('amount must be a number in USD, e.g. "499.00"')
    try:
        # JSON numbers arrive as floats: their shortest text is what was sent.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"amount must be a number in USD, got {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"amount must be a number in USD, got {value!r}")
    if abs(amount) >= MAX_AMOUNT:
        raise ValueError(f"amount must be below {MAX_AMOUNT:,} USD")
    if amount != amount.quantize(QUANTUM):
        raise ValueError(f"amount has more than {COST_PLACES} decimal places")
    return amount.quantize(QUANTUM)


def _date(value: Any, name: str) -> date:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is required, as an ISO date like 2026-11-01")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name} must be an ISO date like 2026-11-01, got {value!r}") from None


def revenue_row_check(raw: Any) -> CleanRow:
    """One raw row → a clean row, or ValueError with the reason."""
    if not isinstance(raw, Mapping):
        raise ValueError("each row must be an object with " + ", ".join(REVENUE_FIELDS))
    unknown = sorted(set(raw) - set(REVENUE_FIELDS))
    if unknown:
        raise ValueError(f"unknown field {', '.join(map(repr, unknown))}")
    start = _date(raw.get("period_start"), "period_start")
    end = _date(raw.get("period_end"), "period_end")
    if end < start:
        raise ValueError(f"period_end ({end}) is before period_start ({start})")
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise ValueError(f"the period is longer than {MAX_PERIOD_DAYS} days")
    return CleanRow(
        customer_id=_text(raw.get("customer_id"), "customer_id", limit=256),
        amount=_amount(raw.get("amount")),
        period_start=start,
        period_end=end,
        external_id=_text(raw.get("external_id"), "external_id", limit=256),
    )


def revenue_rows_check(raws: Iterable[Any], *, first: int = 0, noun: str = "row") -> RevenueCheck:
    """Check every row, numbered from `first` (CSV: line 2); an external_id
    repeated in the same batch is rejected."""
    out = RevenueCheck()
    seen: dict[str, int] = {}
    for n, raw in enumerate(raws, start=first):
        external = str(raw.get("external_id") or "") if isinstance(raw, Mapping) else ""
        try:
            row = revenue_row_check(raw)
        except ValueError as error:
            out.rejected.append(Rejection(n, external[:256], str(error)))
            continue
        if row.external_id in seen:
            reason = f"external_id repeats {noun} {seen[row.external_id]}"
            out.rejected.append(Rejection(n, row.external_id, reason))
            continue
        seen[row.external_id] = n
        out.rows.append((n, row))
    return out


@transaction.atomic
def revenue_rows_save(
    *, organization: Organization, source: str, check: RevenueCheck
) -> RevenueImport:
    """Upsert checked rows by (organization, source, external_id)."""
    result = RevenueImport(rejected=list(check.rejected))
    if not check.rows:
        return result
    ids = [row.external_id for _, row in check.rows]
    existing = {
        entry.external_id: entry
        for entry in RevenueEntry.objects.select_for_update().filter(
            organization=organization, source=source, external_id__in=ids
        )
    }
    fresh = []
    for _, row in check.rows:
        entry = existing.get(row.external_id)
        if entry is None:
            fresh.append(RevenueEntry(organization=organization, source=source, **vars(row)))
            continue
        for name, value in vars(row).items():
            setattr(entry, name, value)
        entry.save()
        result.updated += 1
    RevenueEntry.objects.bulk_create(fresh, batch_size=1000)
    result.created = len(fresh)
    return result


def revenue_import(*, organization: Organization, source: str, rows: list[Any]) -> RevenueImport:
    """Check and save a list of raw rows (the REST API's body, Stripe's invoices)."""
    if source not in RevenueSource.values:
        raise ValueError(f"unknown revenue source {source!r}")
    return revenue_rows_save(
        organization=organization, source=source, check=revenue_rows_check(rows)
    )


def revenue_entry_delete(*, organization: Organization, entry: RevenueEntry) -> None:
    if entry.organization_id != organization.pk:  # selectors hand out own rows only
        raise PermissionError("not this organization's revenue entry")
    entry.delete()


# --- CSV -----------------------------------------------------------------------


class CsvError(ValueError):
    """The file as a whole cannot be read (not UTF-8, no header, too long)."""


def revenue_csv_check(text: str) -> RevenueCheck:
    """Check a CSV's data lines (numbered as in the file: the header is line 1).
    CsvError when the file as a whole cannot be read."""
    reader = csv.DictReader(io.StringIO(text))
    header = [(name or "").strip().lower() for name in reader.fieldnames or ()]
    missing = [name for name in REVENUE_FIELDS if name not in header]
    if missing:
        raise CsvError(
            f"line 1 must be the header {','.join(REVENUE_FIELDS)}; missing {', '.join(missing)}"
        )
    extra = [name for name in header if name not in REVENUE_FIELDS]
    if extra:
        raise CsvError(f"line 1 names unknown columns: {', '.join(extra)}")
    reader.fieldnames = header
    rows: list[Any] = []
    for raw in reader:
        if len(rows) >= MAX_ROWS:
            raise CsvError(f"the file has more than {MAX_ROWS:,} lines; split it")
        # A line with more values than columns: csv puts the rest under None.
        rows.append("more values than columns" if None in raw else raw)
    if not rows:
        raise CsvError("the file has no data lines")
    check = revenue_rows_check(rows, first=2, noun="line")
    for rejection in check.rejected:
        if rejection.reason.startswith("each row must be"):
            rejection.reason = "more values than columns"
    return check


def revenue_settings_save(*, organization: Organization, **values: Any) -> RevenueSettings:
    """Create or update the organization's revenue settings with `values`."""
    settings, _ = RevenueSettings.objects.update_or_create(
        organization=organization, defaults=values
    )
    return settings
