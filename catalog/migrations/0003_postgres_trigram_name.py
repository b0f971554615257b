"""A trigram index for the catalog's partial-name match (``name ILIKE '%...%'``), PostgreSQL only.

Search ORs the full-text match with a substring match on the name; without this
index that OR made PostgreSQL scan every row of the chosen providers.
"""

from django.db import migrations

from modelhub.db import postgres_only_sql

FORWARD = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS catalog_model_name_trgm ON catalog_modelregistry USING gin (upper(name::text) gin_trgm_ops);
"""
BACKWARD = "DROP INDEX IF EXISTS catalog_model_name_trgm;"


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_postgres_search")]

    operations = [postgres_only_sql(FORWARD, BACKWARD)]
