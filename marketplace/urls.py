from django.urls import path
from rest_framework.routers import SimpleRouter

from marketplace import views

app_name = "marketplace"

router = SimpleRouter(trailing_slash=False)
router.register("marketplace/models", views.MarketplaceModelViewSet, basename="listing")
router.register("marketplace/entitlements", views.EntitlementViewSet, basename="entitlement")
router.register("marketplace/purchases", views.PurchaseViewSet, basename="purchase")
router.register("marketplace/listings", views.ListingManagementViewSet, basename="managed-listing")

urlpatterns = [
    path("marketplace/my-models", views.MyModelsViewSet.as_view({"get": "list"}), name="my-models"),
    *router.urls,
]
