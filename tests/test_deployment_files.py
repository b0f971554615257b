"""What can be checked of the production files without a Docker engine, and settings that fail loudly."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

from modelhub.env import READ_VARS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = ["migrate", "web", "worker", "beat"]


def test_compose_has_the_production_topology():
    assert set(COMPOSE["services"]) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in COMPOSE["services"][name], name
    for name in ("web", "worker", "beat"):
        depends = COMPOSE["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def _check_entry_point(command: list[str]) -> None:
    program = command[0]
    if program == "uvicorn":
        target = next(arg for arg in command[1:] if re.fullmatch(r"[\w.]+:\w+", arg))
        module, attr = target.split(":")
        application = getattr(importlib.import_module(module), attr)
        assert callable(application), target
    elif program == "celery":
        from celery import Celery

        app_module = command[command.index("-A") + 1]
        module = importlib.import_module(app_module)
        assert isinstance(module.celery_app, Celery)
        assert command[command.index("-A") + 2] in {"worker", "beat"}
    elif program == "python":
        assert command[1] == "manage.py" and (ROOT / "manage.py").exists()
        assert command[2] in get_commands(), command
    else:
        raise AssertionError(f"unknown entry point {command}")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_command_names_a_real_entry_point(service):
    _check_entry_point(COMPOSE["services"][service]["command"])


def test_dockerfile_cmd_is_a_real_entry_point():
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    _check_entry_point(yaml.safe_load(cmd))


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_variable_compose_sets_is_read_by_settings(service):
    env = COMPOSE["services"][service]["environment"]
    unknown = set(env) - READ_VARS
    assert not unknown, f"{service} sets variables the settings never read: {unknown}"


def test_env_example_lists_exactly_what_settings_read():
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    }
    assert names == READ_VARS


def _settings_error(**overrides: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"SECRET_KEY": "s" * 40, "JWT_SIGNING_KEY": "j" * 40, "DJANGO_SETTINGS_MODULE": "modelhub.settings"})
    env.update(overrides)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, f"settings accepted {overrides}"
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is invalid"),
        ({"SECRET_KEY": "short"}, "at least 32 characters"),
        ({"JWT_SIGNING_KEY": "s" * 40}, "JWT_SIGNING_KEY must differ"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "PostgreSQL or SQLite"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"JWT_ACCESS_MINUTES": "0"}, "JWT_ACCESS_MINUTES"),
        ({"JWT_REFRESH_DAYS": "seven"}, "JWT_REFRESH_DAYS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DB_POOL_MAX_SIZE": "lots"}, "DB_POOL_MAX_SIZE"),
        ({"DB_POOL_MIN_SIZE": "20", "DB_POOL_MAX_SIZE": "5"}, "DB_POOL_MIN_SIZE"),
    ],
)
def test_invalid_settings_fail_at_start_with_a_clear_message(overrides, needle):
    message = _settings_error(**overrides)
    assert "ImproperlyConfigured" in message and needle in message, message


def test_debug_is_off_unless_asked_for():
    from django.conf import settings

    assert settings.DEBUG is False
