"""A test's subscription to one realtime group, on an event loop of its own.

The Redis pub/sub layer is per event loop, so subscribing, receiving and leaving must all happen on
the same loop (the in-memory layer does not mind).
"""

from __future__ import annotations

import asyncio
import threading

from channels.layers import get_channel_layer

from modelhub.realtime import group_name


class Listener:
    """A channel in the group of the clients holding ``permission`` (e.g. ``deployments.read``)."""

    def __init__(self, permission: str) -> None:
        self.group = group_name(permission)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.layer = get_channel_layer()
        self.channel = self._run(self.layer.new_channel())
        self._run(self.layer.group_add(self.group, self.channel))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def drain(self) -> list[dict]:
        """Every message that arrives until none has for half a second."""

        async def receive_all() -> list[dict]:
            messages = []
            while True:
                try:
                    messages.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.5))
                except TimeoutError:
                    return messages

        return self._run(receive_all())

    def close(self) -> None:
        self._run(self.layer.group_discard(self.group, self.channel))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
