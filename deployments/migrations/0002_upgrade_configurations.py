"""Upgrade every stored deployment configuration to schema version 2 (see deployments/config.py).

Reads also upgrade on the fly, so this migration is what makes the stored rows (and
queries on them) current. It upgrades to version 2 explicitly, not to "the latest":
a later schema version comes with its own migration.
"""

from django.db import migrations

TARGET_VERSION = 2


def upgrade_stored_configurations(apps, schema_editor):  # noqa: ANN001, ARG001
    from deployments.config import schema_version, upgrade

    Deployment = apps.get_model("deployments", "Deployment")
    for deployment in Deployment.objects.only("id", "configuration").iterator(chunk_size=500):
        config = deployment.configuration or {}
        if schema_version(config) < TARGET_VERSION:
            deployment.configuration = upgrade(config, target=TARGET_VERSION)
            deployment.save(update_fields=["configuration"])


class Migration(migrations.Migration):
    dependencies = [("deployments", "0001_initial")]

    operations = [migrations.RunPython(upgrade_stored_configurations, migrations.RunPython.noop, elidable=False)]
