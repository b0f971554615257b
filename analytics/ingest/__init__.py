"""Usage-event ingestion: the hub's hottest path.

``ingest_events(items)`` validates a batch item by item (no serializer objects, no
per-row ORM instances: a table of checks read off :class:`~analytics.serializers.UsageEventSerializer`,
the one declaration that OpenAPI documents too), stores every valid event in one statement and reports each
invalid one by index; nothing valid is dropped. A ``requestId`` already stored (or
repeated within the batch) is accepted and counted once, as a duplicate. ``ingest_decoded(events)`` is
the same for a body the endpoint's fast path decoded and type-checked in C (:mod:`analytics.ingest.decode`);
the answers are the same whichever path a body took.

The batch claims its request ids in ``UsageEventKey`` first and stores the events whose key it
inserted (:mod:`analytics.ingest.store`): on PostgreSQL a plain ``INSERT`` of the batch's keys (and, on a
key already stored, the batch again with ``ON CONFLICT (request_id) DO NOTHING RETURNING request_id``),
then a binary COPY of the claimed events, so the idempotency holds across the daily partitions; on SQLite
``INSERT OR IGNORE`` per key and one executemany. In the same transaction the (model, hour) pairs of the
stored events are marked dirty for the rollup (late events included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from analytics.ingest import decode
from analytics.ingest.checks import validate
from analytics.ingest.store import store
from analytics.models import Environment
from catalog import selectors as catalog_selectors
from deployments.selectors import deployment_homes
from modelhub import metrics
from modelhub.api.exceptions import ErrorCode

_COST_QUANTUM = Decimal("0.00000001")
_THOUSAND = Decimal(1000)


def token_cost(tokens: int, price_per_1k: Decimal) -> Decimal:
    """The hub's one pricing rule: tokens / 1000 x the model's costPer1kTokens, to 8 places (half up).
    Ingestion prices events with it; the costs app reserves and settles budgets with it."""
    return (tokens * price_per_1k / _THOUSAND).quantize(_COST_QUANTUM, ROUND_HALF_UP)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
            "errors": self.rejected,
        }


def _reject(result: IngestResult, index: int, request_id: object, problems: list[dict[str, str]]) -> None:
    result.rejected.append(
        {
            "index": index,
            "requestId": request_id if type(request_id) is str else None,
            "code": problems[0]["code"],
            "message": problems[0]["message"],
            "fields": problems,
        }
    )


def _item_request_id(item: object) -> object:
    return item.get("requestId") if type(item) is dict else None


def ingest_events(items: list[object], *, now: datetime | None = None) -> IngestResult:
    """Validate and store a batch of usage events (JSON objects); see the module docstring."""
    now = now or timezone.now()
    oldest, newest = _time_bounds(now)
    result = IngestResult()
    cleaned: list[tuple[int, dict]] = []
    for index, item in enumerate(items):
        row, problems = validate(item, now, oldest, newest)
        if row is None:
            _reject(result, index, _item_request_id(item), problems.items)
        else:
            cleaned.append((index, row))
    return _store_cleaned(result, cleaned, [_item_request_id(item) for item in items], now)


def ingest_decoded(events: list[Any], *, now: datetime | None = None) -> IngestResult:
    """:func:`ingest_events` for a batch the fast path decoded (:mod:`analytics.ingest.decode`): the
    same checks, answers and rows; an event a check refuses is reported by the validator itself."""
    now = now or timezone.now()
    oldest, newest = _time_bounds(now)
    result = IngestResult()
    cleaned: list[tuple[int, dict]] = []
    for index, event in enumerate(events):
        row = decode.clean(event, oldest, newest)
        if row is None:
            row, problems = validate(decode.as_item(event), now, oldest, newest)
            if row is None:
                _reject(result, index, event.requestId, problems.items)
                continue
        cleaned.append((index, row))
    return _store_cleaned(result, cleaned, [event.requestId for event in events], now)


def _time_bounds(now: datetime) -> tuple[datetime, datetime]:
    newest = now + timedelta(seconds=settings.ANALYTICS_MAX_CLOCK_SKEW_SECONDS)
    oldest = now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"])
    return oldest, newest


def _store_cleaned(
    result: IngestResult, cleaned: list[tuple[int, dict]], request_ids: list, now: datetime
) -> IngestResult:
    """The checks against the catalog and the deployments, pricing, de-duplication, then the store."""
    models = catalog_selectors.model_prices({row["model_id"] for _, row in cleaned})
    deployments = deployment_homes({row["deployment_id"] for _, row in cleaned if row["deployment_id"]})

    rows: list[dict] = []
    seen: set[str] = set()
    for index, row in cleaned:
        price = models.get(row["model_id"])
        if price is None:
            _reject(
                result,
                index,
                request_ids[index],
                [{"field": "modelId", "code": ErrorCode.MODEL_NOT_FOUND.value, "message": "no model with this id"}],
            )
            continue
        if row["deployment_id"] is not None:
            deployment = deployments.get(row["deployment_id"])
            if deployment is None:
                _reject(
                    result,
                    index,
                    request_ids[index],
                    [
                        {
                            "field": "deploymentId",
                            "code": ErrorCode.DEPLOYMENT_NOT_FOUND.value,
                            "message": "no deployment with this id",
                        }
                    ],
                )
                continue
            if deployment[0] != row["model_id"]:
                _reject(
                    result,
                    index,
                    request_ids[index],
                    [
                        {
                            "field": "deploymentId",
                            "code": ErrorCode.INVALID_PARAMETER.value,
                            "message": "the deployment serves a different model",
                        }
                    ],
                )
                continue
            if row["environment"] is None:
                row["environment"] = deployment[1]
            elif row["environment"] != deployment[1]:
                _reject(
                    result,
                    index,
                    request_ids[index],
                    [
                        {
                            "field": "environment",
                            "code": ErrorCode.INVALID_PARAMETER.value,
                            "message": f"the deployment runs in {deployment[1]}",
                        }
                    ],
                )
                continue
        if row["environment"] is None:
            row["environment"] = Environment.PRODUCTION
        if row["cost"] is None:
            row["cost"] = token_cost(row["prompt_tokens"] + row["completion_tokens"], price)
        else:
            row["cost"] = Decimal(repr(row["cost"])).quantize(_COST_QUANTUM, ROUND_HALF_UP)
        if row["request_id"] in seen:
            result.duplicates += 1
            continue
        seen.add(row["request_id"])
        rows.append(row)

    if rows:
        inserted = store(rows, now)
        result.accepted = inserted
        result.duplicates += len(rows) - inserted
    result.rejected.sort(key=lambda r: r["index"])
    metrics.ingest_events.labels("accepted").inc(result.accepted)
    metrics.ingest_events.labels("duplicate").inc(result.duplicates)
    metrics.ingest_events.labels("rejected").inc(len(result.rejected))
    return result
