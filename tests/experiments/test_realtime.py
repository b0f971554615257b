"""experiment:update reaches the experiments.read group on start, stop, and with results after aggregation."""

import asyncio
import threading

import pytest
from channels.layers import get_channel_layer

from experiments import services
from modelhub.realtime import decode_data, group_name
from tests.analytics.helpers import event
from tests.conftest import API
from tests.experiments.helpers import create_experiment

pytestmark = pytest.mark.django_db


class Listener:
    """A channel in the ``experiments.read`` group on an event loop of its own (as tests/deployments does)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.layer = get_channel_layer()
        self.channel = self._run(self.layer.new_channel())
        self._run(self.layer.group_add(group_name("experiments.read"), self.channel))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def drain(self) -> list[dict]:
        async def receive_all() -> list[dict]:
            messages = []
            while True:
                try:
                    messages.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.5))
                except TimeoutError:
                    return messages

        return self._run(receive_all())

    def close(self) -> None:
        self._run(self.layer.group_discard(group_name("experiments.read"), self.channel))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def listener():
    subscribed = Listener()
    yield subscribed
    subscribed.close()


def test_lifecycle_and_results_are_published(client_for, personas, model, listener, django_capture_on_commit_callbacks):
    from analytics.rollup import rollup
    from analytics.services import ingest_usage

    with django_capture_on_commit_callbacks(execute=True):
        experiment = create_experiment(personas["developer"], model)
    with django_capture_on_commit_callbacks(execute=True):
        client_for("developer").post(f"{API}/experiments/{experiment.pk}/start")
    ingest_usage([event(model, userId=f"u{i}", experimentId=str(experiment.pk), variant="control") for i in range(5)])
    with django_capture_on_commit_callbacks(execute=True):
        rollup()
        services.experiments_aggregate()
    with django_capture_on_commit_callbacks(execute=True):
        client_for("developer").post(f"{API}/experiments/{experiment.pk}/stop", {}, format="json")
    data = [decode_data(m["text"]) for m in listener.drain() if m["event"] == "experiment:update"]
    assert [d["status"] for d in data] == ["running", "running", "stopped"]
    assert all(d["experimentId"] == str(experiment.pk) for d in data)
    assert "results" in data[1] and data[1]["results"]["variants"][0]["sampleSize"] == 5
