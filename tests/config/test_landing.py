"""The anonymous `/`: what AiSpendTrack does, the two-line setup, sign up / sign in."""

from __future__ import annotations


def test_signed_out_visitors_get_the_landing_page(client, db):
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Know what every LLM call costs." in page
    assert 'base_url="http://testserver/v1"' in page and "x-aispendtrack-key" in page
    assert 'href="/accounts/signup/"' in page and 'href="/accounts/login/"' in page
    assert 'href="/pricing/models"' in page


def test_signed_in_people_go_to_their_overview(owner_client, org):
    response = owner_client.get("/")
    assert response.status_code == 302 and response.url == "/dashboard/"
