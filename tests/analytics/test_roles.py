"""Alert lookups. The analytics rows of the role x endpoint table (every role and anonymous callers
against every analytics endpoint) are in ``tests/api/test_role_matrix.py`` with the other endpoints."""

import pytest

from tests.conftest import API, assert_error

pytestmark = pytest.mark.django_db


def test_unknown_alert_is_404(client_for):
    assert_error(
        client_for("analyst").get(f"{API}/analytics/alerts/00000000-0000-0000-0000-000000000001"),
        404,
        "INVALID_REQUEST",
    )
    assert_error(client_for("analyst").get(f"{API}/analytics/alerts/nope"), 404, "INVALID_REQUEST")
