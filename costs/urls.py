from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from costs import views

app_name = "costs"

router = SimpleRouter(trailing_slash=False)
router.register("cost/budgets", views.BudgetViewSet, basename="budget")
router.register("cost/channels", views.ChannelViewSet, basename="channel")
router.register("cost/notifications", views.NotificationViewSet, basename="notification")

urlpatterns = [
    path("cost/analysis", views.AnalysisView.as_view(), name="analysis"),
    path("cost/authorize", views.AuthorizeView.as_view(), name="authorize"),
    re_path(
        r"^cost/authorize/(?P<reservation_id>[A-Za-z0-9_-]{1,64})$", views.ReservationView.as_view(), name="reservation"
    ),
    *router.urls,
]
