"""The user of an authenticated request comes from the cache while the user is unchanged."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelhub.accounts.models import User
from modelhub.api.authentication import request_user, user_changed
from tests.conftest import API, assert_error

pytestmark = pytest.mark.django_db
ME = f"{API}/auth/me"


def user_queries(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        call()
    return sum('FROM "accounts_user"' in q["sql"] for q in queries.captured_queries)


def test_a_second_request_reads_no_user_row(client_for):
    client = client_for("analyst")
    assert user_queries(lambda: client.get(ME)) == 1
    assert user_queries(lambda: client.get(ME)) == 0


def test_a_role_change_counts_from_the_next_request(client_for, personas):
    viewer = client_for("viewer")
    assert viewer.get(ME).json()["role"] == "viewer"  # now cached
    response = client_for("admin").patch(f"{API}/users/{personas['viewer'].pk}", {"role": "analyst"}, format="json")
    assert response.status_code == 200, response.content
    assert viewer.get(ME).json()["role"] == "analyst"


def test_a_deleted_or_deactivated_user_is_refused_on_the_next_request(client_for, personas):
    gone, inactive = client_for("viewer"), client_for("analyst")
    assert gone.get(ME).status_code == inactive.get(ME).status_code == 200
    personas["viewer"].delete()
    analyst = User.objects.get(pk=personas["analyst"].pk)
    analyst.is_active = False
    analyst.save(update_fields=["is_active"])
    assert_error(gone.get(ME), 401, "UNAUTHORIZED")
    assert_error(inactive.get(ME), 401, "UNAUTHORIZED")


def test_an_entry_is_served_only_under_the_version_it_was_read_under(personas):
    user = personas["developer"]
    assert request_user(user.pk) == user
    # A write that sends no signal (QuerySet.update) is not seen while the entry lives ...
    User.objects.filter(pk=user.pk).update(role="viewer")
    assert request_user(user.pk).role == "developer"
    # ... until the user's version moves on (what every save and delete does).
    user_changed(user.pk)
    assert request_user(user.pk).role == "viewer"
    # A version evicted from the cache is a new random one: the entry of before is not served.
    User.objects.filter(pk=user.pk).update(role="analyst")
    cache.delete(f"accounts:user-version:{user.pk}")
    assert request_user(user.pk).role == "analyst"


def test_the_cache_can_be_switched_off(client_for, settings):
    settings.AUTH_USER_CACHE_SECONDS = 0
    client = client_for("analyst")
    client.get(ME)
    assert user_queries(lambda: client.get(ME)) == 1


def test_a_deletion_moves_the_version_on_again_when_it_commits(personas, django_capture_on_commit_callbacks):
    """At once and at commit (a request between the two may cache the row it read before the commit): the
    commit's move must name the user although ``delete()`` has cleared the instance's pk by then."""
    user = personas["viewer"]
    request_user(user.pk)
    version_key = f"accounts:user-version:{user.pk}"
    before = cache.get(version_key)
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    assert cache.get(version_key) == before + 2
