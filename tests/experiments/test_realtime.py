"""experiment:update reaches the experiments.read group on start, stop, and with results after aggregation."""

import pytest

from experiments import services
from modelhub.realtime import decode_data
from tests.analytics.helpers import event
from tests.channel_listener import Listener
from tests.conftest import API
from tests.experiments.helpers import create_experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener():
    subscribed = Listener("experiments.read")
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
