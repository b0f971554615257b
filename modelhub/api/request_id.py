"""The id of the request being served, available to logs and the error envelope."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("request_id", default="-")

# A client-supplied id is echoed only when it is short and safe to put in a log line.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def resolve_request_id(client_value: str | None) -> str:
    if client_value and _SAFE_ID.match(client_value):
        return client_value
    return uuid.uuid4().hex


def set_request_id(value: str):
    return _request_id.set(value)


def reset_request_id(token) -> None:
    _request_id.reset(token)


def current_request_id() -> str:
    value = _request_id.get()
    return value if value != "-" else uuid.uuid4().hex


def active_request_id() -> str | None:
    """The id of the request being served, or None outside one (no new id is made up)."""
    value = _request_id.get()
    return None if value == "-" else value
