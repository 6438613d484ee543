"""Each analytics module imports on its own: no import cycle hides behind
another module having been imported first (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, os, pkgutil, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
import analytics
names = sorted(
    m.name for m in pkgutil.walk_packages(analytics.__path__, "analytics.")
    if ".migrations" not in m.name
)
# Loaded by django.setup(): the app and its models stay (reloading models
# would register them twice); everything else is imported from scratch.
kept = {"analytics", "analytics.apps", "analytics.models"}
for name in names:
    for loaded in [m for m in sys.modules if m.startswith("analytics.") and m not in kept]:
        del sys.modules[loaded]
    importlib.import_module(name)
    print("ok", name)
"""


def test_each_analytics_module_imports_on_its_own():
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DEBUG": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok ")]
    for name in ("analytics.fold", "analytics.rollups", "analytics.services", "analytics.tasks"):
        assert name in imported
    assert len(imported) > 20
