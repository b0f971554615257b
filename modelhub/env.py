"""The one `env` object every setting is read through.

django-environ does the parsing (URLs, lists, casts); this subclass adds what the
stock class lacks for an operator:

* every variable read is recorded in ``READ_VARS`` so tests can prove that
  `.env.example` and `docker-compose.yml` name only variables the settings read;
* a value that does not parse (``DEBUG=maybe``, ``DB_CONN_MAX_AGE=ten``) fails at
  start with ``ImproperlyConfigured`` naming the variable, instead of a bare
  ``ValueError`` deep in a traceback or - for booleans - a silent ``False``.
"""

from __future__ import annotations

from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

READ_VARS: set[str] = set()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class StrictEnv(environ.Env):
    """django-environ's Env, strict about values and recording what it reads."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        READ_VARS.add(var)
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ImproperlyConfigured:
            raise
        except Exception as exc:  # a cast failed: say which variable and why
            raw = self.ENVIRON.get(var, "")
            raise ImproperlyConfigured(f"Environment variable {var}={raw!r} is invalid: {exc}") from exc

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

    def positive_int(self, var: str, default: int) -> int:
        value = self.int(var, default=default)
        if value <= 0:
            raise ImproperlyConfigured(f"Environment variable {var}={value!r} is invalid: must be > 0")
        return value


env = StrictEnv()
