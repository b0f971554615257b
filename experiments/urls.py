from rest_framework.routers import SimpleRouter

from experiments.views import ExperimentViewSet

app_name = "experiments"

router = SimpleRouter(trailing_slash=False)
router.register("experiments", ExperimentViewSet, basename="experiment")

urlpatterns = router.urls
