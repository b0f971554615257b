"""The process's fan-out (``modelhub.realtime.fanout``): messages already waiting are handed out with the
first, in order, a run of one group at once (``deliver_many``), so a socket writes a run's frames in one
send. Against the real in-memory channel layer; the live path is in ``test_direct_writes.py``."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer

from modelhub.realtime import fanout


class _Plain:
    """A member with ``deliver`` only (a Socket.IO room)."""

    def __init__(self) -> None:
        self.got: list[int] = []

    def deliver(self, message: dict) -> None:
        self.got.append(message["n"])


class _Batching(_Plain):
    def __init__(self) -> None:
        super().__init__()
        self.runs: list[list[int]] = []

    def deliver_many(self, messages: list[dict], shared: dict) -> None:
        shared.setdefault("computed", 0)
        shared["computed"] += 1  # what the run's members share (the joined frames)
        self.runs.append([m["n"] for m in messages])
        self.got.extend(m["n"] for m in messages)


def _run(groups: list[str], members: dict[str, list], *, window: float, settings, spread: float = 0.0):
    """Send one message per entry of ``groups`` (n = its index) through a real layer to the fan-out's
    receive loop: all before the loop starts, or, with ``spread``, that many seconds apart while it runs.
    Returns when every member has had its messages."""
    settings.REALTIME_COALESCE_SECONDS = window

    async def scenario() -> None:
        layer = InMemoryChannelLayer()
        channel = await layer.new_channel("realtime.")
        hub = fanout.LocalFanout()
        hub.members = {group: set(found) for group, found in members.items()}
        task = asyncio.create_task(hub._receive(layer, channel)) if spread else None
        for n, group in enumerate(groups):
            await layer.send(channel, {"type": "realtime.event", "group": group, "n": n, "text": "{}"})
            if spread:
                await asyncio.sleep(spread)
        task = task or asyncio.create_task(hub._receive(layer, channel))  # all of them waiting already
        expected = {id(m): sum(g in [k for k, v in members.items() if m in v] for g in groups) for m in _all(members)}
        for _ in range(200):
            await asyncio.sleep(0.01)
            if all(len(m.got) == expected[id(m)] for m in _all(members)):
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def _all(members: dict[str, list]) -> list:
    return list({id(m): m for found in members.values() for m in found}.values())


def test_waiting_messages_go_out_together_in_order_cut_where_the_group_changes(settings):
    both, plain, only_b = _Batching(), _Plain(), _Batching()
    groups = ["a", "a", "a", "b", "a", "a"]
    _run(groups, {"a": [both, plain], "b": [both, only_b]}, window=0, settings=settings)
    assert both.got == [0, 1, 2, 3, 4, 5]  # in order across its two groups
    assert both.runs == [[0, 1, 2], [4, 5]]  # runs of one group; the single "b" went by deliver()
    assert plain.got == [0, 1, 2, 4, 5]  # no deliver_many: one by one, the same order
    assert only_b.got == [3] and only_b.runs == []


def test_no_more_than_max_batch_go_together(settings, monkeypatch):
    monkeypatch.setattr(fanout, "MAX_BATCH", 4)
    member = _Batching()
    _run(["a"] * 10, {"a": [member]}, window=0, settings=settings)
    assert member.got == list(range(10))
    assert member.runs == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_without_a_window_nothing_is_waited_for_and_with_one_what_comes_in_it_joins(settings):
    alone = _Batching()
    _run(["a"] * 3, {"a": [alone]}, window=0, settings=settings, spread=0.05)
    # each was handed out before the next was sent (the loop ran meanwhile): three singles
    assert alone.got == [0, 1, 2]
    waited = _Batching()
    _run(["a"] * 3, {"a": [waited]}, window=0.5, settings=settings, spread=0.05)
    assert waited.runs == [[0, 1, 2]]  # the window held the first for the two that came within it
