"""Bad input gets a 400 that says what was wrong: dates out of range, control
characters in the path or a query parameter, on the API and on pages."""

from __future__ import annotations

import pytest

API_DATED = ["/api/costs/summary", "/api/costs", "/api/customers", "/api/costs/daily"]
PAGES_DATED = ["/dashboard/", "/models/", "/customers/", "/features/", "/requests/"]


def bearer(api_key) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key.raw}"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_DATED)
@pytest.mark.parametrize(
    "query",
    [
        "start_date=9999-12-31",
        "start_date=0001-01-01",
        "end_date=9999-12-31",
        "end_date=0001-01-01",
        "start_date=1999-12-31&end_date=2000-01-02",
        "start_date=2100-12-31&end_date=2101-01-01",
    ],
)
def test_api_dates_outside_2000_2100_are_400(client, api_key, path, query):
    response = client.get(f"{path}?{query}", **bearer(api_key))
    assert response.status_code == 400
    assert "between 2000-01-01 and 2100-12-31" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_DATED)
def test_api_dates_at_the_bounds_are_fine(client, api_key, path):
    for query in (
        "start_date=2000-01-01&end_date=2000-01-31",
        "start_date=2100-12-01&end_date=2100-12-31",
    ):
        assert client.get(f"{path}?{query}", **bearer(api_key)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES_DATED)
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_page_dates_outside_the_range_are_400(owner_client, path, day):
    response = owner_client.get(f"{path}?start_date={day}")
    assert response.status_code == 400
    assert "between 2000-01-01 and 2100-12-31" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/costs?customer_id=%00",
        "/api/costs?model=a%00b",
        "/api/costs/summary?feature=%1f",
        "/api/costs/by-model/x%00y",
        "/api/costs/by-customer/%7f",
        "/api/customers?q=%00",
        "/api/costs?%00=1",
    ],
)
def test_api_control_characters_are_400_json(client, api_key, url):
    response = client.get(url, **bearer(api_key))
    assert response.status_code == 400
    assert "control character" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/pricing/models?q=%00",
        "/pricing/models?provider=%00",
        "/accounts/login/?next=%00",
        "/models/x%00y/",
        "/customers/?q=a%0Ab",
    ],
)
def test_pages_with_control_characters_are_400(client, owner, url):
    for logged_in in (False, True):
        if logged_in:
            client.force_login(owner)
        response = client.get(url)
        assert response.status_code == 400, (url, logged_in)
        assert "control character" in response.content.decode()


@pytest.mark.django_db
def test_api_cursor_not_issued_by_us_is_400(client, api_key):
    import base64

    forged = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|" + b"9" * 30).decode()
    naive = base64.urlsafe_b64encode(b"2026-01-01T00:00:00|5").decode()
    for cursor in (forged, naive, "%%%"):
        response = client.get("/api/costs", {"cursor": cursor}, **bearer(api_key))
        assert response.status_code == 400
        assert "cursor" in response.json()["detail"]
