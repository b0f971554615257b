"""Analytics fixtures: a reused test database's event partitions brought up to date once per session."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _partitions_up_to_date(django_db_setup, django_db_blocker):
    """What the hourly upkeep and prune jobs would have done since the test database was created (with
    --reuse-db that may be days ago): today's range of daily partitions, none older than retention."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from analytics import partitions, services

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            now = timezone.now()
            with transaction.atomic(), connection.cursor() as cursor:
                partitions.drop_before(cursor, now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"]))
            services.ensure_partitions(now=now)
