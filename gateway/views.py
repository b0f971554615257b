"""``/api-keys``: hub API keys for programs (JWTs expire in 15 minutes; these last until revoked or expired).

Every signed-in role may hold keys of its own: a key acts with its owner's role, so a viewer's key
can only do what a viewer can (and keys are accepted only on the gateway routes and
``POST /analytics/events``; this API itself is JWT-only, so a key cannot mint keys). Admins see and
revoke everyone's keys; everyone else sees only their own, and someone else's key answers 404, as an
unknown id does, so ids do not leak. ``DELETE`` revokes (the key stays listed, ``status: revoked``)
and, like stopping a deployment, answers 204 again for a key already revoked.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import F, QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from gateway import services
from gateway.filters import ApiKeyFilterSet
from gateway.models import ApiKey
from gateway.serializers import (
    ApiKeyCreatedResponseSerializer,
    ApiKeyListResponseSerializer,
    ApiKeyResponseSerializer,
    ApiKeySerializer,
    CreateApiKeyRequestSerializer,
    check_deployments,
    sees_all_keys,
)
from modelhub.api.authentication import JWTAuthentication
from modelhub.api.exceptions import ErrorCode
from modelhub.api.schema import ErrorResponseSerializer
from modelhub.api.viewsets import BaseViewSet

logger = logging.getLogger(__name__)


def api_key_queryset() -> QuerySet[ApiKey]:
    """Keys as the API shows them (``owner_username`` annotated)."""
    return ApiKey.objects.annotate(owner_username=F("owner__username"))


def revoke(*, key: ApiKey, actor: Any) -> ApiKey:
    """The destroy service: :func:`gateway.services.api_key_revoke` (idempotent)."""
    was_active = key.revoked_at is None
    key = services.api_key_revoke(key)
    if was_active:
        logger.info("API key %s (%s) of %s revoked by %s", key.pk, key.prefix, key.owner_id, actor.pk)
    return key


_CREATE_EXAMPLE = OpenApiExample(
    "A nightly job's key, limited to one deployment, for 90 days",
    request_only=True,
    value={
        "name": "nightly-eval",
        "deploymentIds": ["3f1e2d4c-5b6a-4789-8abc-def012345678"],
        "expiresAt": "2027-03-01T00:00:00Z",
    },
)


@extend_schema_view(
    list=extend_schema(
        summary="Your API keys (admins: everyone's; filter with ownerId)",
        responses=ApiKeyListResponseSerializer,
        tags=["api-keys"],
    ),
    retrieve=extend_schema(
        summary="One API key (another user's answers 404 unless you are an admin)",
        responses=ApiKeyResponseSerializer,
        tags=["api-keys"],
    ),
    create=extend_schema(
        summary="Create an API key; the response holds its secret, which is never shown again",
        request=CreateApiKeyRequestSerializer,
        responses={
            201: ApiKeyCreatedResponseSerializer,
            404: OpenApiResponse(
                ErrorResponseSerializer, description="DEPLOYMENT_NOT_FOUND: a deploymentIds entry names no deployment."
            ),
            409: OpenApiResponse(ErrorResponseSerializer, description="The owner already has 100 unrevoked keys."),
        },
        examples=[_CREATE_EXAMPLE],
        tags=["api-keys"],
    ),
    destroy=extend_schema(
        summary="Revoke an API key (kept, listed as revoked; revoking a revoked key succeeds too)",
        responses={204: OpenApiResponse(description="Revoked (or already revoked).")},
        tags=["api-keys"],
    ),
)
class ApiKeyViewSet(BaseViewSet):
    """Create, list, read and revoke hub API keys."""

    authentication_classes = [JWTAuthentication]  # a key cannot manage keys (settings say so too; stated here)
    permission_classes = [IsAuthenticated]  # every role; what each sees is get_queryset's
    queryset = api_key_queryset()
    filterset_class = ApiKeyFilterSet
    serializer_class = ApiKeySerializer
    input_serializer_classes = {"create": CreateApiKeyRequestSerializer}
    destroy_service = revoke
    instance_kwarg = "key"
    not_found_code = ErrorCode.INVALID_REQUEST  # the spec has no API-key code (README: Errors)
    resource_name = "API key"
    envelope_key = "apiKey"
    results_key = "apiKeys"
    http_method_names = ["get", "post", "delete", "options"]

    def get_queryset(self) -> QuerySet[ApiKey]:
        queryset = super().get_queryset()
        if sees_all_keys(self.request.user):
            return queryset
        return queryset.filter(owner=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.validated_input()
        ids = data.get("deployment_ids") or []
        if ids:
            check_deployments(ids)
        key, secret = services.api_key_create(
            owner=request.user, name=data["name"], deployment_ids=ids, expires_at=data.get("expires_at")
        )
        logger.info("API key %s (%s) created by %s", key.pk, key.prefix, request.user.pk)
        return self.respond(self.reread(key), status.HTTP_201_CREATED, secret=secret)
