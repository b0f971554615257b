"""Usage events (the record of every inference request), their rollups, and alerts.

* :class:`UsageEvent` - one row per inference request, written in bulk by
  :mod:`analytics.ingest`. On PostgreSQL the table is partitioned by day (:mod:`analytics.partitions`).
* :class:`UsageEventKey` - one narrow row per stored ``request_id``, the key ingestion claims first,
  so a re-sent event is stored once whatever its timestamp (and so its partition).
* :class:`DirtyHour` - (model, hour) pairs with events not yet rolled up, an append-only log: ingestion
  inserts its batch's pairs in the same transaction as the events; the rollup claims and clears them.
* :class:`MetricBucket` - per model, deployment and environment, one row per
  granularity and bucket start, recomputed from raw events (never incremented) and
  upserted under a unique constraint.
* :class:`Alert` - a threshold breach; at most one open alert per (model, type),
  enforced by a partial unique constraint.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from deployments.constants import Environment  # one environment enum for the hub


class Granularity(models.TextChoices):
    MINUTE = "1m", "1 minute"
    FIVE_MINUTES = "5m", "5 minutes"
    FIFTEEN_MINUTES = "15m", "15 minutes"
    HOUR = "1h", "1 hour"
    DAY = "1d", "1 day"


GRANULARITY_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}


class UsageEvent(models.Model):
    """One inference request as a client reported it. Written only by ``analytics.ingest``."""

    # On PostgreSQL the table's primary key is (id, timestamp) - a partitioned table's unique constraints
    # include the partition key - and id alone stays unique because one sequence draws it; Django keeps
    # ``id`` as the primary key. request_id's uniqueness is UsageEventKey's primary key.
    id = models.BigAutoField(primary_key=True)
    request_id = models.CharField(max_length=128)
    timestamp = models.DateTimeField()
    # No single-column FK indexes: (model, timestamp) serves the model's lookups, and deployments
    # are never deleted; every index costs the hot insert path.
    model = models.ForeignKey(
        "catalog.ModelRegistry", on_delete=models.PROTECT, related_name="usage_events", db_index=False
    )
    deployment = models.ForeignKey(
        "deployments.Deployment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="usage_events",
        db_index=False,
    )
    environment = models.CharField(max_length=16, choices=Environment.choices)
    user_id = models.CharField(max_length=255, blank=True)  # the model's end user, not a hub account
    latency_ms = models.FloatField()
    prompt_tokens = models.PositiveIntegerField()
    completion_tokens = models.PositiveIntegerField()
    cost = models.DecimalField(max_digits=18, decimal_places=8)
    success = models.BooleanField()
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)
    confidence_score = models.FloatField(null=True, blank=True)
    user_rating = models.PositiveSmallIntegerField(null=True, blank=True)
    accepted = models.BooleanField(null=True, blank=True)
    use_case = models.CharField(max_length=100, blank=True)
    experiment_id = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=64, blank=True)
    prompt_hash = models.CharField(max_length=128, blank=True)
    # Gateway calls: the client's request id that links the attempts of one call (retries and
    # fallbacks are one event each), the attempt number, and whether the response cache answered.
    client_request_id = models.CharField(max_length=128, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    cached = models.BooleanField(default=False)
    # The budget reservation this call spent (costs app: POST /cost/authorize, the gateway's holds).
    reservation_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        # Every index costs the hot insert path, so there is one besides the primary key: (model,
        # timestamp) for the rollup's hour reads, covering user_id on PostgreSQL so distinct-user counts
        # are index-only scans. (Migration 0002's BRIN index on timestamp went with partitioning, 0006:
        # retention drops whole days and time ranges prune partitions.)
        indexes = [
            models.Index(fields=["model", "timestamp"], include=["user_id"], name="analytics_event_model_ts_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(latency_ms__gte=0), name="analytics_event_latency_nonneg"),
            models.CheckConstraint(condition=Q(cost__gte=0), name="analytics_event_cost_nonneg"),
            models.CheckConstraint(
                condition=Q(user_rating__isnull=True) | Q(user_rating__gte=1, user_rating__lte=5),
                name="analytics_event_rating_1_5",
            ),
            models.CheckConstraint(
                condition=Q(confidence_score__isnull=True) | Q(confidence_score__gte=0, confidence_score__lte=1),
                name="analytics_event_confidence_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class UsageEventKey(models.Model):
    """A stored event's ``request_id``: ingestion inserts here first (``ON CONFLICT DO NOTHING``) and stores
    only the events whose key it inserted, so a requestId is stored once across every partition.

    ``timestamp`` is the event's: retention removes a key with its event's day, and
    :func:`analytics.services.record_feedback` finds the event by (model, timestamp) through it.
    """

    # On PostgreSQL (migration 0008) request_id is COLLATE "C" - byte order, so the primary key's B-tree
    # compares with memcmp instead of the libc locale - and timestamp has a BRIN index: keys arrive in
    # time order, so a block-range index answers retention's "older than" for next to nothing per insert.
    # A 500-key claim with commit: 6.6-9.4 ms before, 4.9-5.1 after (measured once on a copy of the bench's keys).
    # SQLite needs neither (small tables, retention scans).
    request_id = models.CharField(max_length=128, primary_key=True)
    timestamp = models.DateTimeField()

    def __str__(self) -> str:
        return self.request_id


class DirtyHour(models.Model):
    """An hour of one model's events that changed since it was last rolled up.

    Append-only, with no unique (model, hour): every ingest batch inserts its own marks, so concurrent
    batches never wait on each other's mark (an upsert held the shared row's lock until its batch
    committed, which queued every batch of the same hours behind one another: with the lock gone, the
    ingest bench went from 0.30 to 0.42 of a raw COPY in the same hour). A mark commits with its events, so a rollup that sees a mark sees its events
    (see :func:`analytics.rollup.claim_hours`); an uncommitted mark stays for the next run.
    """

    model_id = models.UUIDField()
    hour = models.DateTimeField()
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["hour", "model_id"], name="analytics_dirty_hour_idx")]

    def __str__(self) -> str:
        return f"{self.model_id} {self.hour:%Y-%m-%d %H}:00"


class DirtyDay(models.Model):
    """A day of one model whose 1h buckets were recomputed since its 1d buckets were.

    Marked by the rollup in the transaction that writes the hour buckets and claimed afterwards, so a
    day is recomputed once per run however many of its hours were (and still is after a crash between).
    """

    model_id = models.UUIDField()
    day = models.DateTimeField()
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_id", "day"], name="analytics_dirty_day_unique")]

    def __str__(self) -> str:
        return f"{self.model_id} {self.day:%Y-%m-%d}"


class TextJSONField(models.JSONField):
    """A JSON column kept as PostgreSQL ``json`` (the text as written) rather than ``jsonb``.

    For documents that are written whole and read whole, never queried inside: ``jsonb`` re-renders its
    binary form on every read as text, ~40 us for one latency sketch (0.8 ms for a day of hourly sketches
    read as ``json``, 7 ms as ``jsonb``). No equality operator: never ``DISTINCT``, ``UNION`` (only ``UNION
    ALL``) or ``GROUP BY`` such a column. SQLite keeps Django's JSON text column.
    """

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def from_db_value(self, value, expression, connection):
        if value is None or not isinstance(value, str):  # psycopg's json loader has parsed it already
            return value
        return super().from_db_value(value, expression, connection)


class MetricBucket(models.Model):
    """Rolled-up metrics of one (model, deployment, environment) over one time bucket.

    ``deployment_key`` is the deployment id as text, or ``""`` for events sent without
    one (a plain column, so the unique constraint needs no NULL handling).
    ``latency_sketch`` holds DDSketch logarithmic-mapping keys and their counts
    (``{"keys": [...], "counts": [...]}``, see :mod:`analytics.sketch`); merging buckets is adding counts.
    ``errors`` maps an error code to ``{"count", "lastOccurred", "message"}``. The JSON columns are
    :class:`TextJSONField` (PostgreSQL ``json``): every reader takes them whole, as text.
    """

    granularity = models.CharField(max_length=3, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    model = models.ForeignKey("catalog.ModelRegistry", on_delete=models.PROTECT, related_name="metric_buckets")
    deployment_key = models.CharField(max_length=36, blank=True)
    environment = models.CharField(max_length=16, choices=Environment.choices)

    request_count = models.BigIntegerField()
    success_count = models.BigIntegerField()
    failure_count = models.BigIntegerField()
    latency_count = models.BigIntegerField()
    latency_sum = models.FloatField()
    latency_min = models.FloatField(null=True)
    latency_max = models.FloatField(null=True)
    latency_sketch = TextJSONField(default=dict)
    latency_p95 = models.FloatField(null=True)  # from the sketch, kept so a time series needs no sketches
    prompt_tokens_sum = models.BigIntegerField()
    prompt_tokens_max = models.BigIntegerField()
    completion_tokens_sum = models.BigIntegerField()
    completion_tokens_max = models.BigIntegerField()
    cost_sum = models.DecimalField(max_digits=20, decimal_places=8)
    confidence_sum = models.FloatField()
    confidence_count = models.BigIntegerField()
    rating_sum = models.BigIntegerField()
    rating_count = models.BigIntegerField()
    accepted_count = models.BigIntegerField()
    rejected_count = models.BigIntegerField()
    errors = TextJSONField(default=dict)
    use_cases = TextJSONField(default=dict)
    distinct_users = models.BigIntegerField()
    last_event_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "model", "deployment_key", "environment", "bucket_start"],
                name="analytics_bucket_unique",
            ),
            models.CheckConstraint(
                condition=Q(granularity__in=list(GRANULARITY_SECONDS)), name="analytics_bucket_granularity_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["granularity", "model", "bucket_start"], name="analytics_bucket_query_idx"),
            models.Index(fields=["granularity", "bucket_start"], name="analytics_bucket_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M} {self.model_id}"


class AlertType(models.TextChoices):
    LATENCY = "latency_p95", "p95 latency"
    ERROR_RATE = "error_rate", "Error rate"


class AlertSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """A performance threshold breach of one model."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=32, choices=AlertType.choices)
    severity = models.CharField(max_length=16, choices=AlertSeverity.choices)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    model = models.ForeignKey("catalog.ModelRegistry", on_delete=models.CASCADE, related_name="alerts")
    message = models.CharField(max_length=500)
    metric_value = models.FloatField()
    threshold = models.FloatField()
    opened_at = models.DateTimeField()
    last_checked_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # One unresolved alert per (model, type): concurrent checks cannot duplicate it.
            models.UniqueConstraint(
                fields=["model", "type"],
                condition=Q(resolved_at__isnull=True),
                name="analytics_alert_one_open",
            ),
            models.CheckConstraint(condition=Q(status__in=AlertStatus.values), name="analytics_alert_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "-opened_at"], name="analytics_alert_status_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.severity} {self.model_id}"
