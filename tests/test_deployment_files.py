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

from modelhub.env import READ_VARS, is_secret

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = ["migrate", "web", "worker", "beat"]


def test_compose_has_the_production_topology():
    always = {name for name, service in COMPOSE["services"].items() if not service.get("profiles")}
    assert always == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    monitoring = {name for name, service in COMPOSE["services"].items() if "monitoring" in service.get("profiles", ())}
    assert monitoring == {"prometheus", "grafana"}
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in COMPOSE["services"][name], name
    for name in ("web", "worker", "beat"):
        depends = COMPOSE["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def _check_entry_point(command: list[str]) -> None:
    if command[0] == "scripts/metrics-dir":  # the wrapper that gives the process its metrics directory
        assert (ROOT / command[0]).stat().st_mode & 0o111, "scripts/metrics-dir must be executable"
        command = command[1:]
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


def _secret_file_of_a_read_var(var: str) -> bool:
    """``<NAME>_FILE`` (a Docker secret) stands for NAME when NAME is a secret the settings read."""
    name = var.removesuffix("_FILE")
    return name != var and name in READ_VARS and is_secret(name)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_variable_compose_sets_is_read_by_settings(service):
    env = COMPOSE["services"][service]["environment"]
    unknown = {var for var in env if var not in READ_VARS and not _secret_file_of_a_read_var(var)}
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


# --- requirements/ ------------------------------------------------------------------------------

REQUIREMENTS = ROOT / "requirements"
TEST_ONLY = {"pytest", "pytest-django", "schemathesis", "hypothesis", "factory-boy", "faker", "ruff", "import-linter"}


def _requirement_lines(name: str) -> list[str]:
    lines = (REQUIREMENTS / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _includes(name: str) -> set[str]:
    """``name`` and every file it includes with ``-r``, transitively."""
    found = {name}
    for line in _requirement_lines(name):
        if line.startswith("-r "):
            found |= _includes(line.removeprefix("-r ").strip())
    return found


def _pinned(name: str) -> dict[str, str]:
    pins = {}
    for line in _requirement_lines(name):
        if line.startswith("-r "):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"requirements/{name}: not pinned as name==version: {line!r}"
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_requirements_are_split_and_every_line_is_pinned():
    assert not (ROOT / "requirements.txt").exists(), "requirements live in requirements/ (base, test, bench)"
    assert {path.name for path in REQUIREMENTS.glob("*.txt")} == {"base.txt", "test.txt", "bench.txt"}
    names: dict[str, str] = {}
    for name in ("base.txt", "test.txt", "bench.txt"):
        for package in _pinned(name):
            assert package not in names, f"{package} is pinned in both {names[package]} and {name}"
            names[package] = name
    assert _includes("test.txt") == {"test.txt", "base.txt"}
    assert "base.txt" in _includes("bench.txt")
    assert _includes("base.txt") == {"base.txt"}


def test_production_installs_no_test_tools():
    assert not TEST_ONLY & set(_pinned("base.txt"))
    assert set(_pinned("test.txt")) >= TEST_ONLY


def test_the_dockerfile_installs_base_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install (.*)", dockerfile)
    assert installs == ["-r requirements/base.txt"], installs
    assert re.search(r"^COPY requirements/base.txt requirements/base.txt$", dockerfile, re.M)


def test_bootstrap_installs_test_and_bench_and_hashes_every_file_they_include():
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    installed = set(re.findall(r"-r requirements/(\w+\.txt)", bootstrap))
    assert installed == {"test.txt", "bench.txt"}
    hashed = set(re.search(r"want=.*", bootstrap).group(0).split()) & {
        f"requirements/{n}" for n in ("base.txt", "test.txt", "bench.txt")
    }
    assert hashed == {f"requirements/{name}" for name in _includes("test.txt") | _includes("bench.txt")}


# --- the monitoring profile -------------------------------------------------------------------------

MONITORING = ROOT / "deploy" / "monitoring"


def _exported_metric_names() -> set[str]:
    """Every sample name the hub can export: its own metrics (modelhub.metrics) and the scrape-time gauges."""
    from prometheus_client import REGISTRY

    from modelhub import metrics  # noqa: F401 - registers the metrics
    from modelhub.api import metrics_view  # noqa: F401 - registers the scrape-time providers

    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("modelhub_"):
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
            names |= {family.name + suffix for suffix in suffixes}
    source = (ROOT / "modelhub" / "api" / "metrics_view.py").read_text()
    names |= set(re.findall(r'"(modelhub_[a-z_]+)"', source))
    return names


def test_the_grafana_dashboard_queries_only_metrics_the_hub_exports():
    import json

    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "modelhub.json").read_text())
    exported = _exported_metric_names()
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"\bmodelhub_[a-z_]+\b", target["expr"]))
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"the dashboard queries metrics the hub does not export: {sorted(queried - exported)}"


def test_prometheus_scrapes_the_web_service_with_the_token_secret():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["web:8000"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert COMPOSE["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    assert "metrics_token" in COMPOSE["services"]["prometheus"]["secrets"]
