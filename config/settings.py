"""AiSpendTrack settings: one module, driven by the environment.

Defaults work on a laptop (SQLite under var/, local-memory cache, a broker
that needs no server). Production sets DATABASE_URL, REDIS_URL, SECRET_KEY and
DEBUG=0; the module refuses to start with DEBUG off and no SECRET_KEY.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AISPENDTRACK_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    # `make run` and `make serve` keep one under var/: manage commands run
    # after them (bootstrap_org, reprice…) use it with no variable set by hand.
    path = VAR_DIR / "secret_key"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY to a long random "
            "string (`make serve` generates one under var/ for a laptop)."
        )
    # A laptop run: generate once, keep it so sessions survive restarts.
    if not path.exists():
        from django.core.management.utils import get_random_secret_key

        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "accounts",
    "pricing",
    "analytics",
    "alerts",
    "billing",
    "proxy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Security hardening (issue 9): NUL/control characters in path or query → 400.
    "config.inputguard.ControlCharacterMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.OrganizationMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organization",
                "billing.context_processors.plan",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# CONN_MAX_AGE stays 0: under ASGI persistent connections leak across threads.
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
# dumpdata/loaddata skip unmanaged models (a page's temporary table): config/dbrouter.py
DATABASE_ROUTERS = ["config.dbrouter.UnmanagedModelsRouter"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file-backed test database, so a server running in another thread or
    # process during tests sees the same rows; WAL so readers don't block writers.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Bounded database waits (issue 10: ledger integrity under faults) ---------
# A connect timeout everywhere; a statement timeout in the web processes
# (config.asgi / config.wsgi set AISPENDTRACK_WEB_PROCESS) so that a page or
# API request never waits on the database for long, while Celery tasks and
# management commands (rebuilds, re-pricing) may run long statements.
# config.dbguard bounds waits on a connection the network black-holes.
AISPENDTRACK_DB_CONNECT_TIMEOUT = env_float("AISPENDTRACK_DB_CONNECT_TIMEOUT", 3.0)
AISPENDTRACK_DB_STATEMENT_TIMEOUT = env_float("AISPENDTRACK_DB_STATEMENT_TIMEOUT", 10.0)
# PostgreSQL's JIT compiles a plan whose estimated cost passes jit_above_cost:
# ~20–30 ms a statement, which a dashboard statement over a few thousand rows
# never earns back (an overview filtered to 10k calls of 10M: 530 → 320 ms).
AISPENDTRACK_DB_JIT = env_bool("AISPENDTRACK_DB_JIT", False)
# The longest one ledger write (a batch of events + rollups) may take before
# the writer gives up on it; the batch waits in the hand-off queue.
AISPENDTRACK_LEDGER_WRITE_TIMEOUT = env_float("AISPENDTRACK_LEDGER_WRITE_TIMEOUT", 5.0)
# A cold API key lookup in the proxy: past this the caller gets a 503.
AISPENDTRACK_KEY_LOOKUP_TIMEOUT = env_float("AISPENDTRACK_KEY_LOOKUP_TIMEOUT", 3.0)
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    # libpq counts whole seconds (and treats 1 as 2).
    _db_options.setdefault("connect_timeout", max(1, round(AISPENDTRACK_DB_CONNECT_TIMEOUT)))
    # A network path that drops packets (a firewall, a dead host) is noticed by
    # the kernel: unacknowledged data fails after 10 s, an idle connection is
    # probed after 5 s. (A relay that acknowledges and holds is what
    # config.dbguard is for.)
    _db_options.setdefault("keepalives", 1)
    _db_options.setdefault("keepalives_idle", 5)
    _db_options.setdefault("keepalives_interval", 2)
    _db_options.setdefault("keepalives_count", 3)
    _db_options.setdefault("tcp_user_timeout", 10_000)
    _server_settings = [] if AISPENDTRACK_DB_JIT else ["-c jit=off"]
    if env_bool("AISPENDTRACK_WEB_PROCESS", False) and AISPENDTRACK_DB_STATEMENT_TIMEOUT > 0:
        _server_settings.append(
            f"-c statement_timeout={int(AISPENDTRACK_DB_STATEMENT_TIMEOUT * 1000)}"
        )
    if _server_settings:
        _db_options.setdefault("options", " ".join(_server_settings))

# --- Cache and Celery ---------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            # Redis is an accelerator: a Redis outage answers as cache misses
            # (config.cache), and a Redis that does not answer costs ≤ 0.5 s once.
            "BACKEND": "config.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ast",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    # Publishing a task with the broker down fails after ~1 s instead of hanging
    # the request; workers reconnect on their own when Redis is back.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
    }
    CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2}
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # No broker server on a laptop: kombu's filesystem transport under var/.
    _broker_dir = VAR_DIR / "celery" / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "store_processed": False,
        # exchange tables; kombu's default is ./control in the working directory
        "control_folder": str(VAR_DIR / "celery" / "control"),
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Auth and accounts (django-allauth) ---------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = os.environ.get(
    "ACCOUNT_EMAIL_VERIFICATION", "optional" if DEBUG else "mandatory"
)
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Email --------------------------------------------------------------------
# No EMAIL_HOST: the console when DEBUG is on; with DEBUG off, messages are kept
# under var/mail/ and never logged (they carry reset and invitation links).
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "config.mail.UnsentMailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "AiSpendTrack <noreply@localhost>")

# --- Internationalisation -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on a missing root before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "accounts.permissions.HasOrganization",
        "billing.permissions.PlanFeature",  # the plan must include the REST API (issue 15)
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AiSpendTrack API",
    "DESCRIPTION": "What your LLM API calls cost, by model, customer, feature and key.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files: self-hosted installs may have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Deployment security (issue 9) ---------------------------------------------
# AISPENDTRACK_HTTPS=1 says users reach the site over HTTPS (normally through a
# TLS-terminating reverse proxy): redirect HTTP to HTTPS, send HSTS, mark
# cookies Secure, and trust the proxy's X-Forwarded-Proto (the proxy must set
# it and drop any copy a client sends). Off (the default, and `make serve` on
# plain http://): cookies without Secure, or the browser would never send them back.
AISPENDTRACK_HTTPS = env_bool("AISPENDTRACK_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", AISPENDTRACK_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", AISPENDTRACK_HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if AISPENDTRACK_HTTPS:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
    SECURE_HSTS_SECONDS = int(os.environ.get("AISPENDTRACK_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("AISPENDTRACK_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("AISPENDTRACK_HSTS_PRELOAD", False)
_proxy_ssl_header = os.environ.get(
    "AISPENDTRACK_PROXY_SSL_HEADER", "X-Forwarded-Proto" if AISPENDTRACK_HTTPS else ""
)
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")

# Content-Security-Policy (django-csp) on every Django page, admin and API docs
# included: scripts only from our own files (no inline scripts or handlers).
# Inline style attributes stay allowed (Chart.js and Swagger UI set them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# /api/schema and /api/docs: public (the default) or for signed-in users and keys only.
AISPENDTRACK_PUBLIC_API_DOCS = env_bool("AISPENDTRACK_PUBLIC_API_DOCS", True)

# --- Logging ------------------------------------------------------------------
# The proxy logs a line per call on its event loop: records skip what the
# format never prints (the Logging HOWTO's "Optimization": caller frame,
# thread, process), ~35 % of a record's cost.
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False
logging._srcfile = None
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "config.buffered_log.SecondCachedFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # The line per proxied call: written in batches (config/buffered_log.py).
        "calls": {"class": "config.buffered_log.BufferedStreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "aispendtrack.calls": {
            "level": os.environ.get("AISPENDTRACK_CALL_LOG_LEVEL", "INFO"),
            "handlers": ["calls"],
            "propagate": False,
        },
    },
}

# --- AiSpendTrack -------------------------------------------------------------
AISPENDTRACK_UPSTREAM_OPENAI = os.environ.get(
    "AISPENDTRACK_UPSTREAM_OPENAI", "https://api.openai.com"
)
AISPENDTRACK_UPSTREAM_ANTHROPIC = os.environ.get(
    "AISPENDTRACK_UPSTREAM_ANTHROPIC", "https://api.anthropic.com"
)
AISPENDTRACK_UPSTREAM_GEMINI = os.environ.get(
    "AISPENDTRACK_UPSTREAM_GEMINI", "https://generativelanguage.googleapis.com"
)
AISPENDTRACK_CONNECT_TIMEOUT = env_float("AISPENDTRACK_CONNECT_TIMEOUT", 10.0)
# Reasoning models can think for minutes before the first byte.
AISPENDTRACK_READ_TIMEOUT = env_float("AISPENDTRACK_READ_TIMEOUT", 600.0)
# How long a worker trusts its in-process copy of an API key before asking the
# shared cache again: the longest a revoke takes to reach other workers.
AISPENDTRACK_KEY_CACHE_SECONDS = env_float("AISPENDTRACK_KEY_CACHE_SECONDS", 2.0)
# The ledger writer (`manage.py ledger_writer`, proxy.writer) looks for new
# records this often and writes them in batches of at most this many.
AISPENDTRACK_FLUSH_INTERVAL = env_float("AISPENDTRACK_FLUSH_INTERVAL", 0.5)
AISPENDTRACK_FLUSH_MAX_EVENTS = int(os.environ.get("AISPENDTRACK_FLUSH_MAX_EVENTS", "2000"))
# Web workers hand records to the writer through append-only files here (local
# disk of this host: one writer per host reads them); a file is rotated past this size.
AISPENDTRACK_QUEUE_DIR = Path(os.environ.get("AISPENDTRACK_QUEUE_DIR", VAR_DIR / "queue"))
AISPENDTRACK_QUEUE_FILE_MB = env_float("AISPENDTRACK_QUEUE_FILE_MB", 64.0)
# Dead letters (dead/) and spool files of versions before the queue.
AISPENDTRACK_SPOOL_DIR = Path(os.environ.get("AISPENDTRACK_SPOOL_DIR", VAR_DIR / "spool"))
AISPENDTRACK_PRICES_ONLINE_UPDATE = env_bool("AISPENDTRACK_PRICES_ONLINE_UPDATE", False)
AISPENDTRACK_INVITE_DAYS = int(os.environ.get("AISPENDTRACK_INVITE_DAYS", "7"))
AISPENDTRACK_PUBLIC_URL = os.environ.get("AISPENDTRACK_PUBLIC_URL", "")

# --- Cost simulator and margin (issue 13) -----------------------------------------
# The simulator hides a candidate more than this many percent below the current
# model's score on a benchmark both have (pricing.ModelBenchmark).
AISPENDTRACK_SIMULATOR_MAX_SCORE_DROP = env_float("AISPENDTRACK_SIMULATOR_MAX_SCORE_DROP", 10.0)

# --- Rollup fold (issue 11): derived rollups follow the hourly ones ------------
# How often `manage.py rollups_fold --loop` (and Celery beat) folds the delta
# log into the daily / coarse / per-customer tables; dashboards lag by at most
# about this much plus one fold.
AISPENDTRACK_FOLD_INTERVAL = env_float("AISPENDTRACK_FOLD_INTERVAL", 2.0)
# Open live pages of one organization share its marker this long (0: each poll
# reads it); analytics.selectors.events.live_marker.
AISPENDTRACK_LIVE_MARKER_SECONDS = env_float("AISPENDTRACK_LIVE_MARKER_SECONDS", 1.0)
# A live page's refresh (its #live block) is rendered once per organization,
# role and URL and shared by its open tabs this long (0: each tab renders its
# own); analytics/views/live_fragment.py.
AISPENDTRACK_LIVE_FRAGMENT_SECONDS = env_float("AISPENDTRACK_LIVE_FRAGMENT_SECONDS", 5.0)
# Polls of live pages are answered beside Django's middleware stack, on a
# thread with its own database connection (proxy/live.py); off: by Django.
AISPENDTRACK_LIVE_LEAN = env_bool("AISPENDTRACK_LIVE_LEAN", True)

# --- Billing: plans, Stripe, retention (issue 15) -------------------------------
# off (self-hosting, the default): every organization is on the unlimited
# "Self-hosted" plan and no page mentions prices. on (a hosted service): new
# organizations start on Free, plan limits are enforced in the proxy, Stripe bills.
AISPENDTRACK_BILLING = env_bool("AISPENDTRACK_BILLING", False)
# Raw-call retention for every organization while billing is off (empty: forever).
AISPENDTRACK_RETENTION_DAYS: int | None = (
    int(os.environ["AISPENDTRACK_RETENTION_DAYS"])
    if os.environ.get("AISPENDTRACK_RETENTION_DAYS")
    else None
)
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_PRICE_PRO = os.environ.get("STRIPE_PRICE_PRO", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com")
# GDPR exports (zip files) live here for 24 hours.
AISPENDTRACK_EXPORT_DIR = Path(os.environ.get("AISPENDTRACK_EXPORT_DIR", VAR_DIR / "exports"))

# --- Request limits (issue 9; enforced by config/httpguard.py and the proxy) ----
# What one client can make a worker hold: head size and read deadlines, open
# connections, and the size of a proxied request body.
AISPENDTRACK_MAX_HEADER_KB = int(os.environ.get("AISPENDTRACK_MAX_HEADER_KB", "64"))
AISPENDTRACK_HEADER_TIMEOUT = env_float("AISPENDTRACK_HEADER_TIMEOUT", 10.0)
AISPENDTRACK_BODY_TIMEOUT = env_float("AISPENDTRACK_BODY_TIMEOUT", 60.0)
AISPENDTRACK_MAX_CONNECTIONS = int(os.environ.get("AISPENDTRACK_MAX_CONNECTIONS", "1000"))
AISPENDTRACK_MAX_BODY_MB = env_float("AISPENDTRACK_MAX_BODY_MB", 64.0)

# --- Budgets, alerts, anomaly detection (issue 14) ----------------------------
# Webhook and Slack URLs may reach loopback/private addresses (self-hosters, tests).
AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE = env_bool("AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE", False)
# How often each proxy worker shares budget spend (Redis) and reloads budgets.
AISPENDTRACK_BUDGET_SYNC_SECONDS = env_float("AISPENDTRACK_BUDGET_SYNC_SECONDS", 0.05)
AISPENDTRACK_BUDGET_RELOAD_SECONDS = env_float("AISPENDTRACK_BUDGET_RELOAD_SECONDS", 5.0)
# How often the spend counters are reconciled with the ledger.
AISPENDTRACK_BUDGET_RECONCILE_SECONDS = env_float("AISPENDTRACK_BUDGET_RECONCILE_SECONDS", 30.0)
# Delivery retries: first after this many seconds, doubling, for this many hours.
AISPENDTRACK_ALERT_RETRY_BASE_SECONDS = env_float("AISPENDTRACK_ALERT_RETRY_BASE_SECONDS", 30.0)
AISPENDTRACK_ALERT_RETRY_HOURS = env_float("AISPENDTRACK_ALERT_RETRY_HOURS", 24.0)
AISPENDTRACK_ALERT_TIMEOUT = env_float("AISPENDTRACK_ALERT_TIMEOUT", 10.0)
# Anomaly alerts fire only when today's spend is above this floor (USD).
AISPENDTRACK_ANOMALY_FLOOR = os.environ.get("AISPENDTRACK_ANOMALY_FLOOR", "1")

# --- Security hardening (issue 9, sec9b) ----------------------------------------
# Registered providers' base URLs may reach loopback/private/link-local/metadata
# addresses only when this is on (self-hosters with local models).
AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS = env_bool("AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS", False)
# Proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated);
# empty: the connection's own address is the client's (config/clientip.py).
AISPENDTRACK_TRUSTED_PROXIES = env_list("AISPENDTRACK_TRUSTED_PROXIES", "")
# Login throttles (allauth's, also applied to /admin/login/): failed attempts count
# per account + client IP, so one attacker cannot lock out everyone behind a NAT
# nor lock a victim out from elsewhere; the per-IP cap only stops floods.
ACCOUNT_RATE_LIMITS = {
    "login": os.environ.get("AISPENDTRACK_LOGIN_RATE", "120/m/ip"),
    "login_failed": os.environ.get("AISPENDTRACK_LOGIN_FAILED_RATE", "5/5m/key"),
}
