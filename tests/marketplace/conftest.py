"""Marketplace fixtures: the realtime tests' live uvicorn (for the Socket.IO test)."""

from tests.realtime.conftest import live_server_url  # noqa: F401 - a fixture
