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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from channels.layers import get_channel_layer

from modelhub import metrics

logger = logging.getLogger(__name__)

RENEW_SECONDS = 3600  # layers that expire group membership (in-memory: after a day) get it renewed


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
        while True:
            message = await layer.receive(channel)
            members = tuple(self.members.get(message.get("group", ""), ()))
            for member in members:
                try:
                    member.deliver(message)
                except Exception:
                    logger.exception("realtime delivery of %s failed", message.get("type"))
            if members and message.get("type") == "realtime.event":
                # Per fan-out, not per socket: one counter update per event and process.
                metrics.realtime_messages.labels(message.get("event", "")).inc(len(members))

    async def _renew(self, layer: Any, channel: str) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for group in list(self.members):
                await layer.group_add(group, channel)


hub = LocalFanout()
