"""Twenty purchase requests at once: one purchase, twenty identical answers (one key); one entitlement
(twenty keys). Each thread has its own database connection; on PostgreSQL they really run at the
same time, on SQLite (which serialises writers) they take turns, as the database would make them."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable

import pytest
from django.db import connections
from rest_framework.test import APIClient

from marketplace.models import Entitlement, IdempotencyKey, Purchase
from tests.conftest import API, bearer, is_postgres
from tests.marketplace.helpers import make_listing, purchase_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
THREADS = 20


def race(work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(THREADS)
    turn = None if is_postgres() else threading.Lock()
    results: list[object] = [None] * THREADS

    def run(i: int) -> None:
        try:
            barrier.wait()
            if turn is None:
                results[i] = work(i)
            else:
                with turn:
                    results[i] = work(i)
        except Exception as exc:  # asserted on by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _post(user, listing, body, key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user))
    response = client.post(
        f"{API}/marketplace/models/{listing.model_id}/purchase", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    return response.status_code, response.json(), response["Idempotent-Replayed"]


def test_twenty_requests_with_one_key_make_one_purchase_and_twenty_identical_answers(personas):
    listing, plan, _ = make_listing(personas["admin"], amount="12.50")
    body = purchase_body(plan)
    key = str(uuid.uuid4())
    results = race(lambda i: _post(personas["developer"], listing, body, key))
    assert all(isinstance(r, tuple) for r in results), results
    statuses = {status for status, _, _ in results}
    bodies = {json.dumps(b) for _, b, _ in results}  # key order included: a replay is the first answer
    assert statuses == {201}, statuses
    assert len(bodies) == 1
    assert sorted(replayed for _, _, replayed in results) == ["false"] + ["true"] * (THREADS - 1)
    assert Purchase.objects.count() == 1
    assert Entitlement.objects.count() == 1
    assert IdempotencyKey.objects.get().state == "done"


def test_twenty_requests_with_different_keys_make_one_entitlement(personas):
    listing, plan, _ = make_listing(personas["admin"])
    body = purchase_body(plan)
    results = race(lambda i: _post(personas["developer"], listing, body, f"key-{i}"))
    assert all(isinstance(r, tuple) for r in results), results
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * (THREADS - 1), statuses
    codes = {b["error"]["code"] for status, b, _ in results if status == 409}
    assert codes == {"ENTITLEMENT_EXISTS"}
    assert Entitlement.objects.filter(status__in=["active", "pending"]).count() == 1
    assert Purchase.objects.count() == 1


def test_concurrent_decisions_on_one_request_leave_one_outcome(personas):
    from marketplace import services
    from marketplace.models import Entitlement
    from modelhub.api.exceptions import AppError
    from tests.marketplace.matrix import _buy

    listing, plan, _ = make_listing(personas["admin"], access_mode="approval_required", amount="10.00")
    _, pending = _buy(personas["developer"], listing, plan)

    def decide(i: int) -> str:
        service = services.entitlement_approve if i % 2 else services.entitlement_reject
        try:
            return service(entitlement=Entitlement.objects.get(pk=pending.pk), actor=personas["manager"]).status
        except AppError as exc:
            return exc.code

    results = race(decide)
    final = Entitlement.objects.get(pk=pending.pk).status
    assert final in {"active", "rejected"}
    # the winner and whoever asked for the same outcome see it; the others are refused with 409
    assert set(results) <= {final, "INVALID_REQUEST"}, results
    assert Purchase.objects.get().status == ("refunded" if final == "rejected" else "completed")


def test_twenty_concurrent_refunds_refund_once(personas):
    from marketplace import services
    from tests.marketplace.matrix import _buy

    listing, plan, _ = make_listing(personas["admin"])
    bought, _ = _buy(personas["developer"], listing, plan)
    results = race(lambda i: services.purchase_refund(purchase=bought, actor=personas["admin"]).status)
    assert results == ["refunded"] * THREADS
    bought.refresh_from_db()
    assert bought.status == "refunded" and Entitlement.objects.get().status == "refunded"
