from rest_framework.routers import SimpleRouter

from catalog.views import ModelViewSet

app_name = "catalog"

router = SimpleRouter(trailing_slash=False)
router.register("models", ModelViewSet, basename="model")

urlpatterns = router.urls
