"""Test settings: the real settings plus a fast password hasher."""

from modelhub.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
# Rate limiting is exercised by tests/api/test_ratelimit.py, which switches it on; elsewhere it
# would make hundreds of fast in-process requests trip the burst limit.
RATE_LIMITS_ENABLED = False
# Celery tasks run in the test process, synchronously, when queued (after commit). Tests that
# need a real worker/broker start one explicitly.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# The gateway's and the readiness probe's stubs listen on loopback: allow it (and only it) besides
# public addresses, so tests of the allow-list still see private ranges refused.
GATEWAY_UPSTREAM_ALLOWLIST = ["*", "127.0.0.0/8", "::1", "localhost"]
GATEWAY_SIMULATED_LATENCY_SCALE = 0.0
# The console's browser tests load the static files without a collectstatic run: whitenoise finds
# them in the apps' static/ folders, as `runserver` would.
WHITENOISE_USE_FINDERS = True
