from django.urls import path
from rest_framework.routers import SimpleRouter

from modelhub.accounts import ratelimit_views, views

app_name = "accounts"

router = SimpleRouter(trailing_slash=False)
router.register("users", views.UserViewSet, basename="user")

urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="token"),
    path("auth/token/refresh", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/token/verify", views.TokenVerifyView.as_view(), name="token-verify"),
    path("auth/logout", views.LogoutView.as_view(), name="logout"),
    path("auth/me", views.MeView.as_view(), name="me"),
    path("rate-limits", ratelimit_views.MyRateLimitsView.as_view(), name="rate-limits"),
    path("rate-limits/users/<str:user_id>", ratelimit_views.UserRateLimitsView.as_view(), name="user-rate-limits"),
    *router.urls,
]
