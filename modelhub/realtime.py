"""The one publish function every app uses for realtime events.

``publish(event, data, permission=...)`` sends ``{"event": event, "data": data}`` to
every connected client whose role grants ``permission`` (see
:mod:`modelhub.accounts.roles`), after the current transaction commits. Clients
are grouped per permission in the channel layer (``realtime.<permission>``), so
with the Redis channel layer the event reaches clients on every ASGI process.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

# Spec event names -> the permission a client needs to receive them.
EVENTS: dict[str, str] = {
    "dashboard:update": "analytics.read",
    "alert:new": "analytics.read",
    "deployment:status": "deployments.read",
    "experiment:update": "experiments.read",
}


def group_name(permission: str) -> str:
    """Channel-layer group of the clients that hold ``permission`` (group names allow [a-zA-Z0-9_.-])."""
    return f"realtime.{permission}"


def _jsonable(data: Any) -> Any:
    import json

    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def send_now(event: str, data: dict[str, Any]) -> None:
    """Send immediately (no transaction hook); failures are logged, never raised into the caller."""
    if event not in EVENTS:
        raise ValueError(f"unknown realtime event {event!r}; known: {sorted(EVENTS)}")
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "realtime.event", "event": event, "data": _jsonable(data)}
    try:
        async_to_sync(layer.group_send)(group_name(EVENTS[event]), message)
    except Exception:  # a realtime outage must not fail the API call that caused the event
        logger.exception("realtime publish of %s failed", event)


def publish(event: str, data: dict[str, Any]) -> None:
    """Publish ``event`` to every authorised client once the current transaction commits."""
    if event not in EVENTS:
        raise ValueError(f"unknown realtime event {event!r}; known: {sorted(EVENTS)}")
    transaction.on_commit(lambda: send_now(event, data))
