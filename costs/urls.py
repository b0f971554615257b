from rest_framework.routers import SimpleRouter

app_name = "costs"

router = SimpleRouter(trailing_slash=False)

urlpatterns = router.urls
