"""Generations of the rolled-up figures: what a process keeps a performance series under.

Every model has a token in the shared cache (Redis in production), and the figures as a whole one more (the
epoch). A write of a model's buckets (the rollup) gives the model a new token once its transaction commits;
retention (``prune``) gives the epoch a new one. A series loaded under ``(epoch, token)`` is therefore the
database's answer for as long as both are unchanged: a reader takes the pair *before* its statement, so
a rollup that commits meanwhile moves the pair on and the next reader loads again.

A token that the cache lost (evicted, or a restarted Redis) is re-created by the next reader with ``add``
(one writer wins), never re-used: tokens are random. When the cache cannot be reached, :func:`current`
is None and nothing is kept or served from what is kept.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

EPOCH_KEY = "analytics:figures:epoch"


def model_key(model_id: uuid.UUID | str) -> str:
    return f"analytics:figures:{model_id}"


def _token() -> str:
    return secrets.token_hex(8)


def current(model_id: uuid.UUID) -> tuple[str, str] | None:
    """``(epoch, model token)`` now (one cache round trip; two more when a token has to be created)."""
    keys = [EPOCH_KEY, model_key(model_id)]
    try:
        found = cache.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            for key in missing:
                cache.add(key, _token(), timeout=None)
            found.update(cache.get_many(missing))
    except Exception:  # the cache unreachable: every read loads from the database
        logger.warning("analytics figure generations unreadable; series are not kept", exc_info=True)
        return None
    if len(found) != len(keys):
        return None
    return found[EPOCH_KEY], found[keys[1]]


def _set(values: dict[str, str]) -> None:
    try:
        cache.set_many(values, timeout=None)
    except Exception:  # what a process keeps expires (ANALYTICS_SERIES_CACHE_SECONDS) instead
        logger.warning("analytics figure generations not moved on: %s", sorted(values), exc_info=True)


def models_written(model_ids: Iterable[uuid.UUID]) -> None:
    """These models' buckets changed in the current transaction: new tokens once it commits."""
    ids = sorted({str(model_id) for model_id in model_ids})
    if ids:
        transaction.on_commit(lambda: _set({model_key(model_id): _token() for model_id in ids}))


def everything_written() -> None:
    """Buckets of any model changed (retention): a new epoch once the current transaction commits."""
    transaction.on_commit(lambda: _set({EPOCH_KEY: _token()}))
