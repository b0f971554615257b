"""Database helpers shared by migrations."""

from __future__ import annotations

from django.db import migrations


def postgres_only_sql(forward: str, backward: str) -> migrations.RunPython:
    """A migration step that runs raw SQL on PostgreSQL and does nothing on SQLite.

    For what only PostgreSQL has (triggers, GIN/trigram indexes, extensions); the
    embedded SQLite default falls back to plainer queries instead.
    """

    def run(sql: str):  # noqa: ANN202
        def apply(apps, schema_editor) -> None:  # noqa: ANN001
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql, params=None)

        return apply

    return migrations.RunPython(run(forward), run(backward))
