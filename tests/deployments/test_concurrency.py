"""Races, with real concurrent transactions on PostgreSQL: limits hold and each transition happens once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings

from deployments import services
from deployments.models import Deployment, DeploymentTransition
from modelhub.api.exceptions import AppError
from tests import concurrency
from tests.conftest import is_postgres
from tests.factories import DeploymentFactory, ModelRegistryFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 6


@pytest.fixture(autouse=True)
def _postgres_only():
    if not is_postgres():
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")


def race(work: Callable[[int], object]) -> tuple[list[object], list[Exception]]:
    """Run ``work(i)`` in THREADS threads released at once; each thread has its own connection."""
    return concurrency.race(work, THREADS)


CONFIG = {"replicas": 1, "resources": {"cpu": "100m", "memory": "128Mi"}}


@override_settings(DEPLOYMENTS_MAX_LIVE_PER_MODEL_ENVIRONMENT=2)
def test_concurrent_creates_respect_the_model_limit():
    model = ModelRegistryFactory()
    users = [UserFactory(role="developer") for _ in range(THREADS)]

    def create(i: int) -> Deployment:
        return services.deployment_create(
            actor=users[i],
            model_id=model.pk,
            version=model.version,
            environment="production",
            configuration=dict(CONFIG),
        )

    results, errors = race(create)
    assert len(results) == 2
    assert len(errors) == THREADS - 2
    assert all(isinstance(e, services.DeploymentLimitExceeded) for e in errors), errors
    assert Deployment.objects.filter(model=model, environment="production").count() == 2


@override_settings(DEPLOYMENTS_MAX_LIVE_PER_USER=1)
def test_concurrent_creates_respect_the_user_limit():
    models = [ModelRegistryFactory() for _ in range(THREADS)]
    user = UserFactory(role="developer")

    def create(i: int) -> Deployment:
        return services.deployment_create(
            actor=user,
            model_id=models[i].pk,
            version=models[i].version,
            environment="staging",
            configuration=dict(CONFIG),
        )

    results, errors = race(create)
    assert len(results) == 1 and all(isinstance(e, services.DeploymentLimitExceeded) for e in errors), errors
    assert Deployment.objects.filter(owner=user).count() == 1


def test_one_of_many_concurrent_completions_wins():
    deployment = DeploymentFactory(status="creating")

    def complete(i: int) -> Deployment:
        with transaction.atomic():
            return services._transition(
                deployment.pk, to_status="running", actor=None, reason=f"worker {i}", only_from=frozenset({"creating"})
            )

    results, errors = race(complete)
    assert len(results) == 1
    assert len(errors) == THREADS - 1 and all(isinstance(e, services.IllegalTransition) for e in errors)
    assert all(e.details["currentStatus"] == "running" for e in errors)
    assert DeploymentTransition.objects.filter(deployment=deployment, to_status="running").count() == 1


def test_concurrent_scale_requests_start_one_scaling(personas):
    deployment = DeploymentFactory(status="running", replicas=1, owner=personas["developer"])

    def scale(i: int) -> Deployment:
        return services.deployment_scale(deployment=deployment, actor=personas["manager"], replicas=2 + i)

    results, errors = race(scale)
    # The first one to lock the row wins; the task it queues may finish the scaling before the
    # others look, in which case another scale can legitimately start after it. Never two at once:
    scalings = DeploymentTransition.objects.filter(deployment=deployment, to_status="scaling").order_by(
        "created_at", "id"
    )
    finished = DeploymentTransition.objects.filter(deployment=deployment, from_status="scaling").count()
    assert scalings.count() >= 1 and scalings.count() - finished <= 1
    assert all(isinstance(e, AppError) and e.status_code == 409 for e in errors), errors
    assert len(results) == scalings.count()
    steps = list(
        DeploymentTransition.objects.filter(deployment=deployment)
        .order_by("created_at", "id")
        .values_list("from_status", "to_status")
    )
    # the log is a valid walk through the machine: each step starts where the previous one ended
    assert all(steps[i][1] == steps[i + 1][0] for i in range(len(steps) - 1)), steps
    assert connection.vendor == "postgresql"
