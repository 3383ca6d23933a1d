"""Settings for notifwatch, all from environment variables (see README, "Settings")."""

import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (a long random string), or DEBUG=1 for local work."
        )
    SECRET_KEY = "insecure-debug-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
NOTIFWATCH_BASE_URL = os.environ.get("NOTIFWATCH_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_filters",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "notifwatch.accounts",
    "notifwatch.ingest",
    "notifwatch.deliveries",
    "notifwatch.failures",
    "notifwatch.audit",
    "notifwatch.api",
    "notifwatch.worker",
    "notifwatch.alerts",
    "notifwatch.health",
    "notifwatch.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "notifwatch.accounts.middleware.TimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a locked-out sign-in into its page (notifwatch.accounts.signin.locked_out).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "notifwatch.urls"
WSGI_APPLICATION = "notifwatch.wsgi.application"

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
                "notifwatch.accounts.context_processors.role",
                "notifwatch.health.context_processors.health_banner",
            ],
        },
    },
]

# SQLite file in the project by default; PostgreSQL in production via DATABASE_URL.
# Persistent connections: without them webhook throughput drops ~5x (PERF notes).
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'var' / 'notifwatch.sqlite3'}",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker or an import writes; IMMEDIATE
    # transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file too: an in-memory database shares one cache between threads, which
    # fails concurrent writers at once instead of making them wait as production does.
    # One file per test run (the process id), so parallel runs never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}
    (BASE_DIR / "var").mkdir(exist_ok=True)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT compilation: the app's queries are short, and for an export's long scan JIT only
    # delays the first row (~300 ms at a million notifications; 30 ms without). Random reads
    # costed as on SSD (1.1, not the spinning-disk 4): the queue's counts then come from their
    # index, 34 ms → 8 ms of SQL per queue page at 50k exceptions (bench/review_bench.py).
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off -c random_page_cost=1.1")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): after NOTIFWATCH_LOGIN_FAILURE_LIMIT failed sign-ins for one
# username from one address, that pair is refused for NOTIFWATCH_LOGIN_LOCKOUT_MINUTES (further
# tries do not extend it); a successful sign-in clears the count. Every sign-in, failure and
# lockout is audited (notifwatch/accounts/signin.py).
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out pair before any password is checked.
    "notifwatch.accounts.signin.ThrottledBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("NOTIFWATCH_LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("NOTIFWATCH_LOGIN_LOCKOUT_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # the audit trail records sign-ins
AXES_VERBOSE = False  # no banner on every management command
# Lockouts last minutes and are in the audit trail; `manage.py axes_reset_username USER` lifts
# one at once. No admin pages for axes' own tables.
AXES_ENABLE_ADMIN = False
AXES_HANDLER = "notifwatch.accounts.signin.AuditedAxesHandler"
AXES_LOCKOUT_CALLABLE = "notifwatch.accounts.signin.locked_out"
AXES_CLIENT_IP_CALLABLE = "notifwatch.accounts.signin.client_address"
# Reverse proxies in front of the app that append the client's address to X-Forwarded-For
# (1 behind one nginx or Caddy). 0: the connection's own address, which cannot be forged.
NOTIFWATCH_PROXY_COUNT = int(os.environ.get("NOTIFWATCH_PROXY_COUNT", 0))

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
# Tests and `make demo` serve static files straight from static/ (no collectstatic needed);
# production serves the hashed, compressed copies collectstatic writes to STATIC_ROOT.
STATIC_FROM_FINDERS = DEBUG or env_bool("STATIC_FROM_FINDERS", False)
WHITENOISE_USE_FINDERS = STATIC_FROM_FINDERS
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if STATIC_FROM_FINDERS
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

if os.environ.get("EMAIL_URL", "").startswith("console:"):
    # EMAIL_URL=console: prints each message on standard output (make demo): nothing is sent.
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
elif os.environ.get("EMAIL_URL"):
    # smtp://user:pass@host:port, or smtp+tls:// for STARTTLS.
    _email = urlsplit(os.environ["EMAIL_URL"])
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or 25
    EMAIL_HOST_USER = unquote(_email.username or "")
    EMAIL_HOST_PASSWORD = unquote(_email.password or "")
    EMAIL_USE_TLS = _email.scheme == "smtp+tls"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "notifwatch@localhost")
# Alerts: the From address of alert emails, and how many sends are tried (with backoff 1, 2, 4,
# 8, 16 minutes) before an alert is marked failed and shown on the overview.
NOTIFWATCH_ALERT_FROM = os.environ.get("NOTIFWATCH_ALERT_FROM", "notifwatch@localhost")
NOTIFWATCH_ALERT_ATTEMPTS = int(os.environ.get("NOTIFWATCH_ALERT_ATTEMPTS", 6))

TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    }
}
# A task RUNNING for longer than this lost its worker (killed, machine gone) and is queued
# again by the worker's sweep; it must exceed the longest task.
NOTIFWATCH_STALE_TASK_SECONDS = int(os.environ.get("NOTIFWATCH_STALE_TASK_SECONDS", 15 * 60))
# A raw event that processing crashed on (left `received`) is retried by the worker this many
# times with backoff, then marked failed and counted on its source page and the overview.
NOTIFWATCH_RAW_RETRY_ATTEMPTS = int(os.environ.get("NOTIFWATCH_RAW_RETRY_ATTEMPTS", 5))
# notifwatch watching itself (/healthz, the red banner, health alerts): no worker heartbeat for
# this long is a stopped worker; no raw event from any source for this long is stopped ingestion.
NOTIFWATCH_WORKER_SILENT_SECONDS = int(os.environ.get("NOTIFWATCH_WORKER_SILENT_SECONDS", 120))
NOTIFWATCH_INGEST_SILENT_SECONDS = int(os.environ.get("NOTIFWATCH_INGEST_SILENT_SECONDS", 6 * 3600))
# Pinged (GET) after each successful detection pass, for an outside monitor (healthchecks.io).
NOTIFWATCH_HEARTBEAT_URL = os.environ.get("NOTIFWATCH_HEARTBEAT_URL", "")

# Ingest limits: a request body larger than this is answered 413 (and not stored).
NOTIFWATCH_MAX_BODY_BYTES = int(os.environ.get("NOTIFWATCH_MAX_BODY_BYTES", 5 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = NOTIFWATCH_MAX_BODY_BYTES + 1024
# Refused webhook calls kept (truncated) per source and hour; beyond that they are only counted.
NOTIFWATCH_REFUSED_BODIES_PER_HOUR = int(os.environ.get("NOTIFWATCH_REFUSED_BODIES_PER_HOUR", 100))

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # /healthz must answer plain HTTP probes from the load balancer.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Region assumed for phone numbers written without a country code.
NOTIFWATCH_PHONE_REGION = os.environ.get("NOTIFWATCH_PHONE_REGION", "US")
# Business hours per source slug, as JSON: {"crm": {"days": [0, 1, 2, 3, 4], "hours": [9, 17]}}
# (Monday is 0; hours in TIME_ZONE). Outside them silence is expected; inside, it is flagged.
NOTIFWATCH_SILENCE_SCHEDULES = json.loads(os.environ.get("NOTIFWATCH_SILENCE_SCHEDULES") or "{}")

# Amazon SES via SNS: confirm subscriptions by opening the SubscribeURL (only on an SNS host).
# Off by default: the source page shows the link for an admin to open instead.
NOTIFWATCH_SNS_AUTO_CONFIRM = env_bool("NOTIFWATCH_SNS_AUTO_CONFIRM", False)
# A folder of trusted SNS signing certificates (PEM files named by the last path segment of
# their SigningCertURL) for hosts that cannot download them from Amazon.
NOTIFWATCH_SNS_CERTS_DIR = os.environ.get("NOTIFWATCH_SNS_CERTS_DIR", "")

# Mailgun signs only a timestamp and a one-time token: a signed call whose timestamp is further
# than this from now is refused, and each token is accepted once within it (replays refused).
NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS = int(
    os.environ.get("NOTIFWATCH_MAILGUN_MAX_AGE_SECONDS", 15 * 60)
)

# Retention: raw payloads (bodies, headers, per-event provider payloads) are removed after this
# many days; notifications, delivery events and outcomes stay. Audit entries and review minutes
# are kept forever unless NOTIFWATCH_AUDIT_RETENTION_DAYS is set.
NOTIFWATCH_RAW_PAYLOAD_DAYS = int(os.environ.get("NOTIFWATCH_RAW_PAYLOAD_DAYS", 90))
NOTIFWATCH_AUDIT_RETENTION_DAYS = (
    int(os.environ["NOTIFWATCH_AUDIT_RETENTION_DAYS"])
    if os.environ.get("NOTIFWATCH_AUDIT_RETENTION_DAYS")
    else None
)

# Alerts: the impact at which a new exception alerts, per kind (JSON, e.g. {"delivery_failure": 5});
# kinds left out keep the defaults in notifwatch/alerts/triggers.py.
NOTIFWATCH_ALERT_THRESHOLDS = json.loads(os.environ.get("NOTIFWATCH_ALERT_THRESHOLDS") or "{}")
