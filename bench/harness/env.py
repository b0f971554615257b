"""The environment for the server and the subprocesses, and running those subprocesses."""

from __future__ import annotations

import os
import secrets
import subprocess

from .db import database_url
from .paths import PYTHON, ROOT


def bench_target(db_name: str, redis_url: str) -> tuple[str, str]:
    """A script's database and Redis URL: its own defaults, unless ``BENCH_DB_NAME`` / ``BENCH_REDIS_URL``
    name others (for running beside another checkout's benchmarks)."""
    return os.environ.get("BENCH_DB_NAME") or db_name, os.environ.get("BENCH_REDIS_URL") or redis_url


def bench_env(db_name: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment for the server and the subprocesses: ours, plus the bench settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        DATABASE_URL=database_url(db_name),
        REDIS_URL=redis_url,
        SECRET_KEY="bench-secret-" + secrets.token_urlsafe(48),
        JWT_SIGNING_KEY="bench-jwt-" + secrets.token_urlsafe(48),
        LOG_LEVEL="WARNING",
        DEBUG="false",  # DEBUG would record every query and skew the figures
        ALLOWED_HOSTS="127.0.0.1,localhost",
        BENCH_PASSWORD="Bench-" + secrets.token_urlsafe(18),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_checked(cmd: list[str], env: dict, timeout: float, what: str) -> str:
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def run_worker(script: str, flag: str, env: dict, timeout: float, what: str, *args: str) -> str:
    """Run ``script flag *args`` (a script's own ``django.setup()`` mode) and return its last output line, or ""."""
    out = run_checked([str(PYTHON), str(script), flag, *args], env, timeout, what).strip()
    return out.splitlines()[-1] if out else ""


def migrate(env: dict) -> None:
    run_checked([str(PYTHON), "manage.py", "migrate", "--noinput"], env, 600, "migrate")
