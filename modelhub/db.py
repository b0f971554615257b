"""Database helpers shared by migrations."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def postgres_only_sql(forward: str, backward: str) -> migrations.RunPython:
    """A migration step that runs raw SQL on PostgreSQL and does nothing on SQLite.

    For what only PostgreSQL has (triggers, GIN/trigram indexes, extensions); the
    embedded SQLite default falls back to plainer queries instead.
    """

    def run(sql: str):
        def apply(apps, schema_editor) -> None:
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql, params=None)

        return apply

    return migrations.RunPython(run(forward), run(backward))


def iter_values_rows(qs, chunk: int = 5000):
    """The rows of a ``values_list()`` queryset, fast on PostgreSQL.

    There they come straight from a psycopg cursor with psycopg's own (C) timestamptz
    loader: Django registers a loader subclass that parses timestamps in pure Python
    (~8 us a value - seconds for a day of usage events). The session time zone is UTC
    (Django sets it), so values are UTC-aware, and the columns used this way need no
    other conversion on PostgreSQL (integer sums must be cast back to bigint in SQL).
    Elsewhere this is Django's chunked iterator.
    """
    from django.db import connections

    connection = connections[qs.db]
    if connection.vendor != "postgresql":
        yield from qs.iterator(chunk_size=chunk)
        return
    import psycopg
    from psycopg.types.datetime import TimestamptzLoader

    sql, params = qs.query.sql_with_params()
    connection.ensure_connection()
    with psycopg.ClientCursor(connection.connection) as cursor:
        cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(chunk):
            yield from batch


def db_in_thread(fn: Any) -> Any:
    """``fn`` (synchronous, touching the database) as a coroutine function for async code.

    It runs on a worker thread (``sync_to_async(thread_sensitive=False)``) and gives the thread's
    database connection back when it returns - to the pool on PostgreSQL - as Django does at the end
    of a request. Without that every executor thread of every event loop keeps a connection of the
    pool for as long as it lives, and the pool runs dry (PoolTimeout) under enough loops and threads.
    """
    import functools

    from asgiref.sync import sync_to_async
    from django.db import close_old_connections

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)
