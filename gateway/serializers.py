"""Shapes of the hub API keys API (``/api-keys``), camelCase.

A key is shown with its visible ``prefix`` (``mh_1a2b3c4d``, the start of the secret) and its
``status``; the secret itself is in the create response only (``secret`` beside ``apiKey``), and
its hash never leaves the database. Instances come from :func:`gateway.views.api_key_queryset`
(``owner_username`` is its annotation).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from deployments.selectors import deployment_homes
from gateway.models import ApiKey
from modelhub.api.authentication import API_KEY_PREFIX
from modelhub.api.compiled import CompiledSerializer, computed
from modelhub.api.exceptions import ErrorCode, NotFound
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictCharField, StrictInputSerializer
from modelhub.roles import Role

# Roles that see and revoke every user's keys, in the API and the admin (everyone else: their own).
ALL_KEYS_ROLES = frozenset({Role.ADMIN})
MAX_NAME_LENGTH = 100
MAX_DEPLOYMENTS = 100  # as gateway.services.MAX_KEY_DEPLOYMENTS
MAX_LIFETIME = timedelta(days=366)  # "at most a year ahead", leap years included


class ApiKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


def key_status(key: ApiKey, now: datetime | None = None) -> str:
    """``revoked`` wins over ``expired``; a key without ``expiresAt`` never expires."""
    if key.revoked_at is not None:
        return ApiKeyStatus.REVOKED.value
    if key.expires_at is not None and key.expires_at <= (now or timezone.now()):
        return ApiKeyStatus.EXPIRED.value
    return ApiKeyStatus.ACTIVE.value


def sees_all_keys(user: Any) -> bool:
    return getattr(user, "role", None) in ALL_KEYS_ROLES


def visible_prefix(key: ApiKey) -> str:
    """What identifies a key to a person: the start of its secret (``mh_<prefix>``)."""
    return f"{API_KEY_PREFIX}{key.prefix}"


# --- Output -------------------------------------------------------------------------------------


class ApiKeySerializer(CompiledSerializer):
    """A hub API key as the API shows it (never its secret or hash)."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = computed(
        serializers.CharField, visible_prefix, help_text="The visible start of the secret, e.g. mh_1a2b3c4d."
    )
    ownerId = serializers.UUIDField(source="owner_id")
    ownerUsername = serializers.CharField(source="owner_username")
    deploymentIds = serializers.ListField(
        child=serializers.UUIDField(),
        source="deployment_ids",
        help_text="The deployments the key may call; empty: every deployment its owner may call.",
    )
    expiresAt = serializers.DateTimeField(source="expires_at", allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)
    lastUsedAt = serializers.DateTimeField(
        source="last_used_at", allow_null=True, help_text="Recorded by the usage drain (a few seconds late)."
    )
    createdAt = serializers.DateTimeField(source="created_at")
    status = computed(serializers.ChoiceField, key_status, choices=ApiKeyStatus.choices)

    class Meta:
        ref_name = "ApiKey"


class ApiKeyResponseSerializer(serializers.Serializer):
    apiKey = ApiKeySerializer()

    class Meta:
        ref_name = "ApiKeyResponse"


class ApiKeyCreatedResponseSerializer(serializers.Serializer):
    apiKey = ApiKeySerializer()
    secret = serializers.CharField(
        help_text="The key itself (Authorization: Bearer <secret>). Shown this once: the hub keeps only its hash."
    )

    class Meta:
        ref_name = "ApiKeyCreatedResponse"


@extend_schema_serializer(many=False)
class ApiKeyListResponseSerializer(serializers.Serializer):
    apiKeys = ApiKeySerializer(many=True)
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "ApiKeyListResponse"


# --- Input --------------------------------------------------------------------------------------


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a JSON string (DRF would also take an integer as ``UUID(int=...)``)."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=str(data)[:100])
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.Field):
    """An RFC 3339 date-time with its offset (``Z`` or ``+02:00``); a time without one is refused
    rather than guessed."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 date-time with a time zone, e.g. 2027-01-31T12:00:00Z.",
        "naive": "Give the time zone (Z or an offset such as +02:00).",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or len(data) > 64:
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except (ValueError, OverflowError):
            value = None
        if value is None:
            self.fail("invalid")
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("naive")
        try:
            return value.astimezone(UTC)
        except (ValueError, OverflowError):
            self.fail("invalid")

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class CreateApiKeyRequestSerializer(StrictInputSerializer):
    """A new key for the caller: only ``name`` is required."""

    # validated_data is gateway.services.api_key_create's keywords (owner comes from the caller).
    name = StrictCharField(min_length=1, max_length=MAX_NAME_LENGTH, help_text="What the key is for.")
    deploymentIds = serializers.ListField(
        child=StrictUUIDField(),
        max_length=MAX_DEPLOYMENTS,
        required=False,
        source="deployment_ids",
        help_text=f"Limit the key to these deployments (at most {MAX_DEPLOYMENTS}, each must exist); "
        "left out or empty: every deployment the owner may call. Not applied to POST /analytics/events.",
    )
    expiresAt = AwareDateTimeField(
        required=False,
        allow_null=True,
        source="expires_at",
        help_text="When the key stops working: in the future and at most a year ahead; left out or null: never.",
    )

    class Meta:
        ref_name = "CreateApiKeyRequest"

    def validate_expiresAt(self, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        now = timezone.now()
        if value <= now:
            raise serializers.ValidationError("Must be in the future.")
        if value > now + MAX_LIFETIME:
            raise serializers.ValidationError("Must be at most a year ahead.")
        return value


def check_deployments(ids: list[Any]) -> None:
    """404 ``DEPLOYMENT_NOT_FOUND`` naming every id (and its index) that is no deployment (the API and the
    admin check ``deploymentIds`` with it before :func:`gateway.services.api_key_create`)."""
    known = deployment_homes(ids)
    unknown = {index: str(raw) for index, raw in enumerate(ids) if uuid.UUID(str(raw)) not in known}
    if unknown:
        names = sorted(set(unknown.values()))
        raise NotFound(
            f"Deployment(s) not found: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}.",
            code=ErrorCode.DEPLOYMENT_NOT_FOUND,
            details={
                "fields": {f"deploymentIds[{i}]": ["No deployment with this id."] for i in unknown},
                "deploymentIds": names,
            },
        )
