"""Settings for the console. This is the one place that reads the environment.

With no environment at all the console runs embedded (SQLite, a filesystem Celery broker, the Evolution
sandbox on 127.0.0.1:8081), so `make dev` works on a fresh machine. Production sets DATABASE_URL, REDIS_URL
and the Evolution variables; see .env.example and the README for every variable.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Embedded mode keeps its SQLite file and broker folders here (ignored by git).
VAR_DIR = Path(os.environ.get("CONSOLE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Django core ---------------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
# The key below is in the repository, so only development (DEBUG on: `make dev`) may use it; anywhere else the console
# refuses to start without a key of its own. Its "django-insecure-" prefix also makes `check --deploy` refuse it.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or ""
if not DEBUG and (not SECRET_KEY or SECRET_KEY.startswith("django-insecure-")):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or is a development key) and DJANGO_DEBUG is off: set it to a long random "
        'string, e.g. python3 -c "import secrets; print(secrets.token_urlsafe(50))", or DJANGO_DEBUG=true for '
        "development. `make test` and the benchmarks set a key of their own."
    )
SECRET_KEY = SECRET_KEY or "django-insecure-dev-key-change-me-in-production-0123456789abcdef"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    "evolution",
    "messaging",
    "inbound",
    "access",
    "campaigns",
    "callbacks",
    "axes",  # admin login lockouts; last, as django-axes asks
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy everywhere, Cache-Control: no-store on the API's JSON (Django 5.2 has neither).
    "config.security.SecurityHeadersMiddleware",
    "messaging.api.errors.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times in the admin are shown and read in each operator's own time zone (browser's, via a cookie).
    "messaging.timezones.OperatorTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Every admin changelist: a NUL byte in its query or a non-id in an action's selection is a message, not a 500.
    "messaging.admin.guards.ChangelistGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a login refused by the lockout backend into its 429 page; last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = False  # the API's paths have no trailing slash (POST /messages)
# The largest valid request is a full POST /messages/bulk: 1,000 texts of 4,096 emoji, each escaped by common
# clients as a 12-byte surrogate pair ("\\ud83d\\ude00"), about 49.4 MB. Anything larger is refused with a 413.
API_MAX_BODY_BYTES = 52 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

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
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
            conn_health_checks=True,
        )
    }
    # With PostgreSQL unreachable, a request fails in seconds (a 503, messaging/api/errors.py) instead of
    # hanging; 2 s is libpq's minimum. A connect_timeout in DATABASE_URL's query string wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "console.sqlite3",
            # web, worker and beat share the file: wait for locks instead of failing, and take the write lock
            # up front so two writers never deadlock on an upgrade from read to write.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies after collectstatic (the Docker image runs it); no manifest, so a checkout that never
    # ran collectstatic (make dev, the tests) renders pages too.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the apps' static folders as well, for the same reason.
WHITENOISE_USE_FINDERS = True

# --- REST API ------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # API clients' keys (access/), then people's: a DRF token, or the admin session in the browsable API.
        "access.authentication.ApiClientAuthentication",
        "access.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "messaging.api.errors.exception_handler",
    # Per signed-in caller (an API client, a token, a session), counted in the shared cache: 429 + Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["access.throttles.CallerRateThrottle", "access.throttles.MessageRateThrottle"],
    # On POST /messages and /messages/bulk, also messages per caller, a bulk counting its items; "off" = no limit
    # (empty is the default, as for every variable compose passes through).
    "DEFAULT_THROTTLE_RATES": {
        "caller": os.environ.get("API_THROTTLE_RATE") or "6000/min",
        "messages": None if os.environ.get("API_MESSAGE_RATE") == "off" else os.environ.get("API_MESSAGE_RATE") or "600/min",
    },
    "DEFAULT_PARSER_CLASSES": [
        "messaging.api.parsers.JSONBodyParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "WhatsApp messaging console API",
    "DESCRIPTION": "Send transactional WhatsApp messages through Evolution API and follow every attempt.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: the docs work with no network access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation also documents the errors it shares with the others (400, 401, 403, 404, ...).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "messaging.api.schema.add_shared_errors",
    ],
    # Messages, campaigns and runs each have a "status": each its own named enum.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "messaging.models.MessageStatus",  # the name it had before campaigns came
        "CampaignStatusEnum": "campaigns.models.CampaignStatus",
        "RunStatusEnum": "campaigns.models.RunStatus",
    },
}

# --- Evolution API -------------------------------------------------------------------------------------------
EVOLUTION_API_URL = os.environ.get("EVOLUTION_API_URL", "http://127.0.0.1:8081").rstrip("/")
EVOLUTION_API_KEY = os.environ.get("EVOLUTION_API_KEY", "sandbox-key")
EVOLUTION_INSTANCE_NAME = os.environ.get("EVOLUTION_INSTANCE_NAME", "console")
# Every instance the console may send through; the default one is always included.
EVOLUTION_INSTANCES = list(dict.fromkeys([EVOLUTION_INSTANCE_NAME, *env_list("EVOLUTION_INSTANCES")]))
EVOLUTION_TIMEOUT_SECONDS = float(os.environ.get("EVOLUTION_TIMEOUT_SECONDS", "15"))
EVOLUTION_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("EVOLUTION_CONNECT_TIMEOUT_SECONDS", "3"))
# Pacing per instance (evolution/throttle.py), kept in Redis for every worker: "20/m", "1/s"; empty = no pacing.
EVOLUTION_RATE_LIMIT = os.environ.get("EVOLUTION_RATE_LIMIT", "")
# Per-instance overrides of EVOLUTION_RATE_LIMIT: "sales=1/s,support=30/m" ("sales=" turns one instance's off).
EVOLUTION_RATE_LIMITS = dict(item.split("=", 1) for item in env_list("EVOLUTION_RATE_LIMITS") if "=" in item)
# Up to this many random seconds added after each paced send, so the pace does not look machine-made.
EVOLUTION_SEND_JITTER_SECONDS = float(os.environ.get("EVOLUTION_SEND_JITTER_SECONDS") or 0)
PACING_KEY_PREFIX = os.environ.get("PACING_KEY_PREFIX") or "console:pacing"

# --- Messaging -----------------------------------------------------------------------------------------------
MESSAGING_MAX_RETRIES = int(os.environ.get("MESSAGING_MAX_RETRIES", "3"))
MESSAGING_RETRY_DELAY_SECONDS = float(os.environ.get("MESSAGING_RETRY_DELAY_SECONDS", "5"))
MESSAGING_MAX_TEXT_LENGTH = 4096
# Phones typed without "+" are read in this region first (e.g. "BR"); empty means "digits are already E.164".
MESSAGING_DEFAULT_REGION = os.environ.get("MESSAGING_DEFAULT_REGION", "") or None
# How often celery-beat looks for due scheduled messages, and when queued/sending work counts as stuck.
MESSAGING_DISPATCH_INTERVAL_SECONDS = float(os.environ.get("MESSAGING_DISPATCH_INTERVAL_SECONDS", "5"))
MESSAGING_STUCK_AFTER_SECONDS = int(os.environ.get("MESSAGING_STUCK_AFTER_SECONDS", "300"))
# How often beat's stuck-work sweep runs: it republishes what a broker outage or flush lost, and takes over the
# sends of workers whose heartbeat stopped, so its interval bounds how soon that happens.
MESSAGING_SWEEP_INTERVAL_SECONDS = float(os.environ.get("MESSAGING_SWEEP_INTERVAL_SECONDS") or 15)
# Each worker process's heartbeat in Redis lives this long and is renewed every quarter of it: a send whose worker
# has had no heartbeat for this long is taken over (messaging/heartbeats.py).
MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS = float(os.environ.get("MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS") or 20)
# Bulk messages of one instance sent per task run (messaging/tasks.py, send_bulk_messages): Celery's own work per
# task was most of a worker's CPU per send. 1 gives every bulk message a task of its own.
MESSAGING_BULK_BATCH_SIZE = int(os.environ.get("MESSAGING_BULK_BATCH_SIZE") or 10)
# Beat deletes attempts, and sent/failed/cancelled messages, older than this once a day; 0 keeps everything.
MESSAGING_RETENTION_DAYS = int(os.environ.get("MESSAGING_RETENTION_DAYS") or 90)
# A send must always end before the sweeper may take it for dead, or the message could go out twice.
if MESSAGING_STUCK_AFTER_SECONDS <= 4 * (EVOLUTION_TIMEOUT_SECONDS + EVOLUTION_CONNECT_TIMEOUT_SECONDS):
    raise ImproperlyConfigured(
        "MESSAGING_STUCK_AFTER_SECONDS must be more than 4 x (EVOLUTION_TIMEOUT_SECONDS + "
        "EVOLUTION_CONNECT_TIMEOUT_SECONDS)"
    )
# "fixed": every retry waits MESSAGING_RETRY_DELAY_SECONDS; "exponential": base x 2^(attempt-1) x a random 0.5-1.5,
# at most MESSAGING_RETRY_MAX_DELAY_SECONDS. A 429's Retry-After is honoured up to that cap too.
MESSAGING_RETRY_BACKOFF = os.environ.get("MESSAGING_RETRY_BACKOFF", "").strip().lower() or "fixed"
MESSAGING_RETRY_MAX_DELAY_SECONDS = float(
    os.environ.get("MESSAGING_RETRY_MAX_DELAY_SECONDS") or min(300, MESSAGING_STUCK_AFTER_SECONDS)
)
if MESSAGING_RETRY_BACKOFF not in ("fixed", "exponential"):
    raise ImproperlyConfigured('MESSAGING_RETRY_BACKOFF must be "fixed" or "exponential"')
# A retry waits as a countdown in a worker's memory; one longer than the sweeper's cutoff would outlast the time
# the console promises to recover lost work in, and the delay must fit under its own cap.
if not (0 < MESSAGING_RETRY_DELAY_SECONDS <= MESSAGING_RETRY_MAX_DELAY_SECONDS <= MESSAGING_STUCK_AFTER_SECONDS):
    raise ImproperlyConfigured(
        "Retry delays must satisfy 0 < MESSAGING_RETRY_DELAY_SECONDS <= MESSAGING_RETRY_MAX_DELAY_SECONDS <= "
        "MESSAGING_STUCK_AFTER_SECONDS"
    )

# --- Replies, receipts and opt-outs (inbound/) --------------------------------------------------------------
# The address Evolution API reaches the console at; `manage.py evolution_webhooks` registers
# <CONSOLE_PUBLIC_URL>/webhooks/evolution/<instance> on each instance. Empty: no registration.
CONSOLE_PUBLIC_URL = os.environ.get("CONSOLE_PUBLIC_URL", "").strip().rstrip("/")
# A contact's messages are processed together once the contact has been quiet this long; each message restarts it.
INBOUND_DEBOUNCE_SECONDS = float(os.environ.get("INBOUND_DEBOUNCE_SECONDS") or 10)
if INBOUND_DEBOUNCE_SECONDS <= 0:
    raise ImproperlyConfigured("INBOUND_DEBOUNCE_SECONDS must be more than 0")
# Beat's nightly retention deletes replies, finished batches, processed raw webhook events and receipts older than
# this; 0 keeps everything. Opt-outs are kept whatever their age.
INBOUND_RETENTION_DAYS = int(os.environ.get("INBOUND_RETENTION_DAYS") or 90)

# --- Status callbacks to integrators (callbacks/) ------------------------------------------------------------
# Each POST to a message's callback_url waits this long for an answer.
CALLBACK_TIMEOUT_SECONDS = float(os.environ.get("CALLBACK_TIMEOUT_SECONDS") or 5)
# A failed callback (5xx, 408, 429, no answer) is tried again after this, doubling each time up to the maximum...
CALLBACK_RETRY_DELAY_SECONDS = float(os.environ.get("CALLBACK_RETRY_DELAY_SECONDS") or 10)
CALLBACK_RETRY_MAX_DELAY_SECONDS = float(os.environ.get("CALLBACK_RETRY_MAX_DELAY_SECONDS") or 3600)
# ...and given up after this many tries in all (a 4xx other than 408/429 gives up at once).
CALLBACK_MAX_ATTEMPTS = int(os.environ.get("CALLBACK_MAX_ATTEMPTS") or 10)
# A callback_url is the API client's to choose: unless this is true, it may only reach public addresses, not the
# console's own network (127.0.0.1, 10.x, 169.254.169.254...). True for integrators on your private network.
CALLBACK_ALLOW_PRIVATE_NETWORKS = env_bool("CALLBACK_ALLOW_PRIVATE_NETWORKS", False)
if not (0 < CALLBACK_TIMEOUT_SECONDS and 0 < CALLBACK_RETRY_DELAY_SECONDS <= CALLBACK_RETRY_MAX_DELAY_SECONDS
        and CALLBACK_MAX_ATTEMPTS >= 1):
    raise ImproperlyConfigured(
        "Callbacks need CALLBACK_TIMEOUT_SECONDS > 0, 0 < CALLBACK_RETRY_DELAY_SECONDS <= "
        "CALLBACK_RETRY_MAX_DELAY_SECONDS and CALLBACK_MAX_ATTEMPTS >= 1"
    )

# --- Celery --------------------------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded broker: a folder both producer and consumer read, no server needed.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # The exchange table; kombu's default is "control" in the current directory (the repository's root).
        "control_folder": str(_broker_dir / "control"),
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.broker:RedisTransport"  # kombu's, reusing its Redis client (config/broker.py)
# Task results and states go to the database (django-celery-results) so GET /tasks/{id} and the admin see them.
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# A crashed worker's task comes back instead of vanishing; the send is claim-safe so a rerun is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Sends are slow I/O: one worker must not hoard tasks another could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the task thread's database connection before and after EVERY task unless this is
# set, so each send opened a new PostgreSQL connection (a third of a send's time in the profile). Keep it; it is
# still recycled every 2 x this many tasks, and config/celery.py drops a connection that is broken or older than
# DATABASE_CONN_MAX_AGE before each task, as Django does before each request.
CELERY_DB_REUSE_MAX = 1000
# The schedule itself is in config/celery.py, beside the queues and routes.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Cache ---------------------------------------------------------------------------------------------------
# Shared by every web and worker process, so an API throttle counts each caller once whichever process answers.
# cache.clear() empties the whole Redis database it is on: CACHE_REDIS_URL gives the cache one of its own.
CACHE_REDIS_URL = os.environ.get("CACHE_REDIS_URL") or REDIS_URL
if CACHE_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.ReusedClientRedisCache",
            "LOCATION": CACHE_REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX") or "console:cache",
        }
    }
else:  # embedded mode: no Redis, and one web process
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Admin login lockouts (django-axes) ----------------------------------------------------------------------
# After ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused (429) for
# ADMIN_LOGIN_LOCKOUT_MINUTES, even with the right password; a successful login clears its failures.
AUTHENTICATION_BACKENDS = [
    "access.backends.LoginLockoutBackend",  # first: refuses a locked-out pair before any password hashing
    # ModelBackend with each user's permission set kept in the shared cache (access/permission_cache.py).
    "access.permission_cache.CachedPermissionsBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("ADMIN_LOGIN_FAILURE_LIMIT") or 5)
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("ADMIN_LOGIN_LOCKOUT_MINUTES") or 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # failures survive restarts, and need no Redis
AXES_DISABLE_ACCESS_LOG = True  # failures are kept; a row per successful login would grow with nothing pruning it
AXES_VERBOSE = False  # no banner at every process's start: commands print what they serve on their first line

# --- Logging -------------------------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx logs every request at INFO, and Celery every task it receives and finishes; our own lines already
    # record each enqueue and each attempt's outcome with their ids. Celery's two lines per send were written by
    # the worker's consumer thread, the one that feeds the pool: bench/drain.py 217 -> 255 msgs/s without them.
    # Task errors and retries still log (WARNING and above).
    "loggers": {
        "django.db.backends": {"level": "INFO"}, "httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"}, "celery.app.trace": {"level": "WARNING"},
    },
}


# --- Deployment: security, logging, metrics (see "Production deployment" in the README) ---------------------
# An empty value means "the default" here, because docker-compose.yml passes every variable, set or not.
# With DJANGO_DEBUG=false and these set as .env.example shows, `manage.py check --deploy` reports no issues.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Container healthchecks and Prometheus call these over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Cookies follow the redirect unless told otherwise: a site served over HTTPS only has no use for HTTP cookies.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# "HTTP_X_FORWARDED_PROTO,https" when a TLS-terminating proxy sets that header (and strips it from clients).
_proxy_ssl_header = env_list("DJANGO_SECURE_PROXY_SSL_HEADER")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if len(_proxy_ssl_header) == 2 else None
SILENCED_SYSTEM_CHECKS = env_list("DJANGO_SILENCED_SYSTEM_CHECKS")
# The container's own healthcheck and an on-host scrape call by loopback address whatever the public host is.
ALLOWED_HOSTS += [host for host in ("localhost", "127.0.0.1") if host not in ALLOWED_HOSTS]

# "json" in production: one JSON object per line with message/attempt/task/instance as fields (config/logging.py).
LOG_FORMAT = (os.environ.get("LOG_FORMAT") or "plain").strip().lower()
if LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "config.logging.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"
    # Celery would otherwise replace the root handler with its own text format in the worker and beat.
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# gunicorn (config/gunicorn.py): processes per web container, and threads per process (each thread that has
# answered keeps a database connection: POSTGRES_MAX_CONNECTIONS must cover WEB_CONCURRENCY x WEB_THREADS).
WEB_CONCURRENCY = int(os.environ.get("WEB_CONCURRENCY") or 0) or min(2 * (os.cpu_count() or 1) + 1, 9)
WEB_THREADS = int(os.environ.get("WEB_THREADS") or 32)
WEB_TIMEOUT_SECONDS = int(os.environ.get("WEB_TIMEOUT_SECONDS") or 30)

# /metrics: with METRICS_TOKEN set, scrapers send "Authorization: Bearer <token>"; unset, only loopback
# requests that did not come through a proxy are answered.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or ""
# Counters live in Redis so every web and worker process on every host adds to the same numbers.
METRICS_REDIS_URL = os.environ.get("METRICS_REDIS_URL") or REDIS_URL
METRICS_KEY_PREFIX = os.environ.get("METRICS_KEY_PREFIX") or "console:metrics"
