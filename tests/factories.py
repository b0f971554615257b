"""factory_boy factories for the hub's models."""

from decimal import Decimal

import factory

from catalog.models import ModelRegistry
from modelhub.accounts.models import User
from modelhub.roles import STAFF_ROLES, Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.VIEWER
    is_staff = factory.LazyAttribute(lambda u: u.role in STAFF_ROLES)

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or PASSWORD)
        if create:
            self.save(update_fields=["password"])


class ModelRegistryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelRegistry

    name = factory.Sequence(lambda n: f"model-{n}")
    version = "1.0.0"
    provider = "openai"
    model_type = "text"
    capabilities = factory.LazyFunction(lambda: ["chat"])
    supported_tasks = factory.LazyFunction(lambda: ["chat"])
    max_tokens = 4096
    context_window = 128_000
    baseline_avg_latency_ms = 500.0
    baseline_cost_per_1k_tokens = Decimal("0.001")
    baseline_success_rate = 0.99
    description = "A test model."
    tags = factory.LazyFunction(list)
    category = "general"


def _deployment_configuration(replicas: int = 1) -> dict:
    from deployments.config import nest

    return nest({"replicas": replicas, "resources": {"cpu": "500m", "memory": "1Gi"}})


class DeploymentFactory(factory.django.DjangoModelFactory):
    """A deployment row as the services leave it; status changes in tests go through the services."""

    class Meta:
        model = "deployments.Deployment"

    model = factory.SubFactory(ModelRegistryFactory)
    version = factory.LazyAttribute(lambda d: d.model.version)
    environment = "development"
    status = "running"
    replicas = 1
    configuration = factory.LazyAttribute(lambda d: _deployment_configuration(d.replicas))
    owner = factory.SubFactory(UserFactory, role=Role.DEVELOPER)
