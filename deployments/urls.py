from rest_framework.routers import SimpleRouter

from deployments.views import DeploymentViewSet

app_name = "deployments"

router = SimpleRouter(trailing_slash=False)
router.register("deployments", DeploymentViewSet, basename="deployment")

urlpatterns = router.urls
