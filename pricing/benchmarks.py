"""Model quality scores: the CSV staff import in admin, and the reads the simulator needs.

The CSV has a header row with the columns `model,benchmark,score,source_url,as_of`
(as_of an ISO date). A line with a bad value is reported with its number and
what was wrong; nothing is written unless every line is good, and importing the
same file twice changes nothing (rows are keyed by model and benchmark).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from pricing.models import ModelBenchmark

BENCHMARK_CSV_COLUMNS = ("model", "benchmark", "score", "source_url", "as_of")
MAX_IMPORT_LINES = 10_000


@dataclass
class BenchmarkImport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "line 3: score must be a number"
    created: int = 0
    updated: int = 0


def _row_parse(raw: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    values = {name: (raw.get(name) or "").strip() for name in BENCHMARK_CSV_COLUMNS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        return None, f"{', '.join(missing)} missing"
    if len(values["model"]) > 200 or len(values["benchmark"]) > 100:
        return None, "model is at most 200 characters, benchmark at most 100"
    try:
        score = Decimal(values["score"])
    except InvalidOperation:
        return None, f"score must be a number, got {values['score']!r}"
    if not score.is_finite() or not Decimal(0) <= score < Decimal(10**6):
        return None, f"score must be between 0 and 999999, got {values['score']!r}"
    try:
        URLValidator(schemes=["http", "https"])(values["source_url"])
    except ValidationError:
        return None, f"source_url must be an http(s) URL, got {values['source_url']!r}"
    try:
        as_of = date.fromisoformat(values["as_of"])
    except ValueError:
        return None, f"as_of must be an ISO date like 2025-06-30, got {values['as_of']!r}"
    return {
        "model": values["model"].lower(),
        "benchmark": values["benchmark"],
        "score": score.quantize(Decimal("0.001")),
        "source_url": values["source_url"],
        "as_of": as_of,
    }, None


def benchmark_csv_parse(text: str) -> BenchmarkImport:
    """Parse (never write) a benchmark CSV; `errors` lists every bad line."""
    out = BenchmarkImport()
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in reader.fieldnames or ()]
    absent = [name for name in BENCHMARK_CSV_COLUMNS if name not in header]
    if absent:
        out.errors.append(
            f"line 1: the header must name the columns {','.join(BENCHMARK_CSV_COLUMNS)}; "
            f"missing {', '.join(absent)}"
        )
        return out
    reader.fieldnames = header
    for number, raw in enumerate(reader, start=2):
        if number > MAX_IMPORT_LINES + 1:
            out.errors.append(f"more than {MAX_IMPORT_LINES} lines; split the file")
            break
        if not any((value or "").strip() for value in raw.values() if isinstance(value, str)):
            continue  # a blank line
        row, error = _row_parse(raw)
        if error is not None:
            out.errors.append(f"line {number}: {error}")
        elif row is not None:
            out.rows.append(row)
    if not out.rows and not out.errors:
        out.errors.append("the file has no data lines")
    return out


@transaction.atomic
def model_benchmarks_import(*, text: str) -> BenchmarkImport:
    """Parse a CSV and, if every line is good, create or update its scores."""
    result = benchmark_csv_parse(text)
    if result.errors:
        return result
    for row in result.rows:
        _, created = ModelBenchmark.objects.update_or_create(
            model=row["model"],
            benchmark=row["benchmark"],
            defaults={k: row[k] for k in ("score", "source_url", "as_of")},
        )
        if created:
            result.created += 1
        else:
            result.updated += 1
    return result


def benchmark_scores_all() -> dict[str, dict[str, Decimal]]:
    """Every score, as {lowercased model: {benchmark: score}} (global, not tenant data)."""
    scores: dict[str, dict[str, Decimal]] = {}
    for model, benchmark, score in ModelBenchmark.objects.values_list(
        "model", "benchmark", "score"
    ):
        scores.setdefault(model.lower(), {})[benchmark] = score
    return scores


def benchmarks_exist() -> bool:
    return ModelBenchmark.objects.exists()
