"""Provider adapters: one call of one deployment, in OpenAI's shape on the hub's side.

* :mod:`.openai_compat` - any OpenAI-compatible API: OpenAI itself, a self-hosted server named by
  the deployment's ``networking.host`` (vLLM, Ollama, NeuroWeaver, a custom server), Gemini's
  OpenAI-compatible endpoint, or a custom/NeuroWeaver provider with a base URL;
* :mod:`.anthropic` - Anthropic's native Messages API, translated both ways (streams included);
* :mod:`.simulated` - the built-in **simulated provider**: no network, deterministic answers with
  latency, token counts and failures drawn from the model's baseline metrics.

Where a call goes (:func:`upstream_for`): a deployment that names a host is called there with the
OpenAI-compatible adapter; otherwise the provider credential configured for the model's provider
decides the adapter, base URL and API key. Each adapter returns an :class:`Outcome` (non-streaming)
or a :class:`Stream`; neither raises for an upstream failure - the outcome says whether another
attempt may help (429, 5xx, timeouts, connection errors).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gateway.openai import GatewayError
from modelhub.db import db_in_thread

PROVIDER_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai",
}
CREDENTIAL_CACHE_SECONDS = 10.0
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Upstream:
    adapter: str  # "openai" | "anthropic" | "simulated"
    base_url: str = ""  # scheme://host:port/path, no trailing slash
    api_key: str = ""


@dataclass
class Outcome:
    """One attempt's result. ``error`` is set when it failed; ``retryable`` when another attempt may help."""

    body: bytes | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: GatewayError | None = None
    retryable: bool = False
    upstream_status: int = 0


@dataclass
class Stream:
    """A streaming attempt. If ``error`` is set nothing was received; otherwise iterate :meth:`chunks`
    (OpenAI ``data:`` lines, already framed) and read the usage afterwards."""

    error: GatewayError | None = None
    retryable: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    content_chunks: int = 0
    failure: GatewayError | None = None  # the stream broke after it started
    _iterator: AsyncIterator[bytes] | None = None
    _close: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._iterator is None:
            return
        async for chunk in self._iterator:
            yield chunk

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()
            self._close = None


_credentials: dict[str, tuple[float, Upstream | None]] = {}


def _credential(provider: str) -> Upstream | None:
    from gateway.models import ProviderCredential
    from gateway.services import credential_api_key

    row = ProviderCredential.objects.filter(provider=provider).first()
    if row is None:
        return None
    base = (row.base_url or PROVIDER_BASE_URLS.get(provider, "")).rstrip("/")
    return Upstream(adapter=row.adapter, base_url=base, api_key=credential_api_key(row))


def forget_credentials() -> None:
    _credentials.clear()


async def upstream_for(route: Any) -> Upstream:
    """Where this route's calls go (see the module docstring); raises when nothing is configured."""
    if route.host:
        scheme = route.networking.get("scheme") or "http"
        host = f"[{route.host}]" if ":" in route.host else route.host
        base = f"{scheme}://{host}:{route.networking.get('port', 8080)}{route.networking.get('apiBase') or '/v1'}"
        return Upstream(adapter="openai", base_url=base.rstrip("/"))
    entry = _credentials.get(route.provider)
    if entry is None or entry[0] < time.monotonic():
        found = await db_in_thread(_credential)(route.provider)
        entry = (time.monotonic() + CREDENTIAL_CACHE_SECONDS, found)
        _credentials[route.provider] = entry
    upstream = entry[1]
    if upstream is None:
        raise GatewayError(
            "provider_not_configured",
            f"No credentials are configured for provider {route.provider!r} (Django admin: Provider credentials), "
            "and the deployment names no host of its own.",
        )
    if upstream.adapter != "simulated" and not upstream.base_url:
        raise GatewayError(
            "provider_not_configured", f"The {route.provider!r} credential needs a base URL (the admin)."
        )
    return upstream


def get_adapter(name: str) -> Any:
    from gateway.adapters import anthropic, openai_compat, simulated

    return {"openai": openai_compat, "anthropic": anthropic, "simulated": simulated}[name]
