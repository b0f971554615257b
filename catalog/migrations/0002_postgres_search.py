"""PostgreSQL full-text search for the catalog: a trigger-maintained tsvector and GIN indexes.

A trigger (rather than application code) keeps ``search_vector`` right for every
write path - ORM saves, bulk_create, COPY. Weights: name A; category, tags and
capabilities B; description C. On SQLite this migration does nothing; search
falls back to substring matching there.
"""

from django.db import migrations

from modelhub.db import postgres_only_sql

FORWARD = """
CREATE OR REPLACE FUNCTION catalog_model_search_vector() RETURNS trigger AS $$
BEGIN
    NEW.search_vector :=
        setweight(to_tsvector('english', coalesce(NEW.name, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(NEW.category, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(
            (SELECT string_agg(value, ' ') FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(NEW.tags) = 'array' THEN NEW.tags ELSE '[]'::jsonb END)), '')), 'B') ||
        setweight(to_tsvector('english', coalesce(
            (SELECT string_agg(value, ' ') FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(NEW.capabilities) = 'array' THEN NEW.capabilities ELSE '[]'::jsonb END)), '')), 'B') ||
        setweight(to_tsvector('english', coalesce(NEW.description, '')), 'C');
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS catalog_model_search_vector_trg ON catalog_modelregistry;
CREATE TRIGGER catalog_model_search_vector_trg
    BEFORE INSERT OR UPDATE OF name, category, tags, capabilities, description
    ON catalog_modelregistry FOR EACH ROW EXECUTE FUNCTION catalog_model_search_vector();

CREATE INDEX IF NOT EXISTS catalog_model_search_gin ON catalog_modelregistry USING gin (search_vector);
CREATE INDEX IF NOT EXISTS catalog_model_capabilities_gin ON catalog_modelregistry USING gin (capabilities jsonb_path_ops);

UPDATE catalog_modelregistry SET name = name;
"""

BACKWARD = """
DROP INDEX IF EXISTS catalog_model_capabilities_gin;
DROP INDEX IF EXISTS catalog_model_search_gin;
DROP TRIGGER IF EXISTS catalog_model_search_vector_trg ON catalog_modelregistry;
DROP FUNCTION IF EXISTS catalog_model_search_vector();
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [postgres_only_sql(FORWARD, BACKWARD)]
