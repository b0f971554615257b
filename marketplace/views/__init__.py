"""The marketplace endpoints: the spec's three routes plus listing management, access-request
decisions, cancellations, refunds and reviews (README "Marketplace")."""

from marketplace.views.browse import MarketplaceModelViewSet, MyModelsViewSet
from marketplace.views.entitlements import EntitlementViewSet, PurchaseViewSet
from marketplace.views.management import ListingManagementViewSet

__all__ = [
    "EntitlementViewSet",
    "ListingManagementViewSet",
    "MarketplaceModelViewSet",
    "MyModelsViewSet",
    "PurchaseViewSet",
]
