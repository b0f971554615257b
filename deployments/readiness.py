"""The readiness check a deployment passes before it is ``running``.

When the deployment's ``networking.host`` is set, the model server is expected at
``{scheme}://{host}:{port}{path}`` (``scheme`` defaults to http) and is probed there with an HTTP
GET, as a Kubernetes ``httpGet`` readiness probe does: any status from 200 to 399 means ready.
The host must pass the upstream allow-list (:mod:`modelhub.upstreams`, the same check as the
gateway's calls), and the probe connects to the address that was checked: a deployer cannot make
the hub probe private or loopback addresses that the operator did not allow.
Each attempt waits at most ``networking.timeout`` seconds; ``networking.retries``
failed attempts are retried, with a short backoff. Without a host there is nothing
to probe (a hosted provider's model), and the deployment is ready at once.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any

import httpx

from modelhub import upstreams

BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)  # between attempts; the last value repeats


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    url: str | None = None
    attempts: int = 0


def probe_url(networking: dict[str, Any]) -> str | None:
    """Where the model server answers, or None when the deployment names no host."""
    host = networking.get("host")
    if not host:
        return None
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"{networking.get('scheme') or 'http'}://{host}:{networking['port']}{networking.get('path') or '/'}"


def max_duration(networking: dict[str, Any]) -> float:
    """Upper bound of :func:`check` in seconds (used for the task's time limit)."""
    attempts = int(networking.get("retries", 0)) + 1
    backoff = sum(BACKOFF_SECONDS[min(i, len(BACKOFF_SECONDS) - 1)] for i in range(attempts - 1))
    return attempts * float(networking.get("timeout", 30)) + backoff


def check(networking: dict[str, Any]) -> Readiness:
    """Probe the deployment's model server (see the module docstring)."""
    url = probe_url(networking)
    if url is None:
        return Readiness(ready=True, reason="No host configured: nothing to probe, ready at once.")
    timeout = float(networking.get("timeout", 30))
    attempts = int(networking.get("retries", 0)) + 1
    try:
        target = upstreams.check_sync(
            networking.get("scheme") or "http",
            networking["host"],
            int(networking["port"]),
            networking.get("path") or "/",
        )
    except upstreams.UpstreamRefused as exc:
        return Readiness(False, f"Readiness probe {url} refused: {exc}"[:500], url, 0)
    headers = {"User-Agent": "modelhub-readiness/1", "Host": target.host_header}
    extensions = {"sni_hostname": target.sni} if target.sni else {}
    last_problem = ""
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for attempt in range(attempts):
            if attempt:
                time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
            try:
                response = client.get(target.url, headers=headers, extensions=extensions)
            except httpx.TimeoutException:
                last_problem = f"timed out after {timeout:g} s"
                continue
            except httpx.HTTPError as exc:
                last_problem = f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            if 200 <= response.status_code < 400:
                return Readiness(True, f"Readiness probe {url} answered {response.status_code}.", url, attempt + 1)
            last_problem = f"answered HTTP {response.status_code}"
    return Readiness(
        False, f"Readiness probe {url} failed after {attempts} attempt(s): {last_problem}."[:500], url, attempts
    )
