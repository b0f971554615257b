"""The stored deployment configuration: its schema versions, the upgrade path, defaults and quantities.

The API speaks two shapes of the spec's ``DeploymentConfig``:

* **request shape** - ``CreateDeploymentRequest.configuration`` is the TypeScript
  intersection ``runtime & parameters & networking & monitoring & security``: the
  five sections' keys side by side at the top level, while the objects *inside* a
  section (``resources``, ``scaling``, ``rateLimiting``) stay objects::

      {"replicas": 2, "resources": {"cpu": "500m", "memory": "1Gi"}, "scaling": {...},
       "temperature": 0.7, "port": 8080, "timeout": 30, "logLevel": "info",
       "authentication": true, "rateLimiting": {"requestsPerMinute": 600, "burstLimit": 60}}

* **stored / response shape** (schema version 2) - the sections nested as
  ``DeploymentConfig`` writes them: ``{"schemaVersion": 2, "runtime": {...},
  "parameters": {...}, "networking": {...}, "monitoring": {...}, "security": {...}}``.
  ``runtime.replicas`` is *not* stored in the JSON: the ``replicas`` column is the one
  source (the scaling task updates it with a conditional UPDATE), and it is put back
  into ``runtime`` when the configuration is read.

Schema versions (``schemaVersion``; a configuration without one is version 1):

1. the request shape stored as it came (the first deployments prototype), with
   ``logLevel: "warning"`` accepted and ``enableTracing``/``rateLimiting`` possibly absent;
2. nested sections, every default filled in, ``logLevel`` one of the spec's four values.

:func:`upgrade` takes a stored configuration of any version to the current one,
one step at a time. It runs on every read (``Deployment.config``) and in the data
migration ``0002_upgrade_configurations``, which rewrites stored rows. Each step
function is frozen once released - a change of shape is a new version with a new
step, so a migration written today still upgrades the same way tomorrow.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal, InvalidOperation
from typing import Any

CURRENT_SCHEMA_VERSION = 2

MAX_REPLICAS = 1000
MAX_CPU_MILLICORES = 256_000  # 256 cores
MIN_MEMORY_BYTES = 1024**2  # 1Mi
MAX_MEMORY_BYTES = 64 * 1024**4  # 64Ti
MAX_TIMEOUT_SECONDS = 300
MAX_RETRIES = 10
MAX_METRICS_INTERVAL_SECONDS = 86_400
MAX_STOP_SEQUENCES = 16
MAX_STOP_SEQUENCE_LENGTH = 200
MAX_TOP_K = 100_000

LOG_LEVELS = ("debug", "info", "warn", "error")

# Which section of DeploymentConfig each top-level key of the request shape belongs to.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "runtime": ("replicas", "resources", "scaling"),
    "parameters": ("temperature", "maxTokens", "topP", "topK", "frequencyPenalty", "presencePenalty", "stopSequences"),
    "networking": (
        "port",
        "host",
        "path",
        "timeout",
        "retries",
        # the gateway's (optional; absent means the default): how a self-hosted server is called,
        # which deployments take over on 429/5xx/timeouts, and the exact-match response cache
        "scheme",
        "apiBase",
        "upstreamModel",
        "fallbacks",
        "responseCache",
    ),
    "monitoring": ("enableMetrics", "metricsInterval", "enableTracing", "logLevel"),
    "security": ("authentication", "authorization", "rateLimiting"),
}
KEY_SECTION: dict[str, str] = {key: section for section, keys in SECTION_KEYS.items() for key in keys}
# Keys whose value is an object merged key by key by PATCH (the rest are replaced whole).
OBJECT_KEYS = ("resources", "scaling", "rateLimiting", "responseCache")


def default_scaling(replicas: int) -> dict[str, int]:
    """Scaling bounds when a request gives none: from 1 up to ``max(10, replicas)``, targets at 80 %."""
    return {
        "minReplicas": 1,
        "maxReplicas": max(10, replicas),
        "targetCPUUtilization": 80,
        "targetMemoryUtilization": 80,
    }


# Defaults of everything but ``replicas``, ``resources`` and ``scaling`` (which depends on replicas).
DEFAULTS: dict[str, Any] = {
    "port": 8080,
    "timeout": 30,
    "retries": 3,
    "enableMetrics": True,
    "metricsInterval": 60,
    "enableTracing": False,
    "logLevel": "info",
    "authentication": True,
    "authorization": [],
    "rateLimiting": {"requestsPerMinute": 600, "burstLimit": 60},
}


# --- Kubernetes quantities ---------------------------------------------------------------

_CPU = re.compile(r"^(?:\d+(?:\.\d+)?|\.\d+)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def cpu_millicores(value: str) -> int:
    """``"2"`` -> 2000, ``"500m"`` -> 500, ``"0.5"`` -> 500. Raises ``ValueError`` with a reason.

    Kubernetes' quantity syntax for CPU: a decimal number of cores, or an integer-ish
    number of millicores with the ``m`` suffix; precision finer than 1m is refused
    (Kubernetes refuses it too).
    """
    match = _CPU.match(value)
    if not match:
        raise ValueError('Must be a Kubernetes CPU quantity: cores ("2", "0.5") or millicores ("500m").')
    number = Decimal(value[:-1] if match.group(1) else value)
    millicores = number if match.group(1) else number * 1000
    if millicores != millicores.to_integral_value():
        raise ValueError("CPU precision finer than 1m is not allowed.")
    if millicores < 1:
        raise ValueError("Must be at least 1m.")
    if millicores > MAX_CPU_MILLICORES:
        raise ValueError(f"Must be at most {MAX_CPU_MILLICORES // 1000} cores.")
    return int(millicores)


def memory_bytes(value: str) -> int:
    """``"512Mi"`` -> 536870912, ``"1G"`` -> 10**9. Raises ``ValueError`` with a reason.

    Binary (Ki, Mi, Gi, Ti, Pi, Ei) and decimal (k, M, G, T, P, E) suffixes, or
    plain bytes. ``m`` is Kubernetes' *milli* - ``"512m"`` is half a byte, a classic
    mistake for ``512Mi`` - so it is refused with that hint.
    """
    match = _MEMORY.match(value)
    if not match:
        raise ValueError('Must be a Kubernetes memory quantity such as "512Mi", "4Gi" or "1G".')
    number, suffix = match.group(1), match.group(2) or ""
    if suffix == "m":
        raise ValueError(f'"m" means milli (thousandths of a byte); did you mean "{number}Mi"?')
    try:
        amount = Decimal(number) * (_BINARY.get(suffix) or _DECIMAL[suffix])
    except InvalidOperation:  # pragma: no cover - the pattern only lets decimals through
        raise ValueError("Not a number.") from None
    if amount != amount.to_integral_value():
        raise ValueError("Must be a whole number of bytes.")
    if amount < MIN_MEMORY_BYTES:
        raise ValueError("Must be at least 1Mi.")
    if amount > MAX_MEMORY_BYTES:
        raise ValueError("Must be at most 64Ti.")
    return int(amount)


# --- Shapes ---------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    """A sub-object without its null members (``{}`` for anything that is not an object)."""
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else {}


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Request shape -> stored shape (current version). ``replicas`` is left out (it is a column).

    Defaults fill whatever the request left out, so a stored configuration is always complete.
    """
    replicas = flat.get("replicas") if isinstance(flat.get("replicas"), int) else 1
    merged = {**copy.deepcopy(DEFAULTS), **{k: v for k, v in copy.deepcopy(flat).items() if v is not None}}
    merged["scaling"] = {**default_scaling(replicas), **_dict(flat.get("scaling"))}
    merged["rateLimiting"] = {**DEFAULTS["rateLimiting"], **_dict(flat.get("rateLimiting"))}
    if "resources" in merged:
        merged["resources"] = _dict(merged["resources"])
    stored: dict[str, Any] = {"schemaVersion": CURRENT_SCHEMA_VERSION}
    for section, keys in SECTION_KEYS.items():
        stored[section] = {key: merged[key] for key in keys if key in merged and merged[key] is not None}
    stored["runtime"].pop("replicas", None)
    return stored


def flatten(stored: dict[str, Any], replicas: int) -> dict[str, Any]:
    """Stored shape (current version) -> request shape, with ``replicas`` from the column."""
    flat: dict[str, Any] = {}
    for section in SECTION_KEYS:
        flat.update(copy.deepcopy(stored.get(section, {})))
    flat["replicas"] = replicas
    return flat


def merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics on the request shape: keys replace; ``resources``/``scaling``/``rateLimiting``
    merge key by key; ``null`` removes an optional key (a parameter, ``host``, ``path``, ``gpu``)."""
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in OBJECT_KEYS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            inner = {**merged[key], **value}
            merged[key] = {k: v for k, v in inner.items() if v is not None}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# --- Upgrades ---------------------------------------------------------------------------------


def _v1_to_v2(config: dict[str, Any]) -> dict[str, Any]:
    """Flat request shape -> nested sections; defaults filled; ``logLevel: warning`` -> ``warn``.

    Keys that v1 stored but no section knows are kept under ``legacy`` rather than lost.
    """
    flat = {k: v for k, v in config.items() if k != "schemaVersion"}
    if flat.get("logLevel") == "warning":
        flat["logLevel"] = "warn"
    unknown = {k: v for k, v in flat.items() if k not in KEY_SECTION}
    known = {k: v for k, v in flat.items() if k in KEY_SECTION}
    upgraded = nest(known)  # fills what v1 left out, including halves of scaling/rateLimiting
    upgraded["schemaVersion"] = 2
    if unknown:
        upgraded["legacy"] = unknown
    return upgraded


# version -> the step that takes a configuration of that version to the next one.
UPGRADES = {1: _v1_to_v2}


def schema_version(config: dict[str, Any]) -> int:
    version = config.get("schemaVersion", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def upgrade(config: dict[str, Any], target: int = CURRENT_SCHEMA_VERSION) -> dict[str, Any]:
    """A stored configuration of any older version, upgraded step by step to ``target``.

    A configuration already at ``target`` is returned as it is (not copied). A version
    newer than this code knows is refused rather than silently misread.
    """
    version = schema_version(config)
    if version > CURRENT_SCHEMA_VERSION:
        raise ValueError(f"configuration schemaVersion {version} is newer than this code ({CURRENT_SCHEMA_VERSION})")
    while version < target:
        config = UPGRADES[version](config)
        version = schema_version(config)
    return config
