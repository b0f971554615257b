"""The JSON request parser: bounded in size and depth, so no body can cost more than it should.

DRF's JSONParser reads the whole stream (Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
only guards ``request.body``, which DRF does not use) and lets a ``RecursionError``
from absurdly nested JSON escape as a 500. This parser reads at most
``API_MAX_BODY_BYTES`` and answers 413 / 400 in the error envelope instead.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        return self.loads(self.read(stream))

    @staticmethod
    def read(stream: Any) -> bytes:
        """The whole body, at most ``API_MAX_BODY_BYTES`` (413 beyond), not empty (400)."""
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        if not raw:
            raise ParseError("The request body is empty.")
        return raw

    @staticmethod
    def loads(raw: bytes) -> Any:
        try:
            data = orjson.loads(raw)  # rejects NaN/Infinity (not JSON) and nesting deeper than 1024
        except (orjson.JSONDecodeError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if b"\\u0000" in raw and _contains_nul(data):
            # PostgreSQL text and jsonb cannot hold NUL; refuse it here rather than fail at INSERT.
            raise ParseError("NUL characters (\\u0000) are not allowed in JSON bodies.")
        return data


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False
