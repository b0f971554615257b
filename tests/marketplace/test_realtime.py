"""``entitlement:update`` reaches the holder's sockets only (the per-user group), after commit."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from marketplace import services
from marketplace.models import Entitlement
from tests.marketplace.helpers import make_listing
from tests.realtime.conftest import REALTIME_PATH, communicator, run, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def _socket(user):
    ws = communicator(REALTIME_PATH, [(b"authorization", f"Bearer {token_for(user)}".encode())])
    ok, _ = await ws.connect()
    assert ok
    hello = await ws.receive_json_from(timeout=5)
    assert hello["event"] == "auth:ok"
    return ws


def test_the_holder_alone_hears_about_their_entitlement(personas):
    listing, plan, terms = make_listing(personas["admin"], access_mode="approval_required", pricing_model="free")

    def buy():
        return services.purchase_create(
            actor=personas["developer"],
            model_id=listing.model_id,
            plan_id=plan.pk,
            terms_version=1,
            expected_amount=plan.amount,
            expected_currency="USD",
        )[1]

    def approve(entitlement_id):
        services.entitlement_approve(entitlement=Entitlement.objects.get(pk=entitlement_id), actor=personas["manager"])

    async def scenario():
        holder = await _socket(personas["developer"])
        other = await _socket(personas["outsider"])
        entitlement = await database_sync_to_async(buy)()
        pending = await holder.receive_json_from(timeout=5)
        assert pending["event"] == "entitlement:update"
        assert pending["data"]["id"] == str(entitlement.pk) and pending["data"]["status"] == "pending"
        await database_sync_to_async(approve)(entitlement.pk)
        active = await holder.receive_json_from(timeout=5)
        assert active["data"]["status"] == "active"
        assert await other.receive_nothing(timeout=0.3)
        await holder.disconnect()
        await other.disconnect()

    run(scenario)


def test_unknown_per_user_events_are_refused():
    from modelhub import realtime

    with pytest.raises(ValueError):
        realtime.publish_to_user("u", "deployment:status", {})


@pytest.mark.slow  # a live uvicorn
def test_socketio_clients_get_their_own_entitlement_updates(live_server_url, personas):
    from asgiref.sync import sync_to_async
    from django.db import transaction

    from modelhub import realtime
    from tests.realtime.conftest import NAMESPACE
    from tests.realtime.test_socketio import Client

    def push(user_id, data):
        with transaction.atomic():
            realtime.publish_to_user(user_id, "entitlement:update", data)

    async def scenario():
        holder, other = Client(), Client()
        for client in (holder, other):
            client.sio.on("entitlement:update", client._queue("entitlement:update"), namespace=NAMESPACE)
        await holder.connect(live_server_url, auth={"token": token_for(personas["developer"])})
        await other.connect(live_server_url, auth={"token": token_for(personas["outsider"])})
        await sync_to_async(push)(personas["developer"].pk, {"id": "e-1", "status": "active"})
        assert await holder.next() == ("entitlement:update", {"id": "e-1", "status": "active"})
        assert await other.nothing()
        await holder.sio.disconnect()
        await other.sio.disconnect()

    run(scenario)
