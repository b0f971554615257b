"""Django's error views, answering with the error envelope (the hub is an API)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from modelhub.api.exceptions import ErrorCode, error_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(404, ErrorCode.INVALID_REQUEST, f"No such endpoint: {request.method} {request.path[:200]}")


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response(500, ErrorCode.INTERNAL_ERROR, "An internal error occurred.")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(400, ErrorCode.INVALID_REQUEST, "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(403, ErrorCode.FORBIDDEN, "Permission denied.")
