"""The one `env` object every setting is read through.

django-environ does the parsing (URLs, lists, casts); this subclass adds what the
stock class lacks for an operator:

* every variable read is recorded in ``READ_VARS`` so tests can prove that
  `.env.example` and `docker-compose.yml` name only variables the settings read;
* a value that does not parse (``DEBUG=maybe``, ``DB_CONN_MAX_AGE=ten``) fails at
  start with ``ImproperlyConfigured`` naming the variable, instead of a bare
  ``ValueError`` deep in a traceback or - for booleans - a silent ``False``;
* a secret (see ``is_secret``) may instead come from a file named by
  ``<NAME>_FILE`` (Docker secrets, as healthchecks' ``envget`` does). Setting both is
  refused rather than silently preferring one: an operator who moved a key into a
  secret and forgot the old variable should hear about it. (django-environ's
  ``FileAwareEnv`` prefers the file silently and applies to every variable.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

READ_VARS: set[str] = set()

# Secrets: these, plus every name ending in one of SECRET_SUFFIXES (SECRET_KEY, JWT_SIGNING_KEY,
# DEMO_PASSWORD, and provider keys such as OPENAI_API_KEY when they arrive).
SECRET_VARS = frozenset({"DATABASE_URL", "REDIS_URL"})
SECRET_SUFFIXES = ("_KEY", "_PASSWORD", "_TOKEN", "_SECRET")


def is_secret(var: str) -> bool:
    """Whether ``var`` may also be given as ``<var>_FILE``."""
    return var in SECRET_VARS or var.endswith(SECRET_SUFFIXES)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class StrictEnv(environ.Env):
    """django-environ's Env, strict about values and recording what it reads."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        READ_VARS.add(var)
        from_file = self._secret_from_file(var)
        if from_file is not None:
            try:
                return self.parse_value(from_file, cast) if cast else from_file
            except Exception as exc:
                raise ImproperlyConfigured(f"The file in {var}_FILE is invalid for {var}: {exc}") from exc
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ImproperlyConfigured:
            raise
        except Exception as exc:  # a cast failed: say which variable and why
            raw = self.ENVIRON.get(var, "")
            raise ImproperlyConfigured(f"Environment variable {var}={raw!r} is invalid: {exc}") from exc

    def _secret_from_file(self, var: str) -> str | None:
        """The contents of the file ``<var>_FILE`` names (surrounding whitespace and the trailing
        newline editors add stripped), or None when ``var`` is not a secret or has no ``_FILE``."""
        path = self.ENVIRON.get(f"{var}_FILE") if is_secret(var) else None
        if not path:
            return None
        if self.ENVIRON.get(var):
            raise ImproperlyConfigured(f"Set {var} or {var}_FILE, not both")
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{var}_FILE={path!r} cannot be read: {exc.strerror or exc}") from exc

    def bool(self, var: str, default: Any = environ.Env.NOTSET) -> bool:  # type: ignore[override]
        READ_VARS.add(var)
        raw = self.ENVIRON.get(var)
        if raw is None:
            if default is environ.Env.NOTSET:
                raise ImproperlyConfigured(f"Set the {var} environment variable")
            return bool(default)
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(
            f"Environment variable {var}={raw!r} is invalid: expected one of {sorted(_TRUE | _FALSE - {''})}"
        )

    def networks(self, var: str, default: list[str]) -> list[Any]:
        """A comma-separated list of CIDR networks (``10.0.0.0/8,::1/128``); a bad one fails at start."""
        import ipaddress

        out = []
        for raw in self.list(var, default=default):
            try:
                out.append(ipaddress.ip_network(raw.strip(), strict=False))
            except ValueError:
                raise ImproperlyConfigured(
                    f"Environment variable {var} has {raw!r}, which is not a network (e.g. 10.0.0.0/8)"
                ) from None
        return out

    def positive_int(self, var: str, default: int) -> int:
        value = self.int(var, default=default)
        if value <= 0:
            raise ImproperlyConfigured(f"Environment variable {var}={value!r} is invalid: must be > 0")
        return value

    def bounded_float(self, var: str, default: float, minimum: float, maximum: float) -> float:
        value = self.float(var, default=default)
        if not minimum <= value <= maximum:
            raise ImproperlyConfigured(
                f"Environment variable {var}={value!r} is invalid: must be between {minimum:g} and {maximum:g}"
            )
        return value


env = StrictEnv()
