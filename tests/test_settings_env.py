"""Secrets from ``<NAME>_FILE`` (Docker secrets): read through the one ``env`` object, refused when both are set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from modelhub.env import StrictEnv, is_secret

ROOT = Path(__file__).resolve().parent.parent


def _env(**environ: str) -> StrictEnv:
    reader = StrictEnv()
    reader.ENVIRON = dict(environ)  # the instance reads this mapping instead of os.environ
    return reader


def _secret(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "var, secret",
    [
        ("SECRET_KEY", True),
        ("JWT_SIGNING_KEY", True),
        ("DATABASE_URL", True),
        ("REDIS_URL", True),
        ("DEMO_PASSWORD", True),
        ("OPENAI_API_KEY", True),  # provider keys to come follow the naming rule
        ("DEBUG", False),
        ("ALLOWED_HOSTS", False),
        ("PUBLIC_BASE_URL", False),
        ("JWT_ACCESS_MINUTES", False),
    ],
)
def test_which_variables_are_secrets(var, secret):
    assert is_secret(var) is secret


def test_a_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path):
    reader = _env(SECRET_KEY_FILE=_secret(tmp_path, "secret_key", "k" * 40 + "\n"))
    assert reader.str("SECRET_KEY") == "k" * 40


def test_a_url_secret_is_parsed_like_the_variable(tmp_path):
    reader = _env(
        DATABASE_URL_FILE=_secret(tmp_path, "db", "postgres://hub:p%40ss@db.internal:5432/modelhub\n"),
        REDIS_URL_FILE=_secret(tmp_path, "redis", "redis://:pw@cache:6379/0"),
    )
    database = reader.db_url("DATABASE_URL", default="sqlite:///x")
    assert (database["HOST"], database["NAME"], database["USER"], database["PASSWORD"]) == (
        "db.internal",
        "modelhub",
        "hub",
        "p@ss",
    )
    assert reader.str("REDIS_URL", default="") == "redis://:pw@cache:6379/0"


def test_the_plain_variable_still_works_and_an_empty_one_gives_way_to_the_file(tmp_path):
    assert _env(DEMO_PASSWORD="plain").str("DEMO_PASSWORD", default="") == "plain"
    # `.env.example` copied as it is leaves `DEMO_PASSWORD=` empty: that is not "set".
    reader = _env(DEMO_PASSWORD="", DEMO_PASSWORD_FILE=_secret(tmp_path, "demo", "from-file"))
    assert reader.str("DEMO_PASSWORD", default="") == "from-file"


def test_both_set_is_refused(tmp_path):
    reader = _env(SECRET_KEY="k" * 40, SECRET_KEY_FILE=_secret(tmp_path, "secret_key", "f" * 40))
    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY or SECRET_KEY_FILE, not both"):
        reader.str("SECRET_KEY")


def test_an_unreadable_file_names_the_variable(tmp_path):
    reader = _env(JWT_SIGNING_KEY_FILE=str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="JWT_SIGNING_KEY_FILE=.*missing.* cannot be read"):
        reader.str("JWT_SIGNING_KEY")


def test_a_non_secret_has_no_file_variant(tmp_path):
    reader = _env(LOG_LEVEL_FILE=_secret(tmp_path, "level", "DEBUG"))
    assert reader.str("LOG_LEVEL", default="INFO") == "INFO"


def _start(environ: dict[str, str]) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "SYSTEMROOT"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.SECRET_KEY, s.JWT_SIGNING_KEY, s.DATABASES['default']['NAME'], s.DEMO_PASSWORD)",
        ],
        cwd=ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "modelhub.settings", **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_start_from_secret_files(tmp_path):
    environ = {
        "SECRET_KEY_FILE": _secret(tmp_path, "secret_key", "s" * 40 + "\n"),
        "JWT_SIGNING_KEY_FILE": _secret(tmp_path, "jwt", "j" * 40 + "\n"),
        "DATABASE_URL_FILE": _secret(tmp_path, "db", f"sqlite:///{tmp_path / 'hub.sqlite3'}\n"),
        "DEMO_PASSWORD_FILE": _secret(tmp_path, "demo", "demo-from-file\n"),
        # A local .env may set these (scripts/run writes it); empty values are "not set", so the files win.
        "SECRET_KEY": "",
        "JWT_SIGNING_KEY": "",
        "DEMO_PASSWORD": "",
    }
    result = _start(environ)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["s" * 40, "j" * 40, str(tmp_path / "hub.sqlite3"), "demo-from-file"]


def test_settings_refuse_a_secret_given_twice(tmp_path):
    result = _start(
        {
            "SECRET_KEY": "s" * 40,
            "SECRET_KEY_FILE": _secret(tmp_path, "secret_key", "t" * 40),
            "JWT_SIGNING_KEY": "j" * 40,
        }
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set SECRET_KEY or SECRET_KEY_FILE, not both" in result.stderr.strip().splitlines()[-1]


def test_public_base_url_follows_the_port_the_run_command_serves_on():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.PUBLIC_BASE_URL)",
        ],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}},
            "DJANGO_SETTINGS_MODULE": "modelhub.settings",
            "PORT": "8011",
            "PUBLIC_BASE_URL": "",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "http://127.0.0.1:8011"


@pytest.mark.parametrize("value, ok", [("0", True), ("0.05", True), ("1", True), ("-0.1", False), ("2", False)])
def test_a_bounded_float_is_refused_outside_its_bounds(value, ok):
    reader = _env(REALTIME_COALESCE_SECONDS=value)
    if ok:
        assert reader.bounded_float("REALTIME_COALESCE_SECONDS", 0.0, 0.0, 1.0) == float(value)
    else:
        with pytest.raises(ImproperlyConfigured, match="REALTIME_COALESCE_SECONDS=.* must be between 0 and 1"):
            reader.bounded_float("REALTIME_COALESCE_SECONDS", 0.0, 0.0, 1.0)
    assert _env().bounded_float("REALTIME_COALESCE_SECONDS", 0.0, 0.0, 1.0) == 0.0  # the default when unset
