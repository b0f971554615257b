"""The Django side, for the scripts' worker subprocesses (``--seed-worker`` and the like): ``django.setup()``,
the bench user with a rate-limit override, plain models. Project imports stay inside the functions."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .paths import BENCH_DIR, ROOT


def django_setup() -> None:
    """From here on import the project's packages, not bench/*.py (bench/catalog.py would shadow the app);
    then ``django.setup()`` with the bench environment."""
    sys.path[:] = [p for p in sys.path if p != str(BENCH_DIR)]
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")
    import django

    django.setup()


def bench_user(username: str, role: str):
    """A user with the password ``BENCH_PASSWORD`` and a rate-limit override of ``MAX_LIMIT`` per window: rate
    limits stay on (their cost is part of every request) but never refuse the load. Returns (user, MAX_LIMIT)."""
    from modelhub.accounts.limits import MAX_LIMIT
    from modelhub.accounts.models import RateLimitOverride
    from modelhub.accounts.services import user_create

    user = user_create(actor=None, username=username, password=os.environ["BENCH_PASSWORD"], role=role)
    RateLimitOverride.objects.update_or_create(
        user=user,
        defaults=dict(
            requests_per_minute=MAX_LIMIT,
            requests_per_hour=MAX_LIMIT,
            requests_per_day=MAX_LIMIT,
            burst_limit=MAX_LIMIT,
        ),
    )
    return user, MAX_LIMIT


def plain_models(prefix: str, count: int, latency_ms: Callable[[int], float], **fields) -> None:
    """``count`` text models ``{prefix}-00``, ``{prefix}-01``... from provider ``custom``, version 1."""
    from catalog.models import ModelRegistry

    ModelRegistry.objects.bulk_create(
        [
            ModelRegistry(
                name=f"{prefix}-{i:02d}",
                version="1",
                provider="custom",
                model_type="text",
                max_tokens=4096,
                context_window=32768,
                baseline_avg_latency_ms=latency_ms(i),
                **fields,
            )
            for i in range(count)
        ]
    )
