"""The gateway's periodic job: ingest buffered usage events (``settings.CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

from celery import shared_task

from gateway import buffer


@shared_task(name="gateway.drain_usage", acks_late=True)
def drain_usage() -> dict[str, int]:
    """Claim, ingest and acknowledge buffered usage events; idempotent (see :mod:`gateway.buffer`)."""
    return buffer.drain()
