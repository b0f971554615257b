"""Root URLs: the versioned API under /api/v1/modelhub/, the Django admin, the schema and docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from modelhub.api.health import HealthView
from modelhub.api.metrics_view import metrics_view

v1 = [
    path("health", HealthView.as_view(), name="health"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="v1:schema"), name="docs"),
    path("", include("modelhub.accounts.urls")),
    path("", include("catalog.urls")),
    path("", include("deployments.urls")),
    path("", include("analytics.urls")),
    path("", include("experiments.urls")),
    path("", include("costs.urls")),
    path("", include("marketplace.urls")),
    path("", include("gateway.urls")),
]

# The Django admin is for staff governance; its "View site" link goes to the console.
admin.site.site_header = "Model Hub administration"
admin.site.site_title = "Model Hub admin"
admin.site.index_title = "Governance"
admin.site.site_url = "/console/"

urlpatterns = [
    path("api/v1/modelhub/", include((v1, "v1"), namespace="v1")),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("console.urls")),
]

handler400 = "modelhub.api.views.bad_request"
handler403 = "modelhub.api.views.permission_denied"
handler404 = "modelhub.api.views.not_found"
handler500 = "modelhub.api.views.server_error"
