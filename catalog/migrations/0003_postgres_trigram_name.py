"""A trigram index for the catalog's partial-name match (``name ILIKE '%...%'``), PostgreSQL only.

Search ORs the full-text match with a substring match on the name; without this
index that OR made PostgreSQL scan every row of the chosen providers.
"""

from django.db import migrations

FORWARD = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS catalog_model_name_trgm ON catalog_modelregistry USING gin (upper(name::text) gin_trgm_ops);
"""
BACKWARD = "DROP INDEX IF EXISTS catalog_model_name_trgm;"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_postgres_search")]

    operations = [migrations.RunPython(forward, backward)]
