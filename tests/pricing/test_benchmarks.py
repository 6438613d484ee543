"""Model benchmark scores: CSV import in admin (every bad line reported, re-import idempotent)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile

from pricing.benchmarks import benchmark_csv_parse, model_benchmarks_import
from pricing.models import ModelBenchmark
from tests.pricing.test_admin import staff_client  # noqa: F401 (fixture)

GOOD = (
    "model,benchmark,score,source_url,as_of\n"
    "GPT-4o,MMLU-Pro,72.6,https://example.org/mmlu,2025-06-30\n"
    "o3,GPQA,83.3,https://example.org/gpqa,2025-04-16\n"
)


def test_import_creates_then_replaces_never_duplicates(db):
    first = model_benchmarks_import(text=GOOD)
    assert (first.created, first.updated, first.errors) == (2, 0, [])
    again = model_benchmarks_import(text=GOOD.replace("72.6", "73.1"))
    assert (again.created, again.updated) == (0, 2)
    row = ModelBenchmark.objects.get(model="gpt-4o", benchmark="MMLU-Pro")
    assert row.score == Decimal("73.1") and row.as_of == date(2025, 6, 30)
    assert ModelBenchmark.objects.count() == 2


def test_every_bad_line_is_reported_and_nothing_is_written(db):
    text = GOOD + (
        "x,GPQA,high,https://example.org,2025-01-01\n"
        "y,GPQA,50,ftp://example.org,2025-01-01\n"
        "z,GPQA,50,https://example.org,yesterday\n"
        ",GPQA,50,https://example.org,2025-01-01\n"
    )
    result = model_benchmarks_import(text=text)
    assert result.errors == [
        "line 4: score must be a number, got 'high'",
        "line 5: source_url must be an http(s) URL, got 'ftp://example.org'",
        "line 6: as_of must be an ISO date like 2025-06-30, got 'yesterday'",
        "line 7: model missing",
    ]
    assert ModelBenchmark.objects.count() == 0


def test_a_wrong_header_is_refused():
    result = benchmark_csv_parse("model,score\ngpt-4o,1\n")
    assert result.errors and "benchmark" in result.errors[0] and result.rows == []


def test_admin_import_page(db, staff_client):  # noqa: F811
    page = staff_client.get("/admin/pricing/modelbenchmark/import/")
    assert page.status_code == 200
    upload = SimpleUploadedFile("scores.csv", GOOD.encode(), content_type="text/csv")
    response = staff_client.post("/admin/pricing/modelbenchmark/import/", {"file": upload})
    assert response.status_code == 302
    assert ModelBenchmark.objects.count() == 2
    bad = SimpleUploadedFile("bad.csv", b"model,benchmark,score,source_url,as_of\nm,b,x,u,d\n")
    response = staff_client.post("/admin/pricing/modelbenchmark/import/", {"file": bad})
    assert (
        response.status_code == 200
        and "line 2: score must be a number" in response.content.decode()
    )
    listing = staff_client.get("/admin/pricing/modelbenchmark/")
    assert "Import CSV" in listing.content.decode()


def test_non_staff_cannot_import(client, owner):
    client.force_login(owner)
    response = client.get("/admin/pricing/modelbenchmark/import/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
