"""Chorus settings.

Everything that differs between a laptop and production comes from the environment
through ``orchestrator.env`` helpers (see README "Configuration"). With no variables
set, Chorus runs embedded: SQLite, the django-q2 ORM broker and an in-memory channel
layer. ``DATABASE_URL`` switches to PostgreSQL and ``REDIS_URL`` to Redis for the
channel layer and the cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import (
    database_from_url,
    env_bool,
    env_fernet_keys,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CHORUS_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("CHORUS_PRODUCTION", False)
DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG: must be off when CHORUS_PRODUCTION is set")

_DEV_SECRET = "django-insecure-chorus-development-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", None if PRODUCTION else _DEV_SECRET, required=PRODUCTION)
# Keys the HMAC of suppressed identifiers (customers.models.hash_identifier). Never change
# it: every suppression hash was made with it, so a new key forgets every suppression.
_DEV_SUPPRESSION_HASH_KEY = "chorus-development-suppression-hash-key-do-not-use-in-production"
SUPPRESSION_HASH_KEY = env_str(
    "SUPPRESSION_HASH_KEY", None if PRODUCTION else _DEV_SUPPRESSION_HASH_KEY, required=PRODUCTION
)
# Encrypt provider secrets at rest (channels_app.crypto, which reads them on each use so a
# rotation needs no reload): checked here so production does not start without them.
CHORUS_SECRET_KEYS = env_fernet_keys("CHORUS_SECRET_KEYS", required=PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS: required when CHORUS_PRODUCTION is set")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The public base URL, used for links that leave Chorus (unsubscribe, webhooks).
PUBLIC_URL = env_str("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "servestatic.runserver_nostatic",
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
    "django_q",
    "channels",
    "django_htmx",
    "template_partials",
    "customers",
    "channels_app",
    "journeys",
    "orchestrator",
    "orchestrator.dashboards",
]

# Which server interface loaded these settings: orchestrator/wsgi.py sets "wsgi".
SERVER_INTERFACE = env_str("CHORUS_SERVER_INTERFACE", "asgi")
if SERVER_INTERFACE not in {"asgi", "wsgi"}:
    raise ImproperlyConfigured(f"CHORUS_SERVER_INTERFACE: expected asgi or wsgi, got {SERVER_INTERFACE!r}")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # servestatic's middleware is async-only: under WSGI it would force an event loop and
    # two thread hops onto every request, so the WSGI entry point wraps the app instead.
    *(["servestatic.middleware.ServeStaticMiddleware"] if SERVER_INTERFACE == "asgi" else []),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"
ASGI_APPLICATION = "orchestrator.asgi.application"

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
                "orchestrator.roles.roles_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
_FORKING_WORKER = len(sys.argv) > 1 and sys.argv[1] == "qcluster"
_database_url = env_str("DATABASE_URL")
if _database_url:
    _default_db = database_from_url("DATABASE_URL", _database_url)
    _default_db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
    _default_db["CONN_HEALTH_CHECKS"] = True
    if _default_db["ENGINE"].endswith("postgresql"):
        _default_db["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", f"test_{_default_db['NAME']}")}
        # No JIT: it compiles the measurement and dashboard queries (costed high, run in
        # 0.1-0.3 s) for 0.5 s or more before running them, and no query here runs long
        # enough to win it back (attribution across journeys: 250 ms without, 840 with).
        _default_db["OPTIONS"]["options"] = f"{_default_db['OPTIONS'].get('options', '')} -c jit=off".strip()
        # Under ASGI each request's sync code runs on its own thread, so Django's
        # persistent per-thread connections leak (one per request until the server hits
        # max_connections). A psycopg pool per process hands connections back instead.
        _pool_size = env_int("DB_POOL_MAX_SIZE", 8, minimum=0)
        # django-q2 forks its workers after the parent has opened the pool, and forked
        # children sharing the pool's sockets corrupt each other's sessions ("connection
        # in transaction status INTRANS"). Each worker is one thread: plain connections.
        if _FORKING_WORKER:
            _pool_size = 0
        if _pool_size:
            if _default_db["CONN_MAX_AGE"]:
                raise ImproperlyConfigured("DB_CONN_MAX_AGE: must be 0 while the connection pool is on (DB_POOL_MAX_SIZE > 0)")
            _default_db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": _pool_size, "timeout": 10}
elif PRODUCTION:
    raise ImproperlyConfigured("DATABASE_URL: required when CHORUS_PRODUCTION is set (postgres://…)")
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _default_db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "chorus.sqlite3",
        # WAL + a busy timeout let the web process and the worker share the file.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": VAR_DIR / f"{env_str('TEST_DATABASE_NAME', 'test')}.sqlite3"},
    }
DATABASES = {"default": _default_db}
# Covering indexes (INCLUDE) serve PostgreSQL's dashboards; SQLite, the embedded default,
# simply builds them without the extra columns, which is all its small workspaces need.
SILENCED_SYSTEM_CHECKS = [] if _default_db["ENGINE"].endswith("postgresql") else ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and cache ---------------------------------------------------
# Required in production: rate limits, key revocations and WebSocket pushes must reach
# every process on every host, which only a shared store does.
REDIS_URL = env_str("REDIS_URL", required=PRODUCTION)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "chorus",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- django-q2: the ORM broker on the project database --------------------------------
# retry > timeout so a slow task is never run twice; bounded attempts; our own tables
# own retries and backoff of sends (see CONVENTIONS.md).
Q_CLUSTER = {
    "name": "chorus",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": env_int("Q_TIMEOUT", 120, minimum=1),
    "retry": env_int("Q_TIMEOUT", 120, minimum=1) + 60,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "poll": 0.5,
    "label": "Task queue",
}
if env_bool("Q_SYNC", False):
    Q_CLUSTER["sync"] = True

# --- Journey engine ---------------------------------------------------------------------
# Called by ingestion, inside its transaction, with each request's stored events.
CHORUS_EVENT_LISTENERS = [
    "orchestrator.engine.events.on_events_stored",
    "orchestrator.intelligence.hooks.on_events_stored",
]
# Called by the message ledger, inside its transaction, with the messages it moved.
CHORUS_MESSAGE_LISTENERS = [
    "orchestrator.intelligence.hooks.on_messages_moved",  # the models follow the ledger
    # A journey message that failed for good tries the send node's next channel.
    "orchestrator.engine.fallback.on_messages_moved",
    "orchestrator.dashboards.rollups.on_messages_moved",  # the cadence dashboard's counts
]
# Called by customers.consent.do_erase_customer, inside its transaction, with the id of the
# customer about to be deleted with their messages.
CHORUS_ERASURE_LISTENERS = [
    "orchestrator.dashboards.rollups.on_customer_erasing",
    "orchestrator.api.messages.on_customer_erasing",  # the rendered content of their API sends
]
# Called after commit with a message id when a receipt, a tracked open or click, or the
# in-app inbox records an engagement: wakes journeys waiting on it.
CHORUS_ENGAGEMENT_LISTENERS = ["orchestrator.engine.events.on_message_engagement"]
# Run the engine's event work in the ingesting process instead of a django-q2 task. Tests
# set it so one call both ingests and advances; production leaves it off.
CHORUS_ENGINE_INLINE = env_bool("CHORUS_ENGINE_INLINE", False)
# Enrollments claimed per transaction by a worker.
CHORUS_ENGINE_BATCH_SIZE = env_int("CHORUS_ENGINE_BATCH_SIZE", 200, minimum=1)

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Shown to users who have no time zone of their own; customers' local times use theirs.
CHORUS_DEFAULT_TIMEZONE = env_str("CHORUS_DEFAULT_TIMEZONE", "UTC")
# Provider per channel, by name (channels_app.providers.PROVIDERS). The development
# outbox records messages instead of sending them.
CHORUS_PROVIDERS = {"email": "outbox", "sms": "outbox", "push": "outbox", "in_app": "outbox"}

# Delivery retries (channels_app.delivery): capped exponential backoff with full jitter,
# then failed; a provider's circuit opens after consecutive failures, probes after a cool-down.
CHORUS_RETRY_BASE_SECONDS = env_int("CHORUS_RETRY_BASE_SECONDS", 2, minimum=1)
CHORUS_RETRY_CAP_SECONDS = env_int("CHORUS_RETRY_CAP_SECONDS", 600, minimum=1)
CHORUS_RETRY_MAX_ATTEMPTS = env_int("CHORUS_RETRY_MAX_ATTEMPTS", 6, minimum=1)
CHORUS_BREAKER_FAILURES = env_int("CHORUS_BREAKER_FAILURES", 5, minimum=1)
CHORUS_BREAKER_COOLDOWN_SECONDS = env_int("CHORUS_BREAKER_COOLDOWN_SECONDS", 30, minimum=1)

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
SERVESTATIC_USE_FINDERS = not PRODUCTION
SERVESTATIC_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "servestatic.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orchestrator.api_keys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "orchestrator.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chorus API",
    "DESCRIPTION": "Ingestion (Segment tracking spec) and read API of Chorus.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Requests per minute allowed to one API key (fixed one-minute windows in the cache).
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 6000, minimum=1)
# Largest request body Django will read (the ingestion limits are tighter per field).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Production hardening -----------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
