"""Costs tests: the gateway's real uvicorn hub and stub upstream (tests/gateway/conftest.py), and a clean
ledger and budget cache around every test."""

from __future__ import annotations

import contextlib

import pytest

from tests.gateway.conftest import _fresh_gateway_state, gw, hub_server, stub  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def _fresh_costs_state():
    from costs import enforcement
    from costs.ledger import get_ledger

    def clear():
        enforcement.rules_cache.clear()
        with contextlib.suppress(Exception):  # Redis down: the tests that need it say so
            get_ledger().reset()

    clear()
    yield
    clear()
