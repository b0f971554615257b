import pytest

from experiments.selectors import invalidate_plans
from tests.gateway.conftest import _fresh_gateway_state, gw, hub_server, stub  # noqa: F401 - the gateway's fixtures


@pytest.fixture(autouse=True)
def _fresh_plans():
    invalidate_plans()
    yield
    invalidate_plans()
