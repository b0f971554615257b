"""The gateway under test: the real ASGI application served by uvicorn in a thread, calling a real stub
upstream (``bench.harness.upstream``) on loopback. Nothing is mocked: requests go over TCP to the hub,
and from the hub over TCP to the stub; usage goes through the real buffer and ingestion.

The server thread reads the test database, so these tests use ``transactional_db`` (committed rows).
"""

from __future__ import annotations

import httpx
import pytest

from bench.harness.upstream import start_in_thread
from deployments.config import nest
from gateway import adapters
from gateway import buffer as usage_buffer
from gateway import cache as response_cache
from gateway.models import ProviderCredential
from gateway.routes import route_cache
from gateway.services import api_key_create, key_cache
from modelhub import upstreams
from tests.factories import DeploymentFactory, ModelRegistryFactory
from tests.live import HubServer, _free_port  # noqa: F401 - _free_port: re-exported for tests starting more servers

PREFIX = "/api/v1/modelhub/deployments"


@pytest.fixture(scope="session")
def hub_server():
    server = HubServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stub():
    with start_in_thread() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh_gateway_state():
    def clear():
        route_cache.clear()
        key_cache.clear()
        upstreams.forget_checks()
        adapters.forget_credentials()
        response_cache.clear_local()
        usage_buffer.get_buffer().clear()
        usage_buffer.reset_buffer()

    clear()
    yield
    clear()


@pytest.fixture
def gw(transactional_db, personas, hub_server, stub):
    """Everything a gateway test needs: ``gw.deployment(...)``, ``gw.key(...)``, ``gw.post(...)``, ``gw.drain()``."""
    return Gateway(personas, hub_server, stub)


class Gateway:
    def __init__(self, personas, server: HubServer, stub) -> None:
        self.personas = personas
        self.server = server
        self.stub = stub
        stub.reset()
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def model(self, **kwargs):
        kwargs.setdefault("provider", "custom")
        return ModelRegistryFactory(**kwargs)

    def deployment(self, *, model=None, status="running", owner=None, **configuration):
        """A deployment of ``model`` whose host is the stub (unless ``host=None`` is given)."""
        model = model or self.model()
        flat = {"replicas": 1, "resources": {"cpu": "500m", "memory": "1Gi"}, "timeout": 5, "retries": 0}
        if "host" not in configuration:
            flat.update(host="127.0.0.1", port=self.stub.port, apiBase="/v1", upstreamModel="stub-model")
        flat.update({k: v for k, v in configuration.items() if v is not None})
        return DeploymentFactory(
            model=model,
            status=status,
            owner=owner or self.personas["developer"],
            configuration=nest(flat),
        )

    def key(self, who: str = "developer", **kwargs) -> str:  # a persona name
        _, secret = api_key_create(owner=self.personas[who], name=kwargs.pop("name", "test"), **kwargs)
        return secret

    def url(self, deployment, op: str = "chat/completions") -> str:
        return f"{PREFIX}/{deployment.pk}/v1/{op}"

    def post(self, deployment, body=None, *, key: str | None = None, op="chat/completions", headers=None, **kwargs):
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        if body is None:
            body = {"model": "anything", "messages": [{"role": "user", "content": "hello there"}]}
        return self.http.post(self.url(deployment, op), json=body, headers=all_headers, **kwargs)

    def drain(self):
        return usage_buffer.drain(claim_timeout=3600)

    def simulated(self, provider: str = "openai"):
        ProviderCredential.objects.update_or_create(provider=provider, defaults={"adapter": "simulated"})
        adapters.forget_credentials()
