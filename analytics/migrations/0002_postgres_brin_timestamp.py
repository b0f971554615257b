"""A BRIN index on usage-event timestamps (PostgreSQL only), for pruning by age.

Events arrive roughly in time order, so a block-range index answers "older than N days"
with a few pages for the whole table and costs next to nothing per insert, where a
B-tree on a hot, ever-growing column is one more structure to update for every event.
SQLite (the embedded default) prunes small tables with a scan.
"""

from django.db import migrations

from modelhub.db import postgres_only_sql

FORWARD = "CREATE INDEX IF NOT EXISTS analytics_event_ts_brin ON analytics_usageevent USING brin (timestamp);"
BACKWARD = "DROP INDEX IF EXISTS analytics_event_ts_brin;"


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]

    operations = [postgres_only_sql(FORWARD, BACKWARD)]
