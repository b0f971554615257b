from django.urls import path
from rest_framework.routers import SimpleRouter

from analytics.views import AlertViewSet, DashboardView, EventIngestView, PerformanceView

app_name = "analytics"

router = SimpleRouter(trailing_slash=False)
router.register("analytics/alerts", AlertViewSet, basename="alert")

urlpatterns = [
    path("analytics/events", EventIngestView.as_view(), name="events"),
    path("analytics/models/<str:model_id>/performance", PerformanceView.as_view(), name="performance"),
    path("analytics/dashboard", DashboardView.as_view(), name="dashboard"),
    *router.urls,
]
