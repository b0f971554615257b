"""The error contract: one envelope for every error, from every layer.

Services raise :class:`AppError` subclasses carrying a spec ``ErrorCode``; the DRF
``EXCEPTION_HANDLER`` below maps those, DRF's own exceptions and Django's
(Http404, PermissionDenied, ValidationError, ProtectedError, database outages) to
the spec's ``ErrorResponse``. Whatever escapes DRF is caught by
``UnhandledExceptionMiddleware`` and Django's handler404/handler500 views, which
reuse :func:`error_response`.
"""

from __future__ import annotations

import logging
import math
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, JsonResponse
from django.utils import timezone
from rest_framework import exceptions as drf
from rest_framework.response import Response

from modelhub.api.request_id import current_request_id

logger = logging.getLogger("modelhub.errors")


class ErrorCode(StrEnum):
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    DEPLOYMENT_NOT_FOUND = "DEPLOYMENT_NOT_FOUND"
    EXPERIMENT_NOT_FOUND = "EXPERIMENT_NOT_FOUND"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    INVALID_REQUEST = "INVALID_REQUEST"
    MISSING_REQUIRED_FIELD = "MISSING_REQUIRED_FIELD"
    INVALID_PARAMETER = "INVALID_PARAMETER"
    MODEL_ALREADY_EXISTS = "MODEL_ALREADY_EXISTS"
    USER_ALREADY_EXISTS = "USER_ALREADY_EXISTS"
    DEPLOYMENT_LIMIT_EXCEEDED = "DEPLOYMENT_LIMIT_EXCEEDED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    # costs (issue #12)
    RESERVATION_LIMIT_EXCEEDED = "RESERVATION_LIMIT_EXCEEDED"
    # marketplace (issue #13)
    LISTING_NOT_FOUND = "LISTING_NOT_FOUND"
    ENTITLEMENT_NOT_FOUND = "ENTITLEMENT_NOT_FOUND"
    ENTITLEMENT_REQUIRED = "ENTITLEMENT_REQUIRED"
    ENTITLEMENT_EXISTS = "ENTITLEMENT_EXISTS"
    TERMS_VERSION_MISMATCH = "TERMS_VERSION_MISMATCH"
    PRICE_MISMATCH = "PRICE_MISMATCH"
    IDEMPOTENCY_KEY_REQUIRED = "IDEMPOTENCY_KEY_REQUIRED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_KEY_IN_PROGRESS = "IDEMPOTENCY_KEY_IN_PROGRESS"


class AppError(Exception):
    """An error a service raises on purpose; it knows its spec code and HTTP status."""

    status_code = 400
    code = ErrorCode.INVALID_REQUEST
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, *, details: Any = None, code: ErrorCode | None = None):
        self.message = message or self.default_message
        self.details = details
        if code is not None:
            self.code = code
        super().__init__(self.message)


class InvalidRequest(AppError):
    pass


class InvalidParameter(AppError):
    code = ErrorCode.INVALID_PARAMETER
    default_message = "A query parameter is invalid."


class Forbidden(AppError):
    status_code = 403
    code = ErrorCode.FORBIDDEN
    default_message = "You do not have permission to perform this action."


class NotFound(AppError):
    status_code = 404
    code = ErrorCode.INVALID_REQUEST
    default_message = "Not found."


class Conflict(AppError):
    """409: the request is well formed but clashes with the current state."""

    status_code = 409
    code = ErrorCode.INVALID_REQUEST
    default_message = "The request conflicts with the current state of the resource."


class ServiceUnavailable(AppError):
    status_code = 503
    code = ErrorCode.SERVICE_UNAVAILABLE
    default_message = "A backing service is unavailable; try again shortly."


class TokenExpired(drf.AuthenticationFailed):
    default_detail = "The access token has expired."
    default_code = "token_expired"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The spec's ``ErrorResponse``; ``requestId`` comes from the request being served."""
    error: dict[str, Any] = {
        "code": str(code),
        "message": message,
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "requestId": current_request_id(),
    }
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    """A plain Django response carrying the envelope (for code outside DRF)."""
    return JsonResponse(error_body(code, message, details), status=status)


# --- Translating DRF validation errors -------------------------------------------


ALLOWED_KEY = "allowedValues"


def _flatten(detail: Any, prefix: str, fields: dict[str, list], allowed: dict[str, list]) -> None:
    """Turn DRF's nested error structure into ``{"a.b[0].c": [message, ...]}``.

    An enum field (``modelhub.api.fields.EnumField``) reports
    ``{"message": [...], "allowedValues": [...]}`` so that the allowed values
    reach ``details.allowedValues`` instead of being lost in a message string.
    """
    if isinstance(detail, dict) and ALLOWED_KEY in detail:
        fields.setdefault(prefix, []).extend(str(m) for m in detail.get("message", []))
        allowed[prefix] = [str(v) for v in detail[ALLOWED_KEY]]
    elif isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # ListField/ListSerializer errors are keyed by index
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            _flatten(value, path, fields, allowed)
    elif isinstance(detail, list) and all(isinstance(item, str) for item in detail):
        fields.setdefault(prefix or "nonFieldErrors", []).extend(detail)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            _flatten(item, f"{prefix}[{index}]", fields, allowed)
    else:
        fields.setdefault(prefix or "nonFieldErrors", []).append(detail)


def validation_details(detail: Any) -> tuple[ErrorCode, str, dict[str, Any]]:
    """Code, message and details for a DRF ValidationError's ``detail``."""
    flat: dict[str, list] = {}
    allowed: dict[str, list] = {}
    _flatten(detail, "", flat, allowed)
    details: dict[str, Any] = {"fields": {path: [str(m) for m in msgs] for path, msgs in flat.items()}}
    if allowed:
        details[ALLOWED_KEY] = allowed
    missing = sorted(path for path, msgs in flat.items() if any(getattr(m, "code", None) == "required" for m in msgs))
    if missing and len(missing) == len(flat):
        return ErrorCode.MISSING_REQUIRED_FIELD, f"Missing required field(s): {', '.join(missing)}.", details
    names = ", ".join(sorted(flat)[:10])
    return ErrorCode.INVALID_REQUEST, f"The request body is invalid: {names}.", details


# --- The DRF exception handler -----------------------------------------------------


def _drf_error(exc: drf.APIException) -> tuple[int, ErrorCode, str, Any]:
    if isinstance(exc, drf.ValidationError):
        code, message, details = validation_details(exc.detail)
        return 400, code, message, details
    if isinstance(exc, TokenExpired):
        return 401, ErrorCode.TOKEN_EXPIRED, str(exc.detail), None
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        detail = exc.detail
        if isinstance(detail, dict):  # simplejwt's InvalidToken carries a dict
            detail = detail.get("detail", "Invalid token.")
        return 401, ErrorCode.UNAUTHORIZED, str(detail), None
    if isinstance(exc, drf.PermissionDenied):
        return 403, ErrorCode.FORBIDDEN, str(exc.detail), None
    if isinstance(exc, drf.NotFound):
        return 404, ErrorCode.INVALID_REQUEST, str(exc.detail), None
    if isinstance(exc, drf.Throttled):
        return 429, ErrorCode.RATE_LIMIT_EXCEEDED, "Rate limit exceeded.", {"retryAfter": exc.wait}
    if isinstance(exc, drf.ParseError):
        return 400, ErrorCode.INVALID_REQUEST, f"Malformed request body: {exc.detail}", None
    # PayloadTooLarge (413), MethodNotAllowed (405), NotAcceptable (406), UnsupportedMediaType (415), ...
    return exc.status_code, ErrorCode.INVALID_REQUEST, str(exc.detail), None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    view = context.get("view")
    headers: dict[str, str] = {}

    if isinstance(exc, AppError):
        status, code, message, details = exc.status_code, exc.code, exc.message, exc.details
    elif isinstance(exc, Http404):
        code = getattr(view, "not_found_code", ErrorCode.INVALID_REQUEST)
        resource = getattr(view, "resource_name", "Resource")
        status, message, details = 404, f"{resource} not found.", None
    elif isinstance(exc, drf.APIException):
        status, code, message, details = _drf_error(exc)
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(math.ceil(exc.wait))
        auth_header = getattr(exc, "auth_header", None)
        if status == 401 and auth_header:
            headers["WWW-Authenticate"] = auth_header
    elif isinstance(exc, SuspiciousOperation):  # too many fields, bad multipart, disallowed host...
        status, code, message, details = 400, ErrorCode.INVALID_REQUEST, "Bad request: " + str(exc)[:200], None
    elif isinstance(exc, DjangoPermissionDenied):
        status, code, message, details = 403, ErrorCode.FORBIDDEN, "Permission denied.", None
    elif isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"nonFieldErrors": exc.messages}
        status, code, message, details = 400, ErrorCode.INVALID_REQUEST, "The request is invalid.", {"fields": fields}
    elif isinstance(exc, (ProtectedError, RestrictedError)):
        dependents = sorted(
            {
                f"{o._meta.label}:{o.pk}"
                for o in list(exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects)[:20]
            }
        )
        status, code = 409, ErrorCode.INVALID_REQUEST
        message, details = "The resource is still in use and cannot be deleted.", {"dependents": dependents}
    elif isinstance(exc, DataError):
        # The database refused a value that validation let through: a 400 for the client, a bug for us.
        logger.warning("database rejected a value: %s", exc)
        status, code, message, details = 400, ErrorCode.INVALID_REQUEST, "A value was rejected by the database.", None
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.exception("database unavailable")
        status, code, message, details = 503, ErrorCode.SERVICE_UNAVAILABLE, "The database is unavailable.", None
    elif isinstance(exc, DatabaseError):
        logger.exception("database error")
        status, code, message, details = 500, ErrorCode.INTERNAL_ERROR, "An internal error occurred.", None
    else:
        logger.exception("unhandled error in %s", type(view).__name__ if view else "view")
        status, code, message, details = 500, ErrorCode.INTERNAL_ERROR, "An internal error occurred.", None

    if status >= 500:
        # A failed atomic block must not leave a half-done write behind. Outside one there is
        # nothing to roll back (and Django's set_rollback would raise), hence the check.
        from django.db import connections

        for conn in connections.all(initialized_only=True):
            if conn.in_atomic_block:
                conn.set_rollback(True)
    return Response(error_body(code, message, details), status=status, headers=headers)
