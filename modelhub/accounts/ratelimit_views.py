"""``GET /rate-limits`` (the caller's) and ``/rate-limits/users/{userId}`` (admins)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from modelhub.accounts import selectors, services
from modelhub.accounts.models import RateLimitOverride, User
from modelhub.accounts.serializers import MyRateLimitsSerializer, RateLimitOverrideSerializer, UserRateLimitsSerializer
from modelhub.api.exceptions import ErrorCode
from modelhub.api.permissions import RolePermission

_USER_ID = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The user's id.")


class MyRateLimitsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["rate-limits"], summary="Your effective rate limits and current usage", responses=MyRateLimitsSerializer
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.rate_limit_status(request.user))


def _override_data(user: User) -> dict[str, Any] | None:
    override = RateLimitOverride.objects.filter(user=user).first()
    if override is None:
        return None
    return {
        "requestsPerMinute": override.requests_per_minute,
        "requestsPerHour": override.requests_per_hour,
        "requestsPerDay": override.requests_per_day,
        "burstLimit": override.burst_limit,
        "endpoints": override.endpoints,
        "updatedAt": override.updated_at.isoformat().replace("+00:00", "Z"),
    }


class UserRateLimitsView(APIView):
    permission_classes = [RolePermission]
    permission_map = {
        "get": "ratelimits.manage",
        "put": "ratelimits.manage",
        "patch": "ratelimits.manage",
        "delete": "ratelimits.manage",
    }
    not_found_code = ErrorCode.USER_NOT_FOUND
    resource_name = "User"

    def _user(self, user_id: str) -> User:
        import uuid

        from django.http import Http404

        try:
            uuid.UUID(str(user_id))
        except ValueError:
            raise Http404 from None
        return get_object_or_404(User, pk=user_id)

    def _answer(self, user: User) -> Response:
        return Response(
            {
                "userId": str(user.pk),
                "role": user.role,
                "override": _override_data(user),
                "effective": selectors.rate_limits_for(user).as_spec(),
            }
        )

    @extend_schema(
        tags=["rate-limits"],
        summary="A user's override and effective limits (admin)",
        parameters=[_USER_ID],
        responses=UserRateLimitsSerializer,
    )
    def get(self, request: Request, user_id: str) -> Response:
        return self._answer(self._user(user_id))

    @extend_schema(
        tags=["rate-limits"],
        summary="Replace a user's override (admin)",
        parameters=[_USER_ID],
        request=RateLimitOverrideSerializer,
        responses=UserRateLimitsSerializer,
    )
    def put(self, request: Request, user_id: str) -> Response:
        return self._write(request, user_id, replace=True)

    @extend_schema(
        tags=["rate-limits"],
        summary="Change part of a user's override (admin)",
        parameters=[_USER_ID],
        request=RateLimitOverrideSerializer,
        responses=UserRateLimitsSerializer,
    )
    def patch(self, request: Request, user_id: str) -> Response:
        return self._write(request, user_id, replace=False)

    @extend_schema(
        tags=["rate-limits"],
        summary="Back to the role's defaults (admin)",
        parameters=[_USER_ID],
        responses={204: OpenApiResponse(description="Override removed.")},
    )
    def delete(self, request: Request, user_id: str) -> Response:
        services.rate_limit_override_clear(actor=request.user, user=self._user(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _write(self, request: Request, user_id: str, *, replace: bool) -> Response:
        user = self._user(user_id)
        serializer = RateLimitOverrideSerializer(data=request.data, partial=not replace)
        serializer.is_valid(raise_exception=True)
        services.rate_limit_override_set(actor=request.user, user=user, replace=replace, **serializer.validated_data)
        return self._answer(user)
