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
from modelhub.accounts.filters import UserFilterSet
from modelhub.accounts.serializers import (
    LogoutSerializer,
    MeSerializer,
    TokenPairResponseSerializer,
    UserCreateSerializer,
    UserListResponseSerializer,
    UserResponseSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from modelhub.api.authentication import JWTAuthentication
from modelhub.api.exceptions import ErrorCode, TokenExpired
from modelhub.api.viewsets import BaseViewSet
from modelhub.roles import own_only_for, permissions_for


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
    retrieve=extend_schema(tags=["users"], summary="A user", responses={200: UserResponseSerializer}),
    create=extend_schema(
        tags=["users"], summary="Create a user", request=UserCreateSerializer, responses={201: UserResponseSerializer}
    ),
    partial_update=extend_schema(
        tags=["users"],
        summary="Change a user's profile, role or active flag",
        request=UserUpdateSerializer,
        responses={200: UserResponseSerializer},
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
    input_serializer_classes = {"create": UserCreateSerializer, "partial_update": UserUpdateSerializer}
    create_service = services.user_create
    update_service = services.user_update  # PATCH only: PUT is not in http_method_names
    destroy_service = services.user_deactivate
    instance_kwarg = "user"
    filterset_class = UserFilterSet
    not_found_code = ErrorCode.USER_NOT_FOUND
    resource_name = "User"
    envelope_key = "user"
    results_key = "users"
    http_method_names = ["get", "post", "patch", "delete", "options"]
    permission_map = {
        "list": "users.manage",
        "retrieve": "users.manage",
        "create": "users.manage",
        "partial_update": "users.manage",
        "destroy": "users.manage",
    }
