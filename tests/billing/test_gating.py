"""Feature gating by plan: the REST API and export answer 403
`plan_feature_required` where the plan lacks them; pages show an upgrade prompt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import override_settings

from billing.models import Subscription
from tests.analytics.conftest import call

billing_on = override_settings(AISPENDTRACK_BILLING=True)


def bearer(key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key.raw}"}


@billing_on
@pytest.mark.parametrize(
    "url", ["/api/costs", "/api/costs/summary", "/api/customers", "/api/costs/export?format=csv"]
)
def test_free_plan_gets_403_plan_feature_required(client, org, plans, api_key, url):
    response = client.get(url, **bearer(api_key))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "plan_feature_required"
    assert "Free plan" in body["detail"] and "Settings → Billing" in body["detail"]


@billing_on
def test_api_plan_is_never_gated(client, org, plans, api_key):
    assert client.get("/api/plan", **bearer(api_key)).status_code == 200


@billing_on
def test_pro_unlocks_the_api_and_export(client, org, plans, api_key):
    Subscription.objects.create(organization=org, plan=plans["pro"])
    assert client.get("/api/costs/summary", **bearer(api_key)).status_code == 200
    assert client.get("/api/costs/export?format=csv", **bearer(api_key)).status_code == 200


@billing_on
def test_export_alone_without_the_api(owner_client, org, plans):
    """A custom plan with export but no REST API: the dashboard's export works."""
    plan = plans["free"]
    plan.pk, plan.slug, plan.export = None, "export-only", True
    plan.save()
    Subscription.objects.create(organization=org, plan=plan)
    assert owner_client.get("/api/costs/export?format=json").status_code == 200
    assert owner_client.get("/api/costs/summary").status_code == 403


@override_settings(AISPENDTRACK_BILLING=False)
def test_billing_off_unlocks_everything(client, org, plans, api_key):
    Subscription.objects.create(organization=org, plan=plans["free"])
    assert client.get("/api/costs/summary", **bearer(api_key)).status_code == 200
    assert client.get("/api/costs/export?format=csv", **bearer(api_key)).status_code == 200


@billing_on
def test_requests_page_shows_an_upgrade_prompt_instead_of_export(owner_client, org, plans):
    page = owner_client.get("/requests/").content.decode()
    assert "data-upgrade-prompt" in page and "Upgrade to Pro" in page
    assert "Export CSV" not in page


@billing_on
def test_pro_requests_page_has_export(owner_client, org, plans):
    Subscription.objects.create(organization=org, plan=plans["pro"])
    page = owner_client.get("/requests/").content.decode()
    assert "Export CSV" in page and "data-upgrade-prompt" not in page


@billing_on
def test_dashboard_shows_the_usage_meter(owner_client, org, plans, ingest):
    ingest(call(org, datetime.now(UTC)), call(org, datetime.now(UTC)))
    page = owner_client.get("/dashboard/").content.decode()
    assert 'id="plan-usage"' in page
    assert "2 / 10,000" in page


@billing_on
def test_page_decorator_shows_an_upgrade_prompt_on_free(rf, org, owner, plans):
    from accounts.models import Membership
    from billing.decorators import plan_feature_required

    @plan_feature_required("alerts")
    def alerts_page(request):
        from django.http import HttpResponse

        return HttpResponse("the alerts page")

    request = rf.get("/alerts/")
    request.user = owner
    request.organization = org
    request.membership = Membership.objects.get(user=owner, organization=org)
    response = alerts_page(request)
    assert response.status_code == 403
    assert b"data-upgrade-prompt" in response.content and b"alerts and webhooks" in response.content
    Subscription.objects.create(organization=org, plan=plans["pro"])
    assert alerts_page(request).content == b"the alerts page"


@billing_on
@pytest.mark.parametrize(
    "url", ["/settings/budgets/", "/settings/alert-channels/", "/settings/alerts/"]
)
def test_free_plan_alerts_pages_show_an_upgrade_prompt(owner_client, org, plans, url):
    response = owner_client.get(url)
    assert response.status_code == 403
    assert b"data-upgrade-prompt" in response.content
    Subscription.objects.create(organization=org, plan=plans["pro"])
    assert owner_client.get(url).status_code == 200


@billing_on
@pytest.mark.parametrize("url", ["/api/budgets", "/api/alert-channels", "/api/alerts"])
def test_free_plan_alerts_api_is_403_plan_feature_required(owner_client, org, plans, url):
    response = owner_client.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "plan_feature_required"
    Subscription.objects.create(organization=org, plan=plans["pro"])
    assert owner_client.get(url).status_code == 200


@override_settings(AISPENDTRACK_BILLING=False)
def test_billing_off_alerts_are_open(owner_client, org, plans):
    Subscription.objects.create(organization=org, plan=plans["free"])
    assert owner_client.get("/settings/budgets/").status_code == 200
    assert owner_client.get("/api/budgets").status_code == 200
