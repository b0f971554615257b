"""Auth endpoints (simplejwt underneath) and user management."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError

from modelhub.accounts import selectors, services
from modelhub.accounts.authentication import JWTAuthentication
from modelhub.accounts.filters import UserFilterSet
from modelhub.accounts.roles import own_only_for, permissions_for
from modelhub.accounts.serializers import (
    LogoutSerializer,
    MeSerializer,
    TokenPairResponseSerializer,
    UserCreateSerializer,
    UserListResponseSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from modelhub.api.exceptions import ErrorCode, TokenExpired
from modelhub.api.viewsets import BaseViewSet


class _TokenErrors:
    """simplejwt views raise InvalidToken for every TokenError; tell expiry apart."""

    def post(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)  # type: ignore[attr-defined]
        try:
            serializer.is_valid(raise_exception=True)
        except ExpiredTokenError as exc:
            raise TokenExpired("The token has expired.") from exc
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        return Response(serializer.validated_data, status=status.HTTP_200_OK)


@extend_schema(
    tags=["auth"],
    summary="Exchange username and password for an access and a refresh token",
    responses=TokenPairResponseSerializer,
)
class TokenObtainView(_TokenErrors, jwt_views.TokenObtainPairView):
    pass


@extend_schema(
    tags=["auth"], summary="Rotate a refresh token (the old one is blacklisted)", responses=TokenPairResponseSerializer
)
class TokenRefreshView(_TokenErrors, jwt_views.TokenRefreshView):
    pass


@extend_schema(
    tags=["auth"],
    summary="Check that a token is valid and not blacklisted",
    responses={200: OpenApiResponse(description="The token is valid.")},
)
class TokenVerifyView(_TokenErrors, jwt_views.TokenVerifyView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["auth"],
        summary="Blacklist a refresh token (idempotent)",
        request=LogoutSerializer,
        responses={204: OpenApiResponse(description="Logged out.")},
    )
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.logout(user=request.user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(tags=["auth"], summary="The caller, their role and what it permits", responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "user": UserSerializer(user).data,
                "role": user.role,
                "permissions": permissions_for(user.role),
                "ownOnly": own_only_for(user.role),
            }
        )


@extend_schema_view(
    list=extend_schema(tags=["users"], summary="List users", responses=UserListResponseSerializer),
    retrieve=extend_schema(tags=["users"], summary="A user", responses={200: UserSerializer}),
    create=extend_schema(
        tags=["users"], summary="Create a user", request=UserCreateSerializer, responses={201: UserSerializer}
    ),
    partial_update=extend_schema(
        tags=["users"],
        summary="Change a user's profile, role or active flag",
        request=UserUpdateSerializer,
        responses={200: UserSerializer},
    ),
    destroy=extend_schema(
        tags=["users"],
        summary="Deactivate a user (kept for history; sessions revoked)",
        responses={204: OpenApiResponse(description="Deactivated.")},
    ),
)
class UserViewSet(BaseViewSet):
    """User management for admins and managers (managers never touch admins)."""

    queryset = selectors.user_queryset()
    serializer_class = UserSerializer
    filterset_class = UserFilterSet
    not_found_code = ErrorCode.USER_NOT_FOUND
    resource_name = "User"
    results_key = "users"
    http_method_names = ["get", "post", "patch", "delete", "options"]
    permission_map = {
        "list": "users.manage",
        "retrieve": "users.manage",
        "create": "users.manage",
        "partial_update": "users.manage",
        "destroy": "users.manage",
    }

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.paginator.get_paginated_response(UserSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(UserSerializer(self.get_object()).data)

    def create(self, request: Request) -> Response:
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(actor=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        user = self.get_object()
        serializer = UserUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(actor=request.user, user=user, **serializer.validated_data)
        return Response(UserSerializer(user).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.user_deactivate(actor=request.user, user=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
