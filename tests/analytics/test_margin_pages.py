"""Settings → Revenue (CSV preview and import), margin on the customers pages, the overview card."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from analytics.models import RevenueEntry, RevenueSettings
from tests.analytics.conftest import call
from tests.factories import RevenueEntryFactory

HEADER = "customer_id,amount,period_start,period_end,external_id\n"


def csv_file(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("revenue.csv", text.encode(), content_type="text/csv")


@pytest.fixture
def month():
    today = timezone.now().date()
    first = today.replace(day=1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first, last, today


def test_csv_preview_then_import_is_idempotent(owner_client, org, month):
    first, last, _ = month
    text = HEADER + f"c1,100,{first},{last},inv-1\nc2,oops,{first},{last},inv-2\n"
    preview = owner_client.post("/settings/revenue/", {"action": "preview", "file": csv_file(text)})
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "line 3: amount must be a number in USD, got &#x27;oops&#x27;" in html
    assert "Import 1 line (skip 1)" in html
    assert RevenueEntry.objects.count() == 0  # nothing before the confirmation
    for _ in range(2):  # importing the same file twice replaces, never doubles
        done = owner_client.post("/settings/revenue/", {"action": "import", "csv_text": text})
        assert done.status_code == 302
    (entry,) = RevenueEntry.objects.filter(organization=org)
    assert (entry.customer_id, entry.amount, entry.source) == ("c1", Decimal(100), "csv")
    page = owner_client.get("/settings/revenue/").content.decode()
    assert "inv-1" in page and "Imported revenue: 0 new, 1 replaced; skipped 1 bad line(s)." in page


def test_unreadable_files_say_why(owner_client):
    bad_header = owner_client.post(
        "/settings/revenue/", {"action": "preview", "file": csv_file("a,b\n1,2\n")}
    )
    assert bad_header.status_code == 400
    assert "line 1 must be the header" in bad_header.content.decode()
    binary = SimpleUploadedFile("x.csv", b"\xff\xfe\x00bad", content_type="text/csv")
    response = owner_client.post("/settings/revenue/", {"action": "preview", "file": binary})
    assert response.status_code == 400 and "not UTF-8" in response.content.decode()


def test_template_download(member_client):
    response = member_client.get("/settings/revenue/template.csv")
    assert response.status_code == 200
    assert response.content.decode().startswith(HEADER)


def test_members_read_but_cannot_change(member_client, org, month):
    first, last, _ = month
    text = HEADER + f"c1,100,{first},{last},inv-1\n"
    assert member_client.get("/settings/revenue/").status_code == 200
    member_client.post("/settings/revenue/", {"action": "import", "csv_text": text})
    assert RevenueEntry.objects.count() == 0


def test_delete_is_tenant_scoped(owner_client, org, other_org, month):
    first, last, _ = month
    theirs = RevenueEntry.objects.create(
        organization=other_org,
        customer_id="x",
        amount=Decimal(1),
        period_start=first,
        period_end=last,
        source="csv",
        external_id="x",
    )
    response = owner_client.post(f"/settings/revenue/{theirs.pk}/delete/")
    assert response.status_code == 404
    assert RevenueEntry.objects.filter(pk=theirs.pk).exists()


def test_thin_threshold_setting(owner_client, org):
    owner_client.post("/settings/revenue/", {"action": "threshold", "thin_margin_percent": "35"})
    assert RevenueSettings.objects.get(organization=org).thin_margin_percent == Decimal(35)
    bad = owner_client.post(
        "/settings/revenue/", {"action": "threshold", "thin_margin_percent": "x"}
    )
    assert bad.status_code == 400


@pytest.fixture
def margins(org, ingest, month):
    """paying: $300 revenue − $120 cost = $180 (60 %); thin: $100 − $85 = $15 (15 %);
    losing: $30 − $50 = −$20; silent: $9 cost, no revenue."""
    first, last, today = month
    now = timezone.now()
    ingest(
        call(org, now, cost="120.0000000000", customer_id="paying"),
        call(org, now, cost="85.0000000000", customer_id="thin"),
        call(org, now, cost="50.0000000000", customer_id="losing"),
        call(org, now, cost="9.0000000000", customer_id="silent"),
    )
    for customer, amount in (("paying", 300), ("thin", 100), ("losing", 30)):
        # Revenue for exactly the days of this month so far: all of it counts.
        RevenueEntryFactory(
            organization=org,
            customer_id=customer,
            amount=Decimal(amount),
            period_start=first,
            period_end=today,
        )
    return first, today


def _customers(client, **params):
    """The customers page from its margin filters down (the filter bar above
    suggests every customer id)."""
    html = client.get("/customers/", params).content.decode()
    return html[html.index('data-testid="margin-filters"') :]


def test_customers_table_margin_columns_filters_and_sorting(owner_client, margins):
    first, today = margins
    dates = {"start_date": str(first), "end_date": str(today)}
    html = _customers(owner_client, **dates)
    assert "Margin %" in html and "60.00 %" in html and "15.00 %" in html
    unprofitable = _customers(owner_client, profit="unprofitable", **dates)
    assert "losing" in unprofitable and "paying" not in unprofitable and "thin<" not in unprofitable
    thin = _customers(owner_client, profit="thin", **dates)  # < 20 %: thin and losing
    assert "/customers/thin/" in thin and "/customers/losing/" in thin
    assert "/customers/paying/" not in thin and "/customers/silent/" not in thin
    by_margin = _customers(owner_client, sort="margin", **dates)
    order = [by_margin.index(f"/customers/{c}/") for c in ("losing", "thin", "paying", "silent")]
    assert order == sorted(order)  # lowest margin first, unknown revenue last
    assert owner_client.get("/customers/", {"profit": "bogus"}).status_code == 400
    # Every column header still sorts a filtered table (a 400 once).
    by_name = _customers(owner_client, profit="thin", sort="name", **dates)
    assert by_name.index("/customers/losing/") < by_name.index("/customers/thin/")


def test_customer_detail_shows_margin_and_pnl(owner_client, margins):
    first, today = margins
    page = owner_client.get(
        "/customers/losing/", {"start_date": str(first), "end_date": str(today)}
    )
    html = page.content.decode()
    assert 'id="customer-margin"' in html and "-66.67 %" in html
    start = html.index('id="pnl-data"')
    data = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])
    assert data["series"][0]["data"][-1] == 30.0  # revenue this month
    assert data["series"][1]["data"][-1] == 50.0  # AI cost this month
    assert data["series"][2]["data"][-1] == -20.0  # margin
    assert data["series"][0]["data"][0] is None  # no revenue known a year ago: a gap, not 0
    assert "js/pnl.js" in html
    # This month at the run rate: $50 so far + $0 a day over the 7 days before today.
    forecast = html[html.index('id="customer-forecast"') :]
    forecast = forecast[: forecast.index("</div></div>")]
    assert ">$50.00<" in forecast and "vs" in forecast and ">$30.00<" in forecast
    assert '<span class="bad"><span class="money" title="-$20">-$20.00<' in forecast


def test_overview_card_counts_customers_that_cost_more_than_they_pay(owner_client, margins):
    html = owner_client.get("/dashboard/").content.decode()
    assert 'id="unprofitable-card"' in html
    assert "1 customer costs more than it pays this month" in html
    assert "of 3 with revenue known" in html


def test_another_organization_sees_no_margin(client, other_owner, margins):
    client.force_login(other_owner)
    html = client.get("/customers/", {"profit": "unprofitable"}).content.decode()
    assert "losing" not in html
    assert client.get("/customers/losing/").status_code == 404
