"""PostgreSQL and Redis for the benchmarks: DSNs of a bench database, drop + create it, clear a bench Redis DB's keys."""

from __future__ import annotations

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres connect_timeout=5"


def pg_dsn(db_name: str) -> str:
    """libpq DSN of a bench database (psycopg)."""
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={db_name} connect_timeout=5"


def database_url(db_name: str) -> str:
    """``DATABASE_URL`` of a bench database (Django settings)."""
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}"


def reset_database(db_name: str) -> None:
    """Drop (forcing out any connection) and re-create a bench database."""
    import psycopg

    if not db_name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {db_name!r}")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db_name}")


def redis_delete_matching(redis_url: str, pattern: str, limit: int = 10_000) -> int:
    """Delete up to ``limit`` keys matching ``pattern`` in the Redis DB of ``redis_url``; returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=pattern, count=500))[:limit]
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()
