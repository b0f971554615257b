"""Auth and user shapes (camelCase)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import serializers as jwt_serializers

from modelhub.accounts.limits import ENDPOINT_KEY, MAX_ENDPOINTS, MAX_LIMIT
from modelhub.accounts.models import User
from modelhub.api.compiled import CompiledSerializer
from modelhub.api.fields import EnumField
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictInputSerializer
from modelhub.roles import PERMISSIONS, Role


class TokenObtainSerializer(jwt_serializers.TokenObtainPairSerializer):
    """simplejwt's pair serializer; the access token also names the role (for clients' UI only -
    authorization always reads the role from the database)."""

    @classmethod
    def get_token(cls, user: User):
        token = super().get_token(user)
        token["role"] = user.role
        token["username"] = user.username
        return token


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    """simplejwt's rotating refresh, answering 401 (not 500) when the token's user is gone."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise AuthenticationFailed("No active account found for the given token.", "no_active_account") from None


class TokenPairResponseSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LogoutSerializer(StrictInputSerializer):
    refresh = serializers.CharField(max_length=4096)
    everywhere = serializers.BooleanField(
        required=False, default=False, help_text="Revoke every session of the caller."
    )


class UserSerializer(CompiledSerializer):
    # A user as the API shows it: {"user": ...}, {"users": [...]}, auth/me.
    id = serializers.UUIDField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True, help_text="An e-mail address, or empty.")
    firstName = serializers.CharField(source="first_name", read_only=True)
    lastName = serializers.CharField(source="last_name", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    dateJoined = serializers.DateTimeField(source="date_joined", read_only=True)
    lastLogin = serializers.DateTimeField(source="last_login", read_only=True, allow_null=True)

    class Meta:
        ref_name = "User"


class UserCreateSerializer(StrictInputSerializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    firstName = serializers.CharField(max_length=150, required=False, allow_blank=True, default="", source="first_name")
    lastName = serializers.CharField(max_length=150, required=False, allow_blank=True, default="", source="last_name")
    role = EnumField(choices=Role.choices, required=False, default=Role.VIEWER)

    class Meta:
        ref_name = "CreateUserRequest"


class UserUpdateSerializer(StrictInputSerializer):
    email = serializers.EmailField(required=False, allow_blank=True)
    firstName = serializers.CharField(max_length=150, required=False, allow_blank=True, source="first_name")
    lastName = serializers.CharField(max_length=150, required=False, allow_blank=True, source="last_name")
    role = EnumField(choices=Role.choices, required=False)
    isActive = serializers.BooleanField(required=False, source="is_active")
    password = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)

    class Meta:
        ref_name = "UpdateUserRequest"


class UserResponseSerializer(serializers.Serializer):
    """``{"user": User}``: what retrieve, create and update answer."""

    user = UserSerializer()

    class Meta:
        ref_name = "UserResponse"


@extend_schema_serializer(many=False)
class UserListResponseSerializer(serializers.Serializer):
    users = UserSerializer(many=True)
    pagination = PaginationSerializer()


def _permissions_schema() -> type[serializers.Serializer]:
    """The spec's ``Permissions`` object, built from the matrix so the schema cannot drift."""
    groups: dict[str, list[str]] = {}
    for perm in PERMISSIONS:
        resource, action = perm.split(".")
        groups.setdefault(resource, []).append(action)
    fields = {
        resource: type(
            f"{resource.title()}PermissionsSerializer",
            (serializers.Serializer,),
            {action: serializers.BooleanField() for action in actions},
        )()
        for resource, actions in groups.items()
    }
    return type("PermissionsSerializer", (serializers.Serializer,), fields)


PermissionsSerializer = _permissions_schema()


class MeSerializer(serializers.Serializer):
    user = UserSerializer()
    role = serializers.ChoiceField(choices=Role.choices)
    permissions = PermissionsSerializer()
    ownOnly = serializers.ListField(
        child=serializers.CharField(), help_text="Permissions the role holds only on objects the user owns."
    )


# --- Rate limits --------------------------------------------------------------------------


class EndpointLimitSerializer(StrictInputSerializer):
    requestsPerMinute = serializers.IntegerField(min_value=1)
    burstLimit = serializers.IntegerField(min_value=1)


_ENDPOINT_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
_ENDPOINTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": f'Keys look like "GET /models/{{id}}": they match `{ENDPOINT_KEY.pattern}`.',
    "maxProperties": MAX_ENDPOINTS,
    "additionalProperties": {
        "type": "object",
        "properties": {"requestsPerMinute": _ENDPOINT_LIMIT, "burstLimit": _ENDPOINT_LIMIT},
        "required": ["requestsPerMinute", "burstLimit"],
        "additionalProperties": False,
    },
}
if spectacular_settings.OAS_VERSION >= "3.1":  # OpenAPI 3.0's Schema Object has no propertyNames
    _ENDPOINTS_SCHEMA["propertyNames"] = {"pattern": ENDPOINT_KEY.pattern}


@extend_schema_field(_ENDPOINTS_SCHEMA)
class EndpointLimitsField(serializers.DictField):
    """``endpoints``: 'METHOD /path' -> limits. The schema declares the count, the bounds and (from
    OpenAPI 3.1) the key pattern that ``limits.endpoint_errors`` enforces; a plain DictField says "object"."""


class RateLimitsSerializer(serializers.Serializer):
    """The spec's ``RateLimits``."""

    requestsPerMinute = serializers.IntegerField()
    requestsPerHour = serializers.IntegerField()
    requestsPerDay = serializers.IntegerField()
    burstLimit = serializers.IntegerField()
    endpoints = EndpointLimitsField(child=EndpointLimitSerializer())

    class Meta:
        ref_name = "RateLimits"


class WindowUsageSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    resetSeconds = serializers.IntegerField()


class RateLimitUsageSerializer(serializers.Serializer):
    burst = WindowUsageSerializer()
    minute = WindowUsageSerializer()
    hour = WindowUsageSerializer()
    day = WindowUsageSerializer()


class MyRateLimitsSerializer(serializers.Serializer):
    limits = RateLimitsSerializer()
    usage = RateLimitUsageSerializer()
    enforced = serializers.BooleanField(help_text="False when limits are switched off or the limiter is unreachable.")


class RateLimitOverrideSerializer(StrictInputSerializer):
    """What an admin sets; a field left out (PATCH) keeps its value, ``null`` restores the role default."""

    _limit = {"min_value": 1, "max_value": 10_000_000, "required": False, "allow_null": True}
    requestsPerMinute = serializers.IntegerField(source="requests_per_minute", **_limit)
    requestsPerHour = serializers.IntegerField(source="requests_per_hour", **_limit)
    requestsPerDay = serializers.IntegerField(source="requests_per_day", **_limit)
    burstLimit = serializers.IntegerField(source="burst_limit", **_limit)
    endpoints = EndpointLimitsField(child=EndpointLimitSerializer(), required=False, allow_null=True)

    class Meta:
        ref_name = "RateLimitOverride"


class UserRateLimitsSerializer(serializers.Serializer):
    userId = serializers.UUIDField()
    role = serializers.ChoiceField(choices=Role.choices)
    override = serializers.JSONField(allow_null=True)
    effective = RateLimitsSerializer()
