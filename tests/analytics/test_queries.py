"""Performance, dashboard, alerts and the catalog's use of real usage: every figure from ingested events.

Longer than 350 lines on purpose: every figure of the performance, dashboard and alert
responses is traced back to the ingested events that produce it, over one set of fixtures.
"""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from analytics.ingest import ingest_events
from analytics.models import Alert, AlertStatus
from analytics.rollup import rollup
from analytics.services import check_alerts
from modelhub.realtime import decode_data, group_name
from tests.analytics.helpers import event
from tests.conftest import API, assert_error
from tests.factories import DeploymentFactory, ModelRegistryFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)


def perf_url(model, **params) -> str:
    from urllib.parse import urlencode

    return f"{API}/analytics/models/{model.pk}/performance" + (f"?{urlencode(params)}" if params else "")


def iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def load(model, deployment=None):
    """Two hours of known traffic: 10 requests in the first hour, 4 (2 failing) in the second."""
    start = NOW - timedelta(hours=1, minutes=30)  # an hour boundary
    events = [
        event(
            model,
            at=start + timedelta(minutes=i),
            latencyMs=100.0 * (i + 1),
            promptTokens=100,
            completionTokens=10,
            cost=0.01,
            userRating=4,
            accepted=True,
            confidenceScore=0.8,
            userId=f"u{i % 3}",
            **({"deploymentId": str(deployment.pk)} if deployment else {}),
        )
        for i in range(10)
    ] + [
        event(
            model,
            at=start + timedelta(hours=1, minutes=i),
            latencyMs=50.0,
            promptTokens=10,
            completionTokens=10,
            cost=0.02,
            success=i >= 2,
            **({"errorCode": "TIMEOUT", "errorMessage": f"timeout {i}"} if i < 2 else {}),
            accepted=False,
        )
        for i in range(4)
    ]
    result = ingest_events(events)
    assert not result.rejected, result.rejected
    rollup()
    return start


def test_performance_metrics_trace_back_to_events(client_for, model):
    start = load(model)
    response = client_for("analyst").get(
        perf_url(model, **{"from": iso(start), "to": iso(start + timedelta(hours=2)), "granularity": "1h"})
    )
    assert response.status_code == 200, response.content
    body = response.json()
    m = body["metrics"]
    assert body["modelId"] == str(model.pk) and body["deploymentId"] is None
    assert m["timeRange"] == {"from": iso(start), "to": iso(start + timedelta(hours=2)), "granularity": "1h"}
    assert m["requests"] == {
        "total": 14,
        "successful": 12,
        "failed": 2,
        "successRate": round(12 / 14, 6),
        "errorRate": round(2 / 14, 6),
    }
    assert m["latency"]["min"] == 50.0 and m["latency"]["max"] == 1000.0
    assert m["latency"]["avg"] == round((5500 + 200) / 14, 3)
    # Sorted: 50 x4, 100, 200, 300, ... 1000; rank q*(n-1) -> p50 is the 7th (300), p99 the 13th (900); within 1 %.
    assert abs(m["latency"]["p50"] - 300.0) <= 3.0
    assert abs(m["latency"]["p99"] - 900.0) <= 9.0
    assert m["tokens"]["prompt"] == {"total": 1040, "avgPerRequest": round(1040 / 14, 6), "maxPerRequest": 100}
    assert m["tokens"]["completion"]["total"] == 140 and m["tokens"]["total"] == 1180
    assert m["cost"]["total"] == pytest.approx(0.18) and m["cost"]["avgPerRequest"] == pytest.approx(0.18 / 14)
    assert m["cost"]["costPer1kTokens"] == pytest.approx(0.18 * 1000 / 1180)
    assert m["cost"]["projectedMonthly"] == pytest.approx(0.18 * 30 * 12, rel=1e-6)  # 0.18 in 2 hours
    assert m["quality"] == {
        "avgConfidenceScore": 0.8,
        "avgUserRating": 4.0,
        "acceptanceRate": round(10 / 14, 6),
        "rejectionRate": round(4 / 14, 6),
    }
    assert m["errors"] == [
        {
            "code": "TIMEOUT",
            "message": "timeout 1",
            "count": 2,
            "percentage": round(200 / 14, 4),
            "lastOccurred": iso(start + timedelta(hours=1, minutes=1)),
        }
    ]
    assert [p["requests"] for p in m["timeSeries"]] == [10, 4]
    assert [p["errors"] for p in m["timeSeries"]] == [0, 2]
    assert m["timeSeries"][0] == {"timestamp": iso(start), "requests": 10, "latency": 550.0, "cost": 0.1, "errors": 0}
    assert [p["value"] for p in body["trends"]["requests"]] == [10, 4]
    assert len(body["trends"]["latency"]) == len(body["trends"]["cost"]) == len(body["trends"]["errors"]) == 2
    for insight in body["insights"]:
        assert insight["type"] in {"performance", "cost", "quality", "usage"} and insight["severity"] in {
            "info",
            "warning",
            "critical",
        }


def test_time_series_is_dense_and_filters_by_deployment_and_environment(client_for, model, personas):
    deployment = DeploymentFactory(model=model, environment="staging", owner=personas["developer"])
    start = load(model, deployment)
    ingest_events([event(model, at=start + timedelta(minutes=3), environment="production")])
    rollup()
    params = {"from": iso(start), "to": iso(start + timedelta(hours=3)), "granularity": "15m"}
    whole = client_for("developer").get(perf_url(model, **params)).json()["metrics"]
    assert len(whole["timeSeries"]) == 12 and whole["requests"]["total"] == 15  # 10 (deployment) + 4 + 1
    only = client_for("developer").get(perf_url(model, deploymentId=str(deployment.pk), **params)).json()
    assert only["deploymentId"] == str(deployment.pk) and only["metrics"]["requests"]["total"] == 10
    prod = client_for("developer").get(perf_url(model, environment="production", **params)).json()
    assert prod["metrics"]["requests"]["total"] == 5  # the second hour's 4 (no deployment) + 1


@pytest.mark.parametrize(
    "params, field",
    [
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-20T00:00:00Z", "granularity": "1m"}, "granularity"),
        ({"granularity": "2h"}, "granularity"),
        ({"from": "yesterday"}, "from"),
        ({"deploymentId": "nope"}, "deploymentId"),
        ({"deploymentId": "00000000-0000-0000-0000-000000000001"}, "deploymentId"),
        ({"environment": "prod"}, "environment"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_queries_are_invalid_parameter(client_for, model, params, field):
    error = assert_error(client_for("analyst").get(perf_url(model, **params)), 400, "INVALID_PARAMETER")
    assert field in error["details"]["fields"]


def test_old_ranges_need_a_coarse_granularity(client_for, model):
    start = timezone.now() - timedelta(days=20)
    assert_error(
        client_for("analyst").get(
            perf_url(model, **{"from": iso(start), "to": iso(start + timedelta(hours=2)), "granularity": "1m"})
        ),
        400,
        "INVALID_PARAMETER",
    )
    assert (
        client_for("analyst")
        .get(perf_url(model, **{"from": iso(start), "to": iso(start + timedelta(hours=2)), "granularity": "1h"}))
        .status_code
        == 200
    )


def test_performance_of_unknown_models_and_roles(client_for, model):
    assert_error(
        client_for("analyst").get(f"{API}/analytics/models/00000000-0000-0000-0000-000000000001/performance"),
        404,
        "MODEL_NOT_FOUND",
    )
    assert_error(client_for("analyst").get(f"{API}/analytics/models/not-a-uuid/performance"), 404, "MODEL_NOT_FOUND")
    assert_error(client_for("viewer").get(perf_url(model)), 403, "FORBIDDEN")
    assert client_for("developer").get(perf_url(model)).status_code == 200


def test_insights_compare_against_baseline_and_previous_period(client_for):
    model = ModelRegistryFactory(baseline_avg_latency_ms=100.0)
    start = NOW - timedelta(hours=2)
    previous = [
        event(model, at=start + timedelta(seconds=30 * i), latencyMs=90.0, cost=0.001, userRating=5) for i in range(40)
    ]
    current = [
        event(
            model,
            at=start + timedelta(hours=1, seconds=30 * i),
            latencyMs=400.0,
            cost=0.003,
            userRating=3,
            success=i % 4 != 0,
            **({"errorCode": "UPSTREAM_5XX", "errorMessage": "bad gateway"} if i % 4 == 0 else {}),
        )
        for i in range(100)
    ]
    assert not ingest_events(previous + current).rejected
    rollup()
    body = (
        client_for("analyst")
        .get(
            perf_url(
                model,
                **{"from": iso(start + timedelta(hours=1)), "to": iso(start + timedelta(hours=2)), "granularity": "5m"},
            )
        )
        .json()
    )
    kinds = {(i["type"], i["severity"]) for i in body["insights"]}
    messages = " ".join(i["message"] for i in body["insights"])
    assert ("performance", "critical") in kinds and "baseline" in messages  # p95 400 ms = 4x baseline
    assert "Error rate is 25.0%" in messages
    assert any(i["type"] == "cost" for i in body["insights"])
    assert any(i["type"] == "quality" for i in body["insights"])
    assert "UPSTREAM_5XX accounts for 100% of errors" in messages
    assert any(i["type"] == "usage" for i in body["insights"])  # 100 vs 40 requests
    assert all(i.get("recommendation") for i in body["insights"])


def test_dashboard_summarises_the_last_24_hours(client_for, personas, model):
    other = ModelRegistryFactory(name="second")
    DeploymentFactory(model=model, status="running", owner=personas["developer"])
    DeploymentFactory(model=model, status="stopped", owner=personas["developer"])
    start = load(model)
    ingest_events([event(other, at=NOW, latencyMs=10.0, cost=1.0, userRating=1)])
    ingest_events([event(other, at=timezone.now() - timedelta(days=3))])  # outside the window
    rollup()
    response = client_for("analyst").get(f"{API}/analytics/dashboard")
    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["totalModels"] == 2 and body["summary"]["activeDeployments"] == 1
    assert body["summary"]["totalRequests"] == 15
    assert body["summary"]["totalCost"] == pytest.approx(1.18)
    assert body["summary"]["avgLatency"] == round((5700 + 10) / 15, 3)
    assert body["summary"]["avgRating"] == pytest.approx((40 + 1) / 11, abs=1e-4)
    assert [t["name"] for t in body["topModels"]] == ["gpt-test", "second"]
    assert body["topModels"][0] == {
        "modelId": str(model.pk),
        "name": "gpt-test",
        "requests": 14,
        "cost": 0.18,
        "rating": 4.0,
    }
    assert isinstance(body["recentActivity"], list) and isinstance(body["alerts"], list)
    # Extensions for the console's charts: error rate, p95, one point per hour (empty hours as zeros).
    assert body["summary"]["errorRate"] == round(2 / 15, 6)
    assert body["summary"]["p95Latency"] == pytest.approx(900, rel=0.02)  # rank 0.95 * 14 = 13.3: the 14th, 900
    points = {p["timestamp"]: p for p in body["trends"]}
    assert len(points) == len(body["trends"]) >= 24
    first, second = points[iso(start)], points[iso(start + timedelta(hours=1))]
    assert (first["requests"], first["errors"], second["requests"], second["errors"]) == (10, 0, 5, 2)
    assert first["cost"] == pytest.approx(0.1) and second["cost"] == pytest.approx(1.08)
    assert first["latencyP50"] == pytest.approx(500, rel=0.02)  # rank 4.5 of 100..1000: the lower, 500
    assert first["latencyP99"] == pytest.approx(900, rel=0.02) and second["latencyP95"] == pytest.approx(50, rel=0.02)
    assert sum(p["requests"] for p in body["trends"]) == 15
    assert_error(client_for("viewer").get(f"{API}/analytics/dashboard"), 403, "FORBIDDEN")
    assert_error(client_for("analyst").get(f"{API}/analytics/dashboard?x=1"), 400, "INVALID_PARAMETER")


def run_subscribed(group: str, fn):
    """Run ``fn`` (sync, in this thread) while a channel-layer channel is in ``group``; return (result, messages)."""
    import asyncio

    from asgiref.sync import sync_to_async

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        result = await sync_to_async(fn)()
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), timeout=0.5))
            except TimeoutError:
                break
        await layer.group_discard(group, channel)
        return result, messages

    return async_to_sync(scenario)()


def test_alerts_open_once_resolve_on_recovery_and_notify(client_for, django_capture_on_commit_callbacks):
    model = ModelRegistryFactory(baseline_avg_latency_ms=100.0)
    now = timezone.now()
    failing = [
        event(
            model,
            at=now - timedelta(minutes=5, seconds=i),
            success=i % 2 == 0,
            **({} if i % 2 == 0 else {"errorCode": "E500"}),
        )
        for i in range(40)
    ]
    ingest_events(failing)
    rollup()

    def check_twice():
        results = []
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                results.append(check_alerts(now=now))
        return results

    results, received = run_subscribed(group_name("analytics.read"), check_twice)
    assert results == [{"opened": 1, "resolved": 0}, {"opened": 0, "resolved": 0}]  # still open: not opened again
    alert = Alert.objects.get()
    assert alert.type == "error_rate" and alert.severity == "critical" and alert.metric_value == 0.5
    messages = [decode_data(m["text"]) for m in received if m["event"] == "alert:new"]
    assert len(messages) == 1 and messages[0]["id"] == str(alert.pk) and messages[0]["modelId"] == str(model.pk)
    assert messages[0]["type"] == "error_rate" and messages[0]["severity"] == "critical"

    listed = client_for("analyst").get(f"{API}/analytics/alerts?status=open").json()
    assert [a["id"] for a in listed["alerts"]] == [str(alert.pk)] and listed["pagination"]["total"] == 1
    dash = client_for("analyst").get(f"{API}/analytics/dashboard").json()
    assert dash["alerts"][0]["id"] == str(alert.pk)
    assert any(a["type"] == "error" for a in dash["recentActivity"])

    assert_error(client_for("analyst").post(f"{API}/analytics/alerts/{alert.pk}/acknowledge"), 403, "FORBIDDEN")
    ack = client_for("developer").post(f"{API}/analytics/alerts/{alert.pk}/acknowledge")
    assert ack.status_code == 200 and ack.json()["alert"]["status"] == "acknowledged"
    assert (
        client_for("developer").post(f"{API}/analytics/alerts/{alert.pk}/acknowledge").json()["alert"]["status"]
        == "acknowledged"
    )

    healthy = [
        event(model, at=now - timedelta(minutes=2, seconds=i / 10)) for i in range(1000)
    ]  # 20 errors in 1040: 1.9 %
    ingest_events(healthy)
    rollup()
    assert check_alerts(now=now) == {"opened": 0, "resolved": 1}
    assert check_alerts(now=now) == {"opened": 0, "resolved": 0}
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_at is not None
    assert_error(client_for("developer").post(f"{API}/analytics/alerts/{alert.pk}/acknowledge"), 409, "INVALID_REQUEST")


def test_alert_list_filters_are_strict(client_for):
    assert_error(client_for("analyst").get(f"{API}/analytics/alerts?status=bogus"), 400, "INVALID_PARAMETER")
    assert_error(client_for("analyst").get(f"{API}/analytics/alerts?modelId=x"), 400, "INVALID_PARAMETER")
    assert client_for("analyst").get(f"{API}/analytics/alerts?severity=critical,warning").status_code == 200
    assert_error(client_for("viewer").get(f"{API}/analytics/alerts"), 403, "FORBIDDEN")


def test_model_detail_and_catalog_use_real_usage(client_for, model, personas):
    deployment = DeploymentFactory(model=model, owner=personas["developer"])
    now = timezone.now()
    ingest_events(
        [
            event(
                model,
                at=now - timedelta(hours=2),
                userId="a",
                useCase="chat",
                userRating=5,
                deploymentId=str(deployment.pk),
            ),
            event(model, at=now - timedelta(days=3), userId="b", useCase="chat", userRating=4),
            event(model, at=now - timedelta(days=10), userId="a", useCase="summarize", cost=2.0),
        ]
    )
    rollup()
    body = client_for("viewer").get(f"{API}/models/{model.pk}").json()
    assert body["usage"]["totalRequests"] == 3 and body["usage"]["uniqueUsers"] == 2
    assert body["usage"]["popularUseCases"] == ["chat", "summarize"]
    assert body["usage"]["totalCost"] == pytest.approx(2.0 + 2 * float(model.baseline_cost_per_1k_tokens) * 150 / 1000)
    perf = body["performance"]
    assert (
        perf["last24h"]["requests"]["total"],
        perf["last7d"]["requests"]["total"],
        perf["last30d"]["requests"]["total"],
    ) == (1, 2, 3)
    assert body["deployments"][0]["id"] == str(deployment.pk) and body["deployments"][0]["lastUsed"] is not None

    other = ModelRegistryFactory(name="unrated")
    listed = client_for("viewer").get(f"{API}/models?sortBy=popularity&minRating=4").json()["models"]
    assert [m["id"] for m in listed] == [str(model.pk)]
    assert other.pk not in [m["id"] for m in listed]


def test_trend_p95_merges_sketches_of_buckets_sharing_a_start(client_for, model, personas):
    from analytics import sketch

    fast = DeploymentFactory(model=model, environment="production", owner=personas["developer"])
    slow = DeploymentFactory(model=model, environment="production", owner=personas["developer"])
    start = NOW - timedelta(hours=1, minutes=30)
    fast_ms = [10.0 + i for i in range(50)]
    slow_ms = [1000.0 + 10 * i for i in range(50)]
    ingest_events(
        [
            event(model, at=start + timedelta(seconds=i), latencyMs=v, deploymentId=str(fast.pk))
            for i, v in enumerate(fast_ms)
        ]
        + [
            event(model, at=start + timedelta(seconds=i), latencyMs=v, deploymentId=str(slow.pk))
            for i, v in enumerate(slow_ms)
        ]
    )
    rollup()
    body = (
        client_for("analyst")
        .get(perf_url(model, **{"from": iso(start), "to": iso(start + timedelta(hours=1)), "granularity": "1h"}))
        .json()
    )
    expected = sketch.quantiles(sketch.build(fast_ms + slow_ms), (0.95,))[0]
    assert body["trends"]["latency"][0]["value"] == round(expected, 3)
    assert abs(expected - sorted(fast_ms + slow_ms)[94]) <= 0.01 * expected
    assert body["metrics"]["latency"]["p95"] == round(expected, 3)
    # One deployment alone: its stored p95.
    alone = (
        client_for("analyst")
        .get(
            perf_url(
                model,
                deploymentId=str(fast.pk),
                **{"from": iso(start), "to": iso(start + timedelta(hours=1)), "granularity": "1h"},
            )
        )
        .json()
    )
    assert alone["trends"]["latency"][0]["value"] == round(sketch.quantiles(sketch.build(fast_ms), (0.95,))[0], 3)


def test_a_deployment_transition_pushes_a_dashboard_update(
    client_for, model, personas, django_capture_on_commit_callbacks
):
    deployment = DeploymentFactory(model=model, status="running", owner=personas["developer"])

    def stop():
        with django_capture_on_commit_callbacks(execute=True):
            return client_for("developer").delete(f"{API}/deployments/{deployment.pk}").status_code

    status, received = run_subscribed(group_name("analytics.read"), stop)
    assert status == 204
    updates = [decode_data(m["text"]) for m in received if m["event"] == "dashboard:update"]
    assert len(updates) == 1
    assert updates[0]["summary"]["activeDeployments"] == 0
    assert updates[0]["recentActivity"][0]["type"] == "deployment"


def test_unique_users_are_cached_and_refreshed_by_prune(client_for, model):
    from analytics.selectors import unique_users
    from analytics.tasks import prune

    ingest_events([event(model, userId="a"), event(model, userId="b"), event(model, userId="")])
    assert unique_users(model.pk) == 2
    ingest_events([event(model, userId="c")])
    assert unique_users(model.pk) == 2  # cached: at most an hour behind
    prune()  # the hourly job recounts every model in one query
    assert unique_users(model.pk) == 3
    assert client_for("viewer").get(f"{API}/models/{model.pk}").json()["usage"]["uniqueUsers"] == 3


def test_every_query_parameter_is_checked_however_many(client_for, model):
    many = {f"p{i}": "1" for i in range(49)}
    error = assert_error(client_for("analyst").get(perf_url(model, **many, colour="red")), 400, "INVALID_PARAMETER")
    assert "colour" in error["details"]["fields"]
    too_many = {f"p{i}": "1" for i in range(51)}
    assert_error(client_for("analyst").get(perf_url(model, **too_many)), 400, "INVALID_PARAMETER")


def test_a_long_window_is_one_statement_and_every_figure_traces_back(
    client_for, model, personas, django_assert_max_num_queries
):
    """Three days at 1h: the covered middle day from its day bucket, edges and shared starts from their hours.

    Two deployments share starts both on an edge and in the covered middle (a trend point's p95 is their
    merged sketch); the previous window's totals feed the insights - all from one analytics statement.
    """
    from analytics import sketch

    fast = DeploymentFactory(model=model, environment="production", owner=personas["developer"])
    slow = DeploymentFactory(model=model, environment="production", owner=personas["developer"])
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    start, end = day - timedelta(hours=3), day + timedelta(days=1, hours=3)
    edge, middle, last = day - timedelta(hours=2), day + timedelta(hours=5), day + timedelta(days=1, hours=1)
    plan = {  # (hour, deployment) -> latencies
        (edge, fast): [10.0 + i for i in range(15)],
        (edge, slow): [900.0 + i for i in range(15)],
        (middle, fast): [20.0 + i for i in range(20)],
        (middle, slow): [2000.0 + 5 * i for i in range(20)],
        (last, fast): [50.0 + i for i in range(10)],
    }
    events = [
        event(model, at=hour + timedelta(seconds=30 * i), latencyMs=v, deploymentId=str(d.pk), cost=0.001)
        for (hour, d), values in plan.items()
        for i, v in enumerate(values)
    ]
    previous = start - timedelta(hours=5)  # 30 requests in the previous window, 3 failing
    events += [
        event(
            model,
            at=previous + timedelta(seconds=i),
            success=i >= 3,
            cost=0.002,
            **({"errorCode": "TIMEOUT", "errorMessage": "slow"} if i < 3 else {}),
        )
        for i in range(30)
    ]
    events += [event(model, at=middle + timedelta(minutes=40), success=False, errorCode="UPSTREAM_5XX", cost=0.0015)]
    assert not ingest_events(events).rejected
    rollup()
    client = client_for("analyst")
    url = perf_url(model, **{"from": iso(start), "to": iso(end), "granularity": "1h"})
    client.get(url)  # warm: the first call may load content types or the like
    with django_assert_max_num_queries(3):  # the user, the model, the analytics statement
        body = client.get(url).json()

    window_latencies = [v for values in plan.values() for v in values] + [100.0]
    metrics = body["metrics"]
    assert metrics["requests"]["total"] == len(window_latencies) and metrics["requests"]["failed"] == 1
    assert metrics["latency"]["p95"] == round(sketch.quantiles(sketch.build(window_latencies), (0.95,))[0], 3)
    assert metrics["latency"]["max"] == max(window_latencies)
    assert [e["code"] for e in metrics["errors"]] == ["UPSTREAM_5XX"]  # the previous window's are not counted
    assert metrics["cost"]["total"] == 0.0815  # 80 x 0.001 + 0.0015, exact (decimal sums)
    points = {p["timestamp"]: p["value"] for p in body["trends"]["latency"]}
    assert len(points) == 30
    both_middle = plan[(middle, fast)] + plan[(middle, slow)] + [100.0]
    assert points[iso(middle)] == round(sketch.quantiles(sketch.build(both_middle), (0.95,))[0], 3)
    both_edge = plan[(edge, fast)] + plan[(edge, slow)]
    assert points[iso(edge)] == round(sketch.quantiles(sketch.build(both_edge), (0.95,))[0], 3)
    assert points[iso(last)] == round(sketch.quantiles(sketch.build(plan[(last, fast)]), (0.95,))[0], 3)
    requests = {p["timestamp"]: p["value"] for p in body["trends"]["requests"]}
    assert requests[iso(middle)] == 41 and sum(requests.values()) == len(window_latencies)
    usage = [i["message"] for i in body["insights"] if i["type"] == "usage"]
    assert usage == [f"Traffic rose 170% against the previous period ({len(window_latencies)} vs 30 requests)."]
