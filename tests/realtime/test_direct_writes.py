"""Events written straight to uvicorn's websocket transports (its ``websockets-sansio`` implementation, the
default): one frame per event and process.

The frame encoder is checked against the ``websockets`` library's own serializer (an independent
implementation); the path itself against a live uvicorn and a real websocket client (which negotiates
permessage-deflate, as browsers do), with the ASGI send path (``REALTIME_DIRECT_WRITES=false``) giving
the same messages.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from modelhub import realtime
from modelhub.realtime import consumers
from tests.realtime.conftest import REALTIME_PATH, token_for


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_matches_the_websockets_serializer(size):
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)  # multi-byte characters too
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert consumers.text_frame(text) == expected


def _deliveries(live_server_url, viewer_token, count: int, *, payload: str = "") -> list[dict]:
    async def scenario() -> list[dict]:
        ws_url = live_server_url.replace("http://", "ws://") + REALTIME_PATH
        async with connect(f"{ws_url}?token={viewer_token}", max_size=None) as socket:
            assert json.loads(await asyncio.wait_for(socket.recv(), 5))["event"] == "auth:ok"
            for i in range(count):
                await asyncio.to_thread(realtime.send_now, "deployment:status", {"n": i, "payload": payload})
            return [json.loads(await asyncio.wait_for(socket.recv(), 10)) for _ in range(count)]

    return async_to_sync(scenario)()


@pytest.mark.slow
@pytest.mark.parametrize("direct", [True, False])
def test_events_arrive_whole_and_in_order_on_either_path(live_server_url, personas, settings, monkeypatch, direct):
    settings.REALTIME_DIRECT_WRITES = direct
    encoded = []
    real = consumers.text_frame
    monkeypatch.setattr(consumers, "text_frame", lambda text: encoded.append(len(text)) or real(text))
    messages = _deliveries(live_server_url, token_for(personas["viewer"]), 30, payload="p" * 70_000)
    assert [m["event"] for m in messages] == ["deployment:status"] * 30
    assert [m["data"]["n"] for m in messages] == list(range(30))
    assert all(len(m["data"]["payload"]) == 70_000 for m in messages)  # the 8-byte length form
    # One frame per event on the direct path (one socket here), none on the ASGI path.
    assert len(encoded) == (30 if direct else 0)


@pytest.mark.slow
def test_coalesced_events_arrive_whole_and_in_order_in_one_write(live_server_url, personas, settings, monkeypatch):
    settings.REALTIME_COALESCE_SECONDS = 0.3  # the fan-out holds the first event for the others
    runs, writes = [], []
    real_many = consumers.RealtimeConsumer.deliver_many

    def deliver_many(self, messages, shared):
        runs.append(len(messages))
        direct = self.direct  # its transport (uvloop's) cannot be patched: a recording stand-in for the run
        recording = SimpleNamespace(
            get_write_buffer_size=direct.transport.get_write_buffer_size,
            write=lambda data: writes.append(len(data)) or direct.transport.write(data),
        )
        self.direct = SimpleNamespace(transport=recording, writable_now=direct.writable_now)
        try:
            real_many(self, messages, shared)
        finally:
            self.direct = direct

    monkeypatch.setattr(consumers.RealtimeConsumer, "deliver_many", deliver_many)
    messages = _deliveries(live_server_url, token_for(personas["viewer"]), 12, payload="p" * 200)
    assert [m["data"]["n"] for m in messages] == list(range(12))
    assert all(len(m["data"]["payload"]) == 200 for m in messages)
    assert sum(runs) <= 12 and max(runs) > 1  # at least one run of several events went out together
    assert len(writes) == len(runs)  # one write per run, the run's frames joined
    single = len(consumers.text_frame(json.dumps(messages[0], separators=(",", ":"))))
    assert max(writes) > single


@pytest.mark.slow
def test_a_socket_that_does_not_read_is_closed_when_its_unsent_bytes_pass_the_limit(
    live_server_url, personas, settings
):
    settings.REALTIME_MAX_PENDING_BYTES = 256 * 1024
    token = token_for(personas["viewer"])

    async def scenario() -> int | None:
        ws_url = live_server_url.replace("http://", "ws://") + REALTIME_PATH
        # max_queue=1: the client stops reading its transport after one unread message (TCP backpressure).
        async with connect(f"{ws_url}?token={token}", max_queue=1, max_size=None) as socket:
            assert json.loads(await asyncio.wait_for(socket.recv(), 5))["event"] == "auth:ok"
            for i in range(400):  # ~40 MB: more than the kernel's loopback buffers and the limit
                await asyncio.to_thread(realtime.send_now, "deployment:status", {"n": i, "payload": "q" * 100_000})
            try:
                while True:
                    await asyncio.wait_for(socket.recv(), 10)
            except Exception:  # the close ends the stream
                return socket.close_code

    assert async_to_sync(scenario)() == 1013
