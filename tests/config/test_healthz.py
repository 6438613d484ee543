"""/healthz answers for the database, both ways."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["dead_letter"] == 0


@pytest.mark.django_db(transaction=True)
def test_database_unreachable(client):
    """Point the live connection at a database that is not there (a real
    connection failure, not a mock), then restore it."""
    original = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/nowhere.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    assert response.json()["database"] == "down"
