from django.contrib.auth.views import LogoutView
from django.urls import path
from django.views.generic import RedirectView

from console import views

app_name = "console"

urlpatterns = [
    path("", views.index, name="index"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", LogoutView.as_view(next_page="console:login"), name="logout"),
    path("console/token", views.socket_token, name="token"),
    path("console", RedirectView.as_view(pattern_name="console:dashboard", permanent=False)),
    path("console/", views.dashboard, name="dashboard"),
    path("console/models", views.models, name="models"),
    path("console/models/<uuid:model_id>", views.model_detail, name="model"),
    path("console/deployments", views.deployments, name="deployments"),
    path("console/deployments/<uuid:deployment_id>/scale", views.deployment_scale, name="deployment-scale"),
    path("console/deployments/<uuid:deployment_id>/stop", views.deployment_stop, name="deployment-stop"),
    path("console/experiments", views.experiments, name="experiments"),
    path("console/experiments/<uuid:experiment_id>", views.experiment_detail, name="experiment"),
    path("console/experiments/<uuid:experiment_id>/promote", views.experiment_promote, name="experiment-promote"),
    path("console/costs", views.costs, name="costs"),
    path("console/marketplace", views.marketplace, name="marketplace"),
    path("console/marketplace/mine", views.my_models, name="my-models"),
    path("console/marketplace/<uuid:model_id>", views.listing, name="listing"),
    path("console/marketplace/<uuid:model_id>/purchase", views.listing_purchase, name="listing-purchase"),
    path("console/alerts", views.alerts, name="alerts"),
    path("console/alerts/<uuid:alert_id>/acknowledge", views.alert_acknowledge, name="alert-acknowledge"),
]
