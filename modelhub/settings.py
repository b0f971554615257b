"""Model Hub settings: one module, every value read through ``modelhub.env.env``.

The embedded default (no variables set beyond the two keys that ``scripts/run``
writes into ``.env``) uses SQLite, a local-memory cache, the in-memory channel
layer and an in-memory Celery broker. Production switches each integration on
with an environment variable: ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL``
(cache, channel layer, Celery broker). `.env.example` lists every variable.

Longer than 350 lines on purpose: one settings module read through one ``env`` (CONVENTIONS),
so every setting and its variable are found in one place.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from django.core.exceptions import ImproperlyConfigured

from modelhub.env import env

BASE_DIR = Path(__file__).resolve().parent.parent

# A local .env (written by scripts/run with generated keys) fills in what the
# process environment does not set; real environment variables always win.
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

# --- Core -------------------------------------------------------------------
SECRET_KEY = env.str("SECRET_KEY")
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY")
if len(SECRET_KEY) < 32 or len(JWT_SIGNING_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY and JWT_SIGNING_KEY must each be at least 32 characters long")
if SECRET_KEY == JWT_SIGNING_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from SECRET_KEY")

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "modelhub.accounts",
    # The apps in the layer row, lowest first (registry providers run in this order).
    "catalog",
    "marketplace",
    "deployments",
    "analytics",
    "experiments",
    "costs",
    "gateway",
    "console",
]

MIDDLEWARE = [
    "modelhub.api.middleware.RequestIdMiddleware",
    "modelhub.accounts.middleware.RateLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "modelhub.api.middleware.DeprecationHeadersMiddleware",
    "modelhub.api.middleware.UnhandledExceptionMiddleware",
]

ROOT_URLCONF = "modelhub.urls"
WSGI_APPLICATION = "modelhub.wsgi.application"
ASGI_APPLICATION = "modelhub.asgi.application"
# Threads per server process that run HTTP requests (see modelhub/asgi.py); keep it at or
# below DB_POOL_MAX_SIZE so a request never waits for a database connection.
HTTP_THREADS = env.positive_int("HTTP_THREADS", default=8)
AUTH_USER_MODEL = "accounts.User"
# The web console signs people in with a session (the API itself stays JWT-only).
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:index"
LOGOUT_REDIRECT_URL = "console:login"
APPEND_SLASH = False  # API clients get a 404 envelope, not a redirect they cannot follow with a body

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -----------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_ENGINE = DATABASES["default"]["ENGINE"]
# PostgreSQL connections come from a psycopg 3 pool per process. Under ASGI every request runs
# in its own thread, so persistent per-thread connections (CONN_MAX_AGE) would pile up until the
# server refuses clients; a pool bounds them. Processes x DB_POOL_MAX_SIZE must fit max_connections.
_POOL_MIN = env.int("DB_POOL_MIN_SIZE", default=2)
_POOL_MAX = env.positive_int("DB_POOL_MAX_SIZE", default=10)
if _POOL_MIN < 0 or _POOL_MIN > _POOL_MAX:
    raise ImproperlyConfigured("DB_POOL_MIN_SIZE must be between 0 and DB_POOL_MAX_SIZE")
if _ENGINE == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"connect_timeout": 5, "pool": {"min_size": _POOL_MIN, "max_size": _POOL_MAX, "timeout": 10}}
    )
elif _ENGINE == "django.db.backends.sqlite3":
    # WAL lets the embedded worker write while the server reads; IMMEDIATE avoids
    # "database is locked" upgrades from read to write transactions.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    raise ImproperlyConfigured(f"DATABASE_URL must point at PostgreSQL or SQLite, not {_ENGINE}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker ------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} is invalid: expected redis://, rediss:// or unix://")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "modelhub.api.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "modelhub",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    # Redis pub/sub channels are server-wide, not per database number: the prefix carries the
    # database so that hubs (or test runs, benchmarks) on one Redis server never hear each other.
    _redis = urlparse(REDIS_URL)
    _REDIS_DB = (
        parse_qs(_redis.query).get("db", ["0"])[0] if _redis.scheme == "unix" else _redis.path.strip("/")
    ) or "0"
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"modelhub.db{_REDIS_DB}"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "modelhub"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery (namespace CELERY) -------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SIMPLE_JWT = {
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ALGORITHM": "HS256",
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.positive_int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.positive_int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_OBTAIN_SERIALIZER": "modelhub.accounts.serializers.TokenObtainSerializer",
    "TOKEN_REFRESH_SERIALIZER": "modelhub.accounts.serializers.TokenRefreshSerializer",
}

# --- REST framework, OpenAPI --------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["modelhub.api.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["modelhub.api.renderers.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["modelhub.api.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "modelhub.api.pagination.PagePagination",
    "DEFAULT_SCHEMA_CLASS": "modelhub.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "modelhub.api.exceptions.exception_handler",
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 20,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Model Hub API",
    "DESCRIPTION": "Register, deploy, observe and govern AI models. All endpoints take a JWT Bearer token "
    "from /api/v1/modelhub/auth/token unless marked otherwise; every error is an ErrorResponse.\n\n"
    "Each deployment is also callable through the gateway, OpenAI's API under its `endpoint`: "
    "`POST {endpoint}/v1/chat/completions` (streaming with `stream: true`), `POST {endpoint}/v1/embeddings`, "
    "`GET {endpoint}/v1/models` and `POST {endpoint}/v1/feedback`, with a hub API key (`POST /api-keys`) as the "
    "Bearer token. Those routes follow OpenAI's contract and error shape, not this schema (README: Gateway).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1/modelhub",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "modelhub.api.schema.add_links"],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "modelhub.roles.Role",
        "ProviderEnum": "catalog.models.Provider",
        "ModelTypeEnum": "catalog.models.ModelType",
        "ModelStatusEnum": "catalog.models.ModelStatus",
        "SecurityLevelEnum": "catalog.models.SecurityLevel",
        "DeploymentStatusEnum": "deployments.models.DeploymentStatus",
        "EnvironmentEnum": "deployments.models.Environment",
        "AccessModeEnum": "marketplace.constants.AccessMode",
        "ListingStatusEnum": "marketplace.constants.ListingStatus",
        "PricingModelEnum": "marketplace.constants.PricingModel",
        "BillingIntervalEnum": "marketplace.constants.BillingInterval",
        "UsageUnitEnum": "marketplace.constants.UsageUnit",
        "PlanStatusEnum": "marketplace.constants.PlanStatus",
        "EntitlementStatusEnum": "marketplace.constants.EntitlementStatus",
        "EntitlementScopeEnum": "marketplace.constants.EntitlementScope",
        "PurchaseStatusEnum": "marketplace.constants.PurchaseStatus",
        "PurchaseKindEnum": "marketplace.constants.PurchaseKind",
        "CurrencyEnum": "marketplace.constants.CURRENCIES",
        "ExperimentMetricEnum": "experiments.constants.METRIC_NAMES",
    },
}

# --- API policy -----------------------------------------------------------------
API_MAX_BODY_BYTES = 2 * 1024 * 1024  # JSON request bodies; larger ones answer 413
API_PAGE_SIZE_DEFAULT = 20
API_PAGE_SIZE_MAX = 100
API_SEARCH_MAX_LENGTH = 200
API_LIST_FILTER_MAX_VALUES = 50
# Deprecation of a whole version ("v1") or one route name; see modelhub.api.versioning.
API_DEPRECATIONS: dict[str, dict] = {}
# --- Rate limits (the spec's RateLimits) -------------------------------------------
# Per-role defaults; admins override them per user (API and admin). Anonymous callers are
# limited per client address, the token endpoint hardest (password guessing).
RATE_LIMITS_ENABLED = env.bool("RATE_LIMITS_ENABLED", default=True)
RATE_LIMITS_BY_ROLE = {
    "admin": {"requestsPerMinute": 1200, "requestsPerHour": 30000, "requestsPerDay": 300000, "burstLimit": 100},
    "manager": {"requestsPerMinute": 1200, "requestsPerHour": 30000, "requestsPerDay": 300000, "burstLimit": 100},
    "developer": {"requestsPerMinute": 600, "requestsPerHour": 20000, "requestsPerDay": 200000, "burstLimit": 60},
    "analyst": {"requestsPerMinute": 600, "requestsPerHour": 20000, "requestsPerDay": 200000, "burstLimit": 60},
    "viewer": {"requestsPerMinute": 300, "requestsPerHour": 10000, "requestsPerDay": 100000, "burstLimit": 30},
}
RATE_LIMITS_ANONYMOUS = {
    "requestsPerMinute": 120,
    "requestsPerHour": 3000,
    "requestsPerDay": 30000,
    "burstLimit": 30,
    "endpoints": {
        "POST /auth/token": {"requestsPerMinute": 10, "burstLimit": 5},
        "POST /auth/token/refresh": {"requestsPerMinute": 30, "burstLimit": 10},
    },
}
# How long a process keeps a user's effective limits before reading them again.
RATE_LIMITS_CACHE_SECONDS = 5
# The user of an authenticated request, cached until the user changes (every save or delete moves it out of
# use at once); this bounds an entry's life only. 0: one query per request.
AUTH_USER_CACHE_SECONDS = env.int("AUTH_USER_CACHE_SECONDS", default=300)
CATALOG_FACETS_CACHE_SECONDS = env.positive_int("CATALOG_FACETS_CACHE_SECONDS", default=300)
# Whole GET /models answers cached per query until the next catalog write (0 switches it off).
CATALOG_LIST_CACHE_SECONDS = env.int("CATALOG_LIST_CACHE_SECONDS", default=300)
# A catalog of at most this many models is searched and filtered from per-process candidate lists
# (catalog.listing.CandidateLists); a larger one by the database on every miss. 0 turns the lists off.
CATALOG_CANDIDATES_MAX_MODELS = env.int("CATALOG_CANDIDATES_MAX_MODELS", default=20_000)
# A performance series (a model's buckets over a window, merged) is kept by its process until the model's
# next rollup or for this long (0 switches it off); at most this many points in all, per process.
ANALYTICS_SERIES_CACHE_SECONDS = env.int("ANALYTICS_SERIES_CACHE_SECONDS", default=300)
ANALYTICS_SERIES_CACHE_POINTS = env.int("ANALYTICS_SERIES_CACHE_POINTS", default=50_000)
HEALTH_CHECK_TIMEOUT_SECONDS = 2.0

# --- Realtime: websocket /modelhub/realtime and Socket.IO (modelhub.realtime) ------------
REALTIME_AUTH_TIMEOUT_SECONDS = 10  # a socket without a valid token by then is closed (4401)
REALTIME_MAX_MESSAGE_BYTES = 8192  # per client message; a larger one closes the socket (1009)
REALTIME_INBOUND_BURST = 20  # client messages per socket: a bucket of 20 ...
REALTIME_INBOUND_PER_SECOND = 5  # ... refilled at 5/s; beyond it the socket is closed (4429)
REALTIME_PUBLISH_TIMEOUT_SECONDS = 2.0  # send_now gives up (and logs) if the channel layer takes longer
# Under uvicorn's websockets implementation an event's frame is encoded once per process and written to every
# socket's transport (README "Realtime"); a socket whose unsent bytes pass REALTIME_MAX_PENDING_BYTES is closed.
REALTIME_DIRECT_WRITES = env.bool("REALTIME_DIRECT_WRITES", default=True)
REALTIME_MAX_PENDING_BYTES = env.positive_int("REALTIME_MAX_PENDING_BYTES", default=4 * 1024 * 1024)
# How long the fan-out waits for more events to write with the first (modelhub.realtime.fanout): 0 writes at
# once, coalescing only what is already waiting; at most a second.
REALTIME_COALESCE_SECONDS = env.bounded_float("REALTIME_COALESCE_SECONDS", default=0.0, minimum=0.0, maximum=1.0)
REALTIME_MAX_PENDING_MESSAGES = 1000  # events queued for a client that does not read; beyond: closed (1013)

# --- Deployments ------------------------------------------------------------------------
# The hub's own public address: a deployment's `endpoint` is
# {PUBLIC_BASE_URL}/api/v1/modelhub/deployments/{id}.
# Unset, it is where this process serves: http://{HOST}:{PORT} (scripts/run exports both), so
# `PORT=8011 ./scripts/run` reports endpoints on :8011.
PUBLIC_BASE_URL = (
    env.str("PUBLIC_BASE_URL", default="")
    or f"http://{env.str('HOST', default='') or '127.0.0.1'}:{env.str('PORT', default='') or '8000'}"
).rstrip("/")
if not PUBLIC_BASE_URL.startswith(("http://", "https://")) or any(c.isspace() for c in PUBLIC_BASE_URL):
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL={PUBLIC_BASE_URL!r} is invalid: expected an http:// or https:// URL")
# --- Gateway (invocation of deployments, gateway/) ----------------------------------------
# Upstream hosts the gateway (and the readiness probe) may reach. Each entry is a host name, an
# IP address or a CIDR range; "*" admits any *public* address. Private, loopback, link-local and
# reserved addresses are refused unless an entry names them (or GATEWAY_ALLOW_PRIVATE_UPSTREAMS).
GATEWAY_ASGI_APPLICATION = "gateway.app.application"
GATEWAY_UPSTREAM_ALLOWLIST = env.list("GATEWAY_UPSTREAM_ALLOWLIST", default=["*"])
GATEWAY_ALLOW_PRIVATE_UPSTREAMS = env.bool("GATEWAY_ALLOW_PRIVATE_UPSTREAMS", default=False)
GATEWAY_MAX_BODY_BYTES = env.positive_int("GATEWAY_MAX_BODY_BYTES", default=4 * 1024 * 1024)
GATEWAY_MAX_RESPONSE_BYTES = env.positive_int("GATEWAY_MAX_RESPONSE_BYTES", default=16 * 1024 * 1024)
# A stream's whole duration (s): past it the gateway ends it with an error event; its budget hold lives this long.
GATEWAY_STREAM_MAX_SECONDS = env.positive_int("GATEWAY_STREAM_MAX_SECONDS", default=600)
GATEWAY_MAX_MESSAGES = env.positive_int("GATEWAY_MAX_MESSAGES", default=2048)
GATEWAY_MAX_EMBEDDING_INPUTS = env.positive_int("GATEWAY_MAX_EMBEDDING_INPUTS", default=2048)
GATEWAY_MAX_FALLBACKS = 5
# A deployment's security.rateLimiting is part of its configuration; off only when an operator says so.
GATEWAY_RATE_LIMITS_ENABLED = env.bool("GATEWAY_RATE_LIMITS_ENABLED", default=True)
GATEWAY_ROUTE_CACHE_SECONDS = env.float("GATEWAY_ROUTE_CACHE_SECONDS", default=2.0)
GATEWAY_MAX_CONNECTIONS = env.positive_int("GATEWAY_MAX_CONNECTIONS", default=1000)
# Fernet key for provider API keys stored in the database; unset, one is derived from SECRET_KEY.
GATEWAY_CREDENTIALS_KEY = env.str("GATEWAY_CREDENTIALS_KEY", default="")
# The simulated provider's latency is the model's baseline latency times this (0 in tests).
GATEWAY_SIMULATED_LATENCY_SCALE = env.float("GATEWAY_SIMULATED_LATENCY_SCALE", default=1.0)
# Usage events of gateway calls go to this buffer before the response completes, and a drain
# task ingests them in batches (Redis list with a claim list per drain; in process when no Redis).
GATEWAY_USAGE_BATCH = env.positive_int("GATEWAY_USAGE_BATCH", default=2000)
GATEWAY_USAGE_CLAIM_TIMEOUT_SECONDS = env.positive_int("GATEWAY_USAGE_CLAIM_TIMEOUT_SECONDS", default=120)

# Live (creating, running, scaling) deployments allowed per model and environment, and per owner;
# one more answers 409 DEPLOYMENT_LIMIT_EXCEEDED.
DEPLOYMENTS_MAX_LIVE_PER_MODEL_ENVIRONMENT = env.positive_int("DEPLOYMENTS_MAX_LIVE_PER_MODEL_ENVIRONMENT", default=10)
DEPLOYMENTS_MAX_LIVE_PER_USER = env.positive_int("DEPLOYMENTS_MAX_LIVE_PER_USER", default=50)

# --- Analytics: ingestion, rollups, queries, alerts ------------------------------------
ANALYTICS_INGEST_MAX_EVENTS = 1000  # per POST /analytics/events
ANALYTICS_MAX_CLOCK_SKEW_SECONDS = 300  # events stamped further in the future are rejected
ANALYTICS_SKETCH_RELATIVE_ACCURACY = 0.01  # DDSketch mapping: 1 % relative error on percentiles
ANALYTICS_MAX_POINTS = 2000  # buckets one performance query may span (e.g. 1m granularity: ~33 hours)
# How long each kind of data is kept (days); `analytics.tasks.prune` deletes what is older.
# Raw events must outlive every rollup that is recomputed from them (late events).
ANALYTICS_RETENTION_DAYS = {
    "raw": env.positive_int("ANALYTICS_RAW_RETENTION_DAYS", default=35),
    "1m": 3,
    "5m": 8,
    "15m": 35,
    "1h": 95,
    "1d": 800,
}
# PostgreSQL: the raw events are partitioned by UTC day; the upkeep job keeps this many days ahead
# (and back to the day raw retention reaches) created - README "Partitioning (PostgreSQL)".
ANALYTICS_PARTITIONS_AHEAD_DAYS = env.positive_int("ANALYTICS_PARTITIONS_AHEAD_DAYS", default=7)
# Insight and alert thresholds (GET /analytics/models/{id}/performance insights; periodic alert check).
ANALYTICS_INSIGHTS = {
    "latency_p95_over_baseline": 1.5,  # p95 above 1.5x the model's baseline avg latency -> warning
    "latency_p95_over_baseline_critical": 3.0,
    "error_rate_increase": 1.5,  # error rate up 50 % on the previous period ...
    "error_rate_min": 0.02,  # ... and at least 2 %
    "cost_per_request_increase": 1.25,
    "rating_drop": 0.3,  # average rating down by 0.3 stars or more
    "dominant_error_share": 0.5,  # one code is half of all errors
    "min_requests": 20,  # no insight from fewer requests than this
}
ANALYTICS_ALERTS = {
    "window_minutes": 15,  # the check looks at the last 15 minutes (5m buckets)
    "min_requests": 20,
    "error_rate_warning": 0.05,
    "error_rate_critical": 0.20,
    "latency_p95_over_baseline": 2.0,  # x baseline avg latency
    "latency_p95_over_baseline_critical": 4.0,
    "recover_factor": 0.8,  # resolved when the metric is back below 80 % of the threshold
}
ANALYTICS_DASHBOARD_INTERVAL_SECONDS = env.positive_int("ANALYTICS_DASHBOARD_INTERVAL_SECONDS", default=30)

# Costs (#12): budgets cached per process (cleared at once in the process that changes one), the hold of
# POST /cost/authorize, notification delivery (timeout, retries with doubling backoff from 30 s).
COSTS_RULES_CACHE_SECONDS = 2.0
COSTS_AUTHORIZE_TTL_SECONDS = 600
# Open POST /cost/authorize reservations per user: at most this many, holding at most this much (USD) in all.
COSTS_AUTHORIZE_MAX_OPEN = 20
COSTS_AUTHORIZE_MAX_OPEN_USD = 50
COSTS_NOTIFY_TIMEOUT_SECONDS = 5.0
COSTS_NOTIFY_BACKOFF_SECONDS = 30
COSTS_NOTIFY_MAX_ATTEMPTS = 8
# GET /cost/analysis: answers cached per query; the opportunities' parameters (README "Costs").
COSTS_ANALYSIS_CACHE_SECONDS = 60
COSTS_OPPORTUNITIES = {
    "cache_ttl_seconds": 3600,  # a repeat within this of the same (model, promptHash) is cacheable
    "min_samples": 50,  # a cheaper model's calls in the use case before routing is proven
    "quality_margin": {"success": 0.02, "acceptance": 0.05, "rating": 0.2},
    "batch_discounts": {"openai": 0.5, "anthropic": 0.5, "google": 0.5},  # the providers' batch APIs
    "unusual_sigma": 3.0,
}

# Celery beat: every periodic job in one place, each expiring before its next run.
CELERY_BEAT_SCHEDULE = {
    "analytics-rollup": {"task": "analytics.rollup", "schedule": 60.0, "options": {"expires": 55}},
    "analytics-check-alerts": {"task": "analytics.check_alerts", "schedule": 60.0, "options": {"expires": 55}},
    "analytics-dashboard": {
        "task": "analytics.publish_dashboard",
        "schedule": float(ANALYTICS_DASHBOARD_INTERVAL_SECONDS),
        "options": {"expires": ANALYTICS_DASHBOARD_INTERVAL_SECONDS},
    },
    "analytics-prune": {"task": "analytics.prune", "schedule": 3600.0, "options": {"expires": 3000}},
    "analytics-ensure-partitions": {
        "task": "analytics.ensure_partitions",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Gateway usage: buffered events into the events table (idempotent on requestId).
    "gateway-drain-usage": {"task": "gateway.drain_usage", "schedule": 2.0, "options": {"expires": 10}},
    # Costs (#12): counters up to recorded spend + authorized reservations settled, budget thresholds, outbox.
    "costs-reconcile": {"task": "costs.reconcile", "schedule": 10.0, "options": {"expires": 9}},
    "costs-evaluate-budgets": {"task": "costs.evaluate_budgets", "schedule": 60.0, "options": {"expires": 55}},
    "costs-sweep-outbox": {"task": "costs.sweep_outbox", "schedule": 15.0, "options": {"expires": 14}},
    "costs-refresh-cost-days": {"task": "costs.refresh_cost_days", "schedule": 300.0, "options": {"expires": 290}},
    # Marketplace (issue #13): expired idempotency keys out; subscriptions renewed or ended at period end;
    # deployments whose entitlement ended more than the grace period ago stopped. All idempotent.
    "marketplace-purge-idempotency-keys": {
        "task": "marketplace.purge_idempotency_keys",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    "marketplace-end-periods": {"task": "marketplace.end_periods", "schedule": 300.0, "options": {"expires": 290}},
    "deployments-enforce-entitlements": {
        "task": "deployments.enforce_entitlements",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # Experiments (#11): start/complete at duration.startDate/endDate (conditional UPDATEs); the
    # per-unit aggregates of the hours the analytics rollup re-marked (recomputed, never incremented).
    "experiments-schedule": {"task": "experiments.schedule", "schedule": 30.0, "options": {"expires": 29}},
    "experiments-aggregate": {"task": "experiments.aggregate", "schedule": 60.0, "options": {"expires": 55}},
}
# Marketplace (issue #13): how long an Idempotency-Key is remembered; how long a request that finds
# the same key still running waits for its answer before 409; when an in-progress key counts as
# abandoned (its process died) and may be retried; how long deployments keep running after the
# entitlement they depend on ended (README "Marketplace").
MARKETPLACE_IDEMPOTENCY_TTL_HOURS = 24
MARKETPLACE_IDEMPOTENCY_WAIT_SECONDS = 10.0
MARKETPLACE_IDEMPOTENCY_LEASE_SECONDS = 60
MARKETPLACE_ENTITLEMENT_GRACE_HOURS = 24
# The embedded default (scripts/run) runs a Celery worker and beat as threads of the web
# process on the in-memory broker, so rollups and realtime events need no Redis.
EMBEDDED_WORKER = env.bool("EMBEDDED_WORKER", default=False)
if EMBEDDED_WORKER and REDIS_URL:
    raise ImproperlyConfigured(
        "EMBEDDED_WORKER is for the embedded default; with REDIS_URL run `celery worker` and `celery beat`"
    )

# --- i18n, static -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging: one line per request with its request id ----------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# plain: one readable line per record; json: one JSON object per line, for a log pipeline.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is invalid: expected plain or json")
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is invalid: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "modelhub.api.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        # One JSON object per line (python-json-logger): the fields below plus any ``extra`` (the
        # access log's ``http``: method, path, route, status, durationMs, user).
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "request_id": "requestId"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},  # our middleware logs every request once
        "django.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # one line per upstream call is the usage event's job
    },
}

# --- Operations: metrics and logs ------------------------------------------------------
# /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>` or from these networks.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.networks("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
METRICS_CELERY_QUEUES = env.list("METRICS_CELERY_QUEUES", default=["celery"])
# prometheus-client reads PROMETHEUS_MULTIPROC_DIR itself (when first imported); it is read here to
# fail at start when it names no directory. METRICS_SHARED_DIR: whose subdirectories /metrics merges.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a directory")
METRICS_SHARED_DIR = env.str("METRICS_SHARED_DIR", default="")

# --- Demo data ------------------------------------------------------------------------
# Password given to the demo users that `seed_demo` creates (scripts/run generates one into .env).
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="")
