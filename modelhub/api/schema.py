"""OpenAPI glue: every operation documents the error envelope it can answer with."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from modelhub.api.exceptions import ErrorCode


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[c.value for c in ErrorCode])
    message = serializers.CharField()
    details = serializers.JSONField(required=False, help_text="Offending fields, allowed values, current state, ...")
    timestamp = serializers.DateTimeField()
    requestId = serializers.CharField()


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorBodySerializer()

    class Meta:
        ref_name = "ErrorResponse"


class PaginationSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField()
    totalPages = serializers.IntegerField()
    hasNext = serializers.BooleanField()
    hasPrev = serializers.BooleanField()

    class Meta:
        ref_name = "Pagination"


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorResponseSerializer, description=description)


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema plus the error responses each operation can give."""

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        return _strict_request(super()._map_serializer(serializer, direction, bypass_extensions), serializer, direction)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors: dict[str, OpenApiResponse] = {"400": _error("Invalid request or parameter.")}
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        if not public:
            errors["401"] = _error("Missing, invalid or expired token.")
            errors["403"] = _error("The caller's role does not allow this.")
        if "{" in self.path:
            errors["404"] = _error("Not found.")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            errors["409"] = _error("Conflicts with the current state.")
        if self.method in ("POST", "PUT", "PATCH"):
            errors["413"] = _error("The request body is too large.")
            errors["415"] = _error("The body is not application/json.")
        errors["429"] = _error("Rate limit exceeded.")
        errors["500"] = _error("Internal error.")
        errors["503"] = _error("A backing service is unavailable.")
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses


class JWTScheme(SimpleJWTScheme):
    """Documents our JWTAuthentication subclass as simplejwt's Bearer scheme."""

    target_class = "modelhub.api.authentication.JWTAuthentication"
    name = "jwtAuth"


def _strict_request(schema: dict, serializer: object, direction: str) -> dict:
    from modelhub.api.serializers import StrictInputSerializer

    if direction == "request" and isinstance(serializer, StrictInputSerializer) and schema.get("type") == "object":
        schema["additionalProperties"] = False  # unknown fields are rejected with 400
    return schema


# --- OpenAPI links: how a created resource's id feeds the next operations ----------------------
# (source operationId, status, link name, target operationId, {parameter: runtime expression})
LINKS: list[tuple[str, str, str, str, dict[str, str]]] = []


def register_links(source: str, status: str, targets: dict[str, tuple[str, dict[str, str]]]) -> None:
    """Apps declare links in ``AppConfig.ready``; schemathesis follows them in stateful runs."""
    for name, (target, parameters) in targets.items():
        LINKS.append((source, status, name, target, parameters))


def add_links(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular postprocessing hook: attach the registered links to their responses."""
    operations = {
        op.get("operationId"): op
        for path in result.get("paths", {}).values()
        for op in path.values()
        if isinstance(op, dict)
    }
    for source, status, name, target, parameters in LINKS:
        op = operations.get(source)
        if op is None or target not in operations or status not in op.get("responses", {}):
            continue
        op["responses"][status].setdefault("links", {})[name] = {"operationId": target, "parameters": parameters}
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Hub API keys (``Authorization: Bearer mh_...``), on the few routes that take them."""

    target_class = "modelhub.api.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mh_<prefix>_<secret> (a hub API key, POST /api-keys)",
        }
