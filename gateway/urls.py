from rest_framework.routers import SimpleRouter

from gateway.views import ApiKeyViewSet

app_name = "gateway"

router = SimpleRouter(trailing_slash=False)
router.register("api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = router.urls
