"""/healthz answers for the database, both ways."""

from __future__ import annotations

import pytest
from django.db import connection

from config import views


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
    views.probe_connection_close()  # the probe's kept connection too
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


def _probe_backend() -> int:
    """The PostgreSQL backend of /healthz's probe thread."""

    def backend() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    return views._probes.submit(backend).result()


@pytest.mark.django_db(transaction=True)
def test_the_probe_keeps_its_connection_and_survives_losing_it(client):
    """A backend per probe cost a fork each time (a false 503 under load);
    a kept one that the database cut (a restart) must not read as down."""
    if connection.vendor != "postgresql":
        pytest.skip("backends and pg_terminate_backend are PostgreSQL's")
    assert client.get("/healthz").status_code == 200
    first = _probe_backend()
    assert client.get("/healthz").status_code == 200
    assert _probe_backend() == first  # kept: no new backend per probe

    with connection.cursor() as cursor:  # another session cuts the probe's
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        assert cursor.fetchone()[0] is True

    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == "ok"
    assert _probe_backend() != first
