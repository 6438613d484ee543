"""Production mode: static files with hashed names, the secret key kept under
var/, our own 404/500 pages and favicon, and mail that never leaks a secret
into the log."""

from __future__ import annotations

import email
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from accounts.models import Role

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
REFERENCE = re.compile(rb"sourceMappingURL=([^\s*]+)|url\(\s*['\"]?([^'\")]+)")


def test_every_reference_in_our_static_files_is_vendored():
    """WhiteNoise's manifest storage refuses a file that names a missing one
    (that stopped `make serve`); check ours the same way, independently."""
    for path in STATIC.rglob("*"):
        if path.suffix not in {".js", ".css"}:
            continue
        for match in REFERENCE.finditer(path.read_bytes()):
            target = (match.group(1) or match.group(2)).decode()
            if target.startswith(("data:", "http:", "https:", "#")):
                continue
            assert (path.parent / target.split("?")[0]).exists(), f"{path} names {target}"
    # Chart.js named a source map that is not vendored; the reference is gone.
    assert b"sourceMappingURL" not in (STATIC / "vendor/chartjs/chart.umd.min.js").read_bytes()
    assert "sourceMappingURL" in (STATIC / "vendor" / "README.md").read_text()


def test_collectstatic_writes_hashed_names_with_the_production_storage(tmp_path):
    storage = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storage):
        call_command("collectstatic", "--noinput", verbosity=0)
    hashed = [p.name for p in (tmp_path / "vendor" / "chartjs").iterdir()]
    assert any(re.fullmatch(r"chart\.umd\.min\.[0-9a-f]{12}\.js", name) for name in hashed)
    assert (tmp_path / "staticfiles.json").exists()


def _settings_in_subprocess(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    environment.update(AISPENDTRACK_VAR_DIR=str(tmp_path), DEBUG="0", **env)
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_use_the_key_kept_under_var_when_secret_key_is_unset(tmp_path):
    """After `make run` or `make serve`, manage commands need no variable set by hand."""
    (tmp_path / "secret_key").write_text("kept-by-make-serve-0123456789\n")
    done = _settings_in_subprocess(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kept-by-make-serve-0123456789"
    # SECRET_KEY, when set, still wins.
    done = _settings_in_subprocess(tmp_path, SECRET_KEY="from-the-environment")
    assert done.stdout.strip() == "from-the-environment"


def test_settings_refuse_to_start_with_debug_off_and_no_key_at_all(tmp_path):
    done = _settings_in_subprocess(tmp_path)
    assert done.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in done.stderr


@pytest.mark.django_db
def test_404_page_is_in_the_products_style(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body
    assert "css/app.css" in body and "favicon.svg" in body


@pytest.mark.django_db
@pytest.mark.urls("tests.config.urls_failing")
def test_500_page_is_in_the_products_style(client):
    client.raise_request_exception = False
    response = client.get("/fails/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert "css/app.css" in body
    assert "a bug, on purpose" not in body


@pytest.mark.django_db
def test_favicon_is_served_for_pages_that_name_none(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content)


def _secrets_in(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


@pytest.mark.django_db
def test_no_reset_link_invitation_link_or_raw_key_reaches_the_log(
    owner_client, owner, tmp_path, caplog, capfd
):
    """With DEBUG off and no EMAIL_HOST, mail is kept under var/mail/ (0600) and
    only its recipients and subject are logged. Grep everything the process
    wrote to its log and streams for the secrets the flows produced."""
    caplog.set_level(logging.DEBUG)
    with override_settings(EMAIL_BACKEND="config.mail.UnsentMailBackend", VAR_DIR=tmp_path):
        owner_client.post(reverse("team"), {"email": "new@acme.test", "role": Role.MEMBER})
        created = owner_client.post(reverse("api_keys"), {"name": "ci", "scopes": ["proxy"]})
        owner_client.logout()
        owner_client.post(reverse("account_reset_password"), {"email": owner.email})

    kept = sorted((tmp_path / "mail").iterdir())
    assert len(kept) == 2
    assert all(path.stat().st_mode & 0o077 == 0 for path in kept)
    bodies = [
        email.message_from_bytes(path.read_bytes()).get_payload(decode=True).decode()
        for path in kept
    ]
    links = [m.group(0) for body in bodies for m in re.finditer(r"https?://\S+", body)]
    invite = [link for link in links if "/invite/" in link]
    reset = [link for link in links if "/password/reset/" in link]
    assert invite and reset
    secrets = [link.rstrip("/").rsplit("/", 1)[-1] for link in invite]
    secrets += [link.rstrip("/").rsplit("/", 2)[-1] for link in reset]
    raw_keys = set(re.findall(r"ask_[A-Za-z0-9_\-]{40,}", created.content.decode()))
    assert len(raw_keys) == 1  # the new key, shown once on the page (in several snippets)
    secrets += raw_keys
    assert len(secrets) == 3

    out, err = capfd.readouterr()
    log = caplog.text + out + err
    assert "mail not sent (no EMAIL_HOST)" in caplog.text
    assert _secrets_in(log, secrets) == []


# The production settings README documents ("Production"), minus the secrets.
PRODUCTION = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "spend.example.com,testserver",
    "CSRF_TRUSTED_ORIGINS": "https://spend.example.com",
    "AISPENDTRACK_HTTPS": "1",
    "AISPENDTRACK_HSTS_PRELOAD": "1",
    "EMAIL_HOST": "smtp.example.com",
}


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    environment.update(PRODUCTION, AISPENDTRACK_VAR_DIR=str(tmp_path), **extra)
    environment["SECRET_KEY"] = "a-long-random-production-key-" + "x7Qk2" * 10
    return environment


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


HTTPS_PROBE = """
from django.test import Client
plain = Client().get("/api/schema")
tls = Client().get("/api/schema", headers={"x-forwarded-proto": "https"})
health = Client().get("/healthz")
print(plain.status_code, plain["Location"])
print(tls.status_code, tls.get("Strict-Transport-Security"))
print(health.status_code, health.get("Location"))
print(tls.get("Content-Security-Policy"))
"""


def test_https_mode_redirects_sends_hsts_and_trusts_the_proxys_proto_header(tmp_path):
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import django; django.setup()\n" + HTTPS_PROBE],
        cwd=ROOT,
        env={**_production_env(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plain, tls, health, policy = done.stdout.strip().splitlines()
    assert plain == "301 https://testserver/api/schema"
    assert tls == "200 max-age=31536000; includeSubDomains; preload"
    # /healthz is exempt: load balancers probe it over plain HTTP (it answers
    # 200 or 503 here, its database being empty, but never a redirect).
    assert health.split()[1] == "None"
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]


@pytest.mark.django_db
def test_api_docs_are_public_by_default_and_private_on_request(client, owner):
    assert client.get("/api/schema").status_code == 200
    assert client.get("/api/docs").status_code == 200
    with override_settings(AISPENDTRACK_PUBLIC_API_DOCS=False):
        assert client.get("/api/schema").status_code in {401, 403}
        assert client.get("/api/docs").status_code in {401, 403}
        client.force_login(owner)
        assert client.get("/api/schema").status_code == 200
        assert client.get("/api/docs").status_code == 200


SHOW_SERVER_SETTINGS = (
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    "    for name in ('jit', 'statement_timeout'):\n"
    "        cursor.execute('SHOW ' + name)\n"
    "        print(name, cursor.fetchone()[0])\n"
)


def _server_settings(tmp_path: Path, **env: str) -> dict[str, str]:
    (tmp_path / "secret_key").write_text("kept-by-make-serve-0123456789\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AISPENDTRACK_")}
    environment.update(AISPENDTRACK_VAR_DIR=str(tmp_path), DEBUG="0", **env)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import django; django.setup()\n" + SHOW_SERVER_SETTINGS],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="PostgreSQL settings"
)
def test_postgresql_connections_run_without_jit_and_web_ones_with_a_statement_timeout(tmp_path):
    """JIT compiled each dashboard statement over a few thousand rows for
    ~20–30 ms (bench/RESULTS.md): off on every connection unless asked for.
    The server's own default (PostgreSQL 15: on) is the oracle for "asked for"."""
    web = _server_settings(tmp_path, AISPENDTRACK_WEB_PROCESS="1")
    assert web == {"jit": "off", "statement_timeout": "10s"}
    other = _server_settings(tmp_path)
    assert other == {"jit": "off", "statement_timeout": "0"}
    asked = _server_settings(tmp_path, AISPENDTRACK_DB_JIT="1")
    assert asked["jit"] == "on"
