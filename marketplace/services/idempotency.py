"""``Idempotency-Key`` for purchases (the IETF draft's semantics; README \"Marketplace\")."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.constants import (
    IdempotencyState,
)
from marketplace.models import IdempotencyKey
from modelhub.api.exceptions import AppError, Conflict, ErrorCode, error_body


class IdempotencyKeyRequired(AppError):
    code = ErrorCode.IDEMPOTENCY_KEY_REQUIRED
    default_message = "A purchase needs an Idempotency-Key header (1-255 printable ASCII characters), e.g. a UUID."


class IdempotencyKeyReused(AppError):
    """422, as the IETF draft and Stripe answer: the key names a different request."""

    status_code = 422
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    default_message = "This Idempotency-Key was used with a different request; use a new key for a new request."


# --- Idempotency keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """An answer to send (and to replay for the same key)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 of the method, the path and the body in canonical JSON (key order and spacing do not count)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def _claim(user: Any, key: str, fingerprint: str) -> tuple[IdempotencyKey | None, Outcome | None]:
    """Claim the key for this request, or learn what to answer instead (the stored answer, 422, 409)."""
    now = timezone.now()
    deadline = time.monotonic() + float(settings.MARKETPLACE_IDEMPOTENCY_WAIT_SECONDS)
    ttl = timedelta(hours=settings.MARKETPLACE_IDEMPOTENCY_TTL_HOURS)
    lease = timedelta(seconds=settings.MARKETPLACE_IDEMPOTENCY_LEASE_SECONDS)
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                IdempotencyKey.objects.filter(user=user, key=key, expires_at__lte=now).delete()
                row = IdempotencyKey.objects.create(
                    user=user, key=key, fingerprint=fingerprint, locked_at=now, expires_at=now + ttl
                )
            return row, None
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(user=user, key=key).first()
        if row is None:
            continue  # purged or released meanwhile: claim again
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(details={"idempotencyKey": key})
        if row.state == IdempotencyState.DONE:
            return None, Outcome(row.response_status, json.loads(row.response_body), replayed=True)
        if row.locked_at <= now - lease:
            # The request that claimed it died without an answer: take it over (one taker wins).
            if IdempotencyKey.objects.filter(
                pk=row.pk, state=IdempotencyState.IN_PROGRESS, locked_at=row.locked_at
            ).update(locked_at=now):
                row.locked_at = now
                return row, None
            continue
        if time.monotonic() >= deadline:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
                details={"idempotencyKey": key},
            )
        time.sleep(0.05)


def _store(row: IdempotencyKey, outcome: Outcome) -> None:
    IdempotencyKey.objects.filter(pk=row.pk).update(
        state=IdempotencyState.DONE,
        response_status=outcome.status,
        response_body=json.dumps(outcome.body, ensure_ascii=False, default=str),
    )


def idempotent(*, user: Any, key: str, fingerprint: str, run: Callable[[], Outcome]) -> Outcome:
    """Run ``run`` at most once per (user, key): the IETF ``Idempotency-Key`` draft's semantics.

    The first request claims the key (``in_progress``, committed), runs, and stores its answer in the
    same transaction as its writes; a request arriving meanwhile with the same key and body waits up
    to ``MARKETPLACE_IDEMPOTENCY_WAIT_SECONDS`` and then gets that answer (``replayed``), or 409
    ``IDEMPOTENCY_KEY_IN_PROGRESS``. A different body under the key is 422 ``IDEMPOTENCY_KEY_REUSED``.
    Business errors (409, 403, 404...) are stored and replayed like successes; an unexpected failure
    releases the key so the client can retry.
    """
    row, answer = _claim(user, key, fingerprint)
    if answer is not None:
        return answer
    try:
        with transaction.atomic():
            outcome = run()
            _store(row, outcome)
        return outcome
    except AppError as exc:
        outcome = Outcome(exc.status_code, error_body(exc.code, exc.message, exc.details))
        _store(row, outcome)
        return outcome
    except BaseException:
        IdempotencyKey.objects.filter(pk=row.pk, state=IdempotencyState.IN_PROGRESS).delete()
        raise


def idempotency_keys_purge(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete expired keys in batches; running it again deletes nothing more (idempotent)."""
    now = now or timezone.now()
    total = 0
    while True:
        ids = list(IdempotencyKey.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        total += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
