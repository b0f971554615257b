"""Request ids, deprecation headers and the last-resort error envelope."""

from __future__ import annotations

import logging
import re
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from modelhub import metrics
from modelhub.api.exceptions import ErrorCode, error_response
from modelhub.api.request_id import _request_id, reset_request_id, resolve_request_id, set_request_id
from modelhub.api.versioning import deprecation_headers

access_log = logging.getLogger("modelhub.access")
error_log = logging.getLogger("modelhub.errors")


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to every log record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


def route_label(request: HttpRequest) -> str:
    """The URL pattern that answered (``/api/v1/modelhub/models/{pk}``): a bounded metrics label."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    route = _GROUP.sub(lambda m: "{" + (m.group(1) or m.group(2)) + "}", match.route)
    return "/" + route.replace("^", "").replace("$", "").lstrip("/")


def _error_code(response: HttpResponse) -> str:
    """The envelope's ``error.code`` of an error answer (small JSON bodies only), else ``HTTP_<status>``."""
    if not response.streaming and response.get("Content-Type", "").startswith("application/json"):
        content = response.content
        if len(content) < 65536:
            try:
                import orjson

                code = orjson.loads(content).get("error", {}).get("code")
                if isinstance(code, str) and len(code) <= 64:
                    return code
            except (ValueError, AttributeError):
                pass
    return f"HTTP_{response.status_code}"


def record_metrics(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    route = route_label(request)
    status = response.status_code
    metrics.http_requests.labels(route, request.method, str(status)).inc()
    metrics.http_duration.labels(route, request.method).observe(seconds)
    if status >= 400:
        metrics.http_errors.labels(route, _error_code(response)).inc()
    if status == 429:
        metrics.rate_limited.labels("api").inc()


class RequestIdMiddleware:
    """Echo the client's ``X-Request-ID`` (or make one), on every response and log line; count it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = resolve_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        token = set_request_id(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            user = getattr(request, "user", None)
            seconds = time.perf_counter() - started
            record_metrics(request, response, seconds)
            user_id = getattr(user, "pk", None)
            access_log.info(
                "%s %s %s %.1fms user=%s",
                request.method,
                request.get_full_path()[:300],
                response.status_code,
                seconds * 1000,
                user_id or "-",
                extra={
                    "http": {
                        "method": request.method,
                        "path": request.path[:300],
                        "route": route_label(request),
                        "status": response.status_code,
                        "durationMs": round(seconds * 1000, 2),
                        "user": str(user_id) if user_id else None,
                    }
                },
            )
            return response
        finally:
            reset_request_id(token)


class DeprecationHeadersMiddleware:
    """Adds ``Deprecation``/``Sunset``/``Link`` to responses of deprecated routes or versions."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for name, value in deprecation_headers(request).items():
            response[name] = value
        return response


class UnhandledExceptionMiddleware:
    """Whatever escapes a view outside DRF becomes a 500 envelope, never a trace."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.core.exceptions import PermissionDenied, SuspiciousOperation
        from django.http import Http404

        if isinstance(exception, Http404):
            return error_response(404, ErrorCode.INVALID_REQUEST, "Not found.")
        if isinstance(exception, PermissionDenied):
            return error_response(403, ErrorCode.FORBIDDEN, "Permission denied.")
        if isinstance(exception, SuspiciousOperation):
            return error_response(400, ErrorCode.INVALID_REQUEST, "Bad request.")
        if isinstance(exception, (OperationalError, InterfaceError)):
            error_log.exception("database unavailable on %s %s", request.method, request.path)
            return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, "The database is unavailable.")
        error_log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, ErrorCode.INTERNAL_ERROR, "An internal error occurred.")
