"""``bench/harness/websocket.py``'s inline cutting of a server's plain text frames: what websockets' own
serializer writes comes out whole, in order, however the bytes are split; anything else goes back to
websockets' parser."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

# Loaded from its file: bench/ on sys.path would shadow the apps (bench/catalog.py, ...).
_spec = importlib.util.spec_from_file_location(
    "bench_harness_websocket", Path(__file__).resolve().parent.parent / "bench" / "harness" / "websocket.py"
)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
WebSocketClient = _module.WebSocketClient


class _Client(WebSocketClient):
    def __init__(self) -> None:  # no connection: only the frame cutting
        self.texts: list[bytes] = []
        self.on_text = lambda client, data, received: self.texts.append(data)
        self._fast, self._pending = True, b""


def _frames(sizes: list[int]) -> tuple[bytes, list[bytes]]:
    payloads = [(b"x" * size)[:size] for size in sizes]
    return b"".join(Frame(Opcode.TEXT, p).serialize(mask=False, extensions=[]) for p in payloads), payloads


@pytest.mark.parametrize("seed", range(5))
def test_text_frames_of_every_length_form_come_out_whole_however_split(seed):
    rng = random.Random(seed)
    stream, payloads = _frames([0, 1, 125, 126, 127, 65535, 65536, 70000, 3])
    client = _Client()
    got: list[bytes] = []
    at = 0
    while at < len(stream):
        step = rng.choice([1, 2, 3, 7, 100, 5000, 70000])
        rest = client._cut_text_frames(client._pending + stream[at : at + step], 0.0)
        assert rest is None
        at += step
        got.extend(client.texts)
        client.texts.clear()
    assert got == payloads and client._pending == b""


def test_a_close_frame_hands_the_rest_to_websockets():
    text, _ = _frames([5])
    close = Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=False, extensions=[])
    client = _Client()
    assert client._cut_text_frames(text + close, 0.0) == close
    assert client.texts == [b"x" * 5]
