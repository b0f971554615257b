"""Database helpers: migrations' PostgreSQL-only steps, fast row reading, queries compiled once."""

from __future__ import annotations

import contextlib
import time
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
    sql, params = qs.query.sql_with_params()
    yield from _pg_rows(connection, sql, params, chunk)


def _pg_rows(connection, sql: str, params, chunk: int):
    import psycopg
    from psycopg.types.datetime import TimestamptzLoader

    connection.ensure_connection()
    with psycopg.ClientCursor(connection.connection) as cursor:
        cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        with _logged(connection, sql, params):
            cursor.execute(sql, params)
        while batch := cursor.fetchmany(chunk):
            yield from batch


@contextlib.contextmanager
def _logged(connection, sql: str, params):
    """Record a statement run on a raw psycopg cursor where Django records its own (``connection.queries``,
    ``django_assert_num_queries``, ``CaptureQueriesContext``), when it records them at all."""
    if not connection.queries_logged:
        yield
        return
    started = time.monotonic()
    try:
        yield
    finally:
        connection.queries_log.append({"sql": f"{sql} -- {params!r}", "time": f"{time.monotonic() - started:.3f}"})


class CompiledRows:
    """A ``values_list()`` query compiled once per shape and run again with other values.

    ``build(**shape, **values)`` returns the queryset; ``shape`` holds what changes its SQL (constants
    such as a granularity, which filters apply, how many values a list has: hashable), ``values`` what
    only changes its parameters. For a query whose compilation costs more than its execution (tens of
    annotations, a UNION, a filterset's filters): on PostgreSQL the SQL is compiled once per shape, with
    stand-in values that are then found among the compiled parameters and replaced by each call's own,
    bound server-side with binary results (a prepared statement was tried too: its generic plan made the
    analytics statement slower); elsewhere the queryset is built and run each time, as
    :func:`iter_values_rows` does. Values may be datetimes, UUIDs or strings without NUL characters. A
    string may also reach the SQL as a ``LIKE`` pattern (``icontains``, ``startswith``...): its slot
    escapes the call's value the way Django does. A parameter derived from a value in any other way, or
    a value the compiled SQL does not carry, is refused when the shape is compiled (``ValueError``): put
    such a value in the shape. At most ``max_shapes`` shapes are kept (the least recently used go).
    """

    def __init__(self, build, *, max_shapes: int = 512) -> None:
        import threading

        self.build = build
        self.max_shapes = max_shapes
        self._compiled: dict[tuple, tuple[str, list]] = {}
        self._lock = threading.Lock()

    def rows(self, shape: dict, **values):
        from django.db import connections

        connection = connections["default"]
        if connection.vendor != "postgresql":
            yield from iter_values_rows(self.build(**shape, **values))
            return
        key = (tuple(sorted(shape.items())), tuple(sorted(values)))
        with self._lock:  # requests run on a thread pool
            compiled = self._compiled.pop(key, None)
            if compiled is not None:
                self._compiled[key] = compiled  # re-inserted last: the dict's order is the recency
        if compiled is None:
            qs = self.build(**shape, **_stand_ins(values))
            compiled = _slots(qs, values, connection)
            with self._lock:
                while len(self._compiled) >= self.max_shapes:
                    del self._compiled[next(iter(self._compiled))]
                self._compiled[key] = compiled
        sql, slots = compiled
        params = [slot.bind(values) if isinstance(slot, _Slot) else slot for slot in slots]
        connection.ensure_connection()
        # Server-side binding with binary results: 2.2 ms where Django's client-side binding took 3.4 ms for
        # the analytics statement's 175 rows (numerics and timestamps parse faster; psycopg's C loaders).
        import psycopg

        with psycopg.Cursor(connection.connection) as cursor:
            with _logged(connection, sql, params):
                cursor.execute(sql, params, binary=True)
            while batch := cursor.fetchmany(5000):
                yield from batch


_STAND_IN = "\x00stand-in "


class _Slot:
    """A compiled parameter that is a call's value (by name), or a ``LIKE`` pattern made of one."""

    __slots__ = ("name", "prefix", "suffix", "escape")

    def __init__(self, name: str, prefix: str = "", suffix: str = "", escape=None) -> None:
        self.name, self.prefix, self.suffix, self.escape = name, prefix, suffix, escape

    def bind(self, values: dict):
        value = values[self.name]
        if self.escape is None:
            return value
        return f"{self.prefix}{self.escape(value)}{self.suffix}"


def _stand_ins(values: dict) -> dict:
    import uuid
    from datetime import UTC, datetime

    out = {}
    for i, (name, value) in enumerate(sorted(values.items())):
        if isinstance(value, datetime):
            out[name] = datetime(1000 + i, 1, 1, tzinfo=UTC)
        elif isinstance(value, uuid.UUID):
            out[name] = uuid.UUID(int=i + 1)
        elif isinstance(value, str):
            if "\x00" in value:
                raise ValueError(f"CompiledRows: {name} holds a NUL character")
            out[name] = f"{_STAND_IN}{name}"
        else:
            raise TypeError(f"CompiledRows: {name} is a {type(value).__name__}; put it in the shape instead")
    return out


def _slots(qs, values: dict, connection) -> tuple[str, list]:
    import uuid
    from datetime import datetime

    stand_ins = _stand_ins(values)
    by_value = {value: name for name, value in stand_ins.items()}
    sql, params = qs.query.sql_with_params()
    slots: list = []
    unused = set(values)
    for param in params:
        name = by_value.get(param) if isinstance(param, datetime | uuid.UUID | str) else None
        if name is not None:
            slots.append(_Slot(name))
        elif isinstance(param, datetime | uuid.UUID):
            raise ValueError(f"CompiledRows: the parameter {param!r} was derived from a value, not passed as one")
        elif isinstance(param, str) and _STAND_IN in param:
            slot = _like_slot(param, stand_ins, connection)
            if slot is None:
                raise ValueError(f"CompiledRows: the parameter {param!r} was derived from a value, not passed as one")
            name = slot.name
            slots.append(slot)
        elif _STAND_IN in repr(param):  # e.g. a JSON-adapted list holding a value
            raise ValueError(f"CompiledRows: the parameter {param!r} was derived from a value, not passed as one")
        else:
            slots.append(param)
        unused.discard(name)
    if unused:
        raise ValueError(f"CompiledRows: the compiled query does not take {sorted(unused)} as parameters")
    return sql, slots


def _like_slot(param: str, stand_ins: dict, connection) -> _Slot | None:
    """The slot of a ``LIKE`` pattern around one stand-in (``%v%``, ``v%``, ``%v``), else None."""
    for name, stand_in in stand_ins.items():
        if not isinstance(stand_in, str):
            continue
        for prefix, suffix in (("%", "%"), ("", "%"), ("%", "")):
            if param == f"{prefix}{stand_in}{suffix}":
                return _Slot(name, prefix, suffix, connection.ops.prep_for_like_query)
    return None


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
