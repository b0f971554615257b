"""One channel-layer subscriber per server process, fanning events out to that process's sockets.

channels' usual shape gives every consumer its own channel: the layer puts each group message on
every member's queue and a task per consumer wakes up to take it (plus, in channels 4.2+, a hop to
the sync thread per message). ``bench/realtime.py`` measured that at ~40 us of CPU per socket per
event - with 1,000 sockets at 20 events/s, more CPU than a 2-core machine had for the whole server.

Here the process (its event loop) has one channel, added once to each group that any local socket
needs; each message is handed to the local members of its group by a plain method call
(``member.deliver(message)``, which must not block: websocket consumers queue the frame in their
own outbox, Socket.IO rooms start one emit). The groups and the publish side are unchanged, so the
Redis channel layer still carries events between processes, and the in-memory layer serves the
embedded single process.

**Coalescing.** A message is handed out together with every message already waiting behind it (and
those that arrive within ``REALTIME_COALESCE_SECONDS``, default 0: none waited for), up to
``MAX_BATCH``: a run of consecutive messages of one group goes to each member at once
(``member.deliver_many(messages)`` where a member has it), so a websocket writes the run's frames -
each event still its own frame, encoded once per process - with one ``send`` instead of one per
event. Writing to 2,500 sockets is ~11 us a socket, mostly that system call: when the loop falls
behind, the events it has not sent yet leave in fewer writes, and it catches up instead of queueing.
Order is kept: runs are cut where the group changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from modelhub import metrics

logger = logging.getLogger(__name__)

RENEW_SECONDS = 3600  # layers that expire group membership (in-memory: after a day) get it renewed
MAX_BATCH = 64  # messages handed out together at most


class Member(Protocol):
    def deliver(self, message: dict[str, Any]) -> None: ...


class LocalFanout:
    """This process's subscriber: ``join``/``leave`` members to groups; one receiving task."""

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.layer: Any = None
        self.channel: str | None = None
        self.tasks: list[asyncio.Task] = []
        self.members: dict[str, set[Member]] = {}
        self.lock = asyncio.Lock()

    async def join(self, member: Member, groups: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # another server loop in this process (tests): start afresh
            self._reset(loop)
        async with self.lock:
            if self.channel is None or any(task.done() for task in self.tasks):
                await self._start()
            for group in groups:
                self.members.setdefault(group, set()).add(member)
                # Added every time, not only for the first member: renews the membership in
                # layers that expire it, and is a set insert on the Redis pub/sub layer.
                await self.layer.group_add(group, self.channel)

    async def leave(self, member: Member, groups: Iterable[str]) -> None:
        if self.loop is not asyncio.get_running_loop() or self.channel is None:
            return
        async with self.lock:
            for group in groups:
                members = self.members.get(group)
                if members is None:
                    continue
                members.discard(member)
                if not members:
                    del self.members[group]
                    await self.layer.group_discard(group, self.channel)

    def local_members(self, group: str) -> int:
        return len(self.members.get(group, ()))

    async def _start(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.layer = get_channel_layer()
        self.channel = await self.layer.new_channel("realtime.")
        for group in self.members:
            await self.layer.group_add(group, self.channel)
        self.tasks = [
            asyncio.create_task(self._receive(self.layer, self.channel)),
            asyncio.create_task(self._renew(self.layer, self.channel)),
        ]

    async def _receive(self, layer: Any, channel: str) -> None:
        loop = asyncio.get_running_loop()
        pending: asyncio.Future | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(layer.receive(channel))
                batch = [await asyncio.shield(pending)]
                pending = None
                window = settings.REALTIME_COALESCE_SECONDS
                deadline = loop.time() + window
                while len(batch) < MAX_BATCH:
                    # The next receive runs for one step: a message already waiting completes it at once.
                    # It is never cancelled mid-way (a layer's receive need not be cancel-safe): one that
                    # is not done yet is awaited by the next round.
                    pending = asyncio.ensure_future(layer.receive(channel))
                    await asyncio.sleep(0)
                    left = deadline - loop.time()
                    if not pending.done() and left > 0:
                        await asyncio.wait((pending,), timeout=left)
                    if not pending.done():
                        break
                    batch.append(pending.result())
                    pending = None
                self._dispatch(batch)
        finally:
            if pending is not None:
                pending.cancel()

    def _dispatch(self, batch: list[dict[str, Any]]) -> None:
        """Hand ``batch`` out in order, each run of consecutive messages of one group at once."""
        start = 0
        while start < len(batch):
            group = batch[start].get("group", "")
            end = start + 1
            while end < len(batch) and batch[end].get("group", "") == group:
                end += 1
            self._deliver_run(group, batch[start:end])
            start = end

    def _deliver_run(self, group: str, run: list[dict[str, Any]]) -> None:
        members = tuple(self.members.get(group, ()))
        shared: dict[str, Any] = {}  # what members compute once for the run (the joined frames)
        for member in members:
            try:
                deliver_many = getattr(member, "deliver_many", None)
                if deliver_many is not None and len(run) > 1:
                    deliver_many(run, shared)
                else:
                    for message in run:
                        member.deliver(message)
            except Exception:
                logger.exception("realtime delivery of %s failed", run[0].get("type"))
        if members:
            for message in run:
                if message.get("type") == "realtime.event":
                    # Per fan-out, not per socket: one counter update per event and process.
                    metrics.realtime_messages.labels(message.get("event", "")).inc(len(members))

    async def _renew(self, layer: Any, channel: str) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for group in list(self.members):
                await layer.group_add(group, channel)


hub = LocalFanout()
