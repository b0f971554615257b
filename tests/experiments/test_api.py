"""The experiments resource through the API: validation, lifecycle, updates while running, audit."""

import pytest

from experiments.models import Experiment, ExperimentTransition
from tests.conftest import API, assert_error
from tests.experiments.helpers import create_experiment, experiment_body
from tests.factories import DeploymentFactory, ModelRegistryFactory

pytestmark = pytest.mark.django_db

URL = API + "/experiments"


@pytest.fixture
def dev(client_for):
    return client_for("developer")


def test_create_answers_the_experiment_in_an_envelope(dev, model):
    response = dev.post(URL, experiment_body(model, owner="developer"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()["experiment"]
    assert body["status"] == "draft"
    assert [v["name"] for v in body["variants"]] == ["control", "cool"]
    assert body["metrics"]["statisticalSignificance"] == 0.95
    assert body["analysis"]["mode"] == "sequential"
    assert body["analysis"]["guardrails"] == {"costPerRequest": 0.05, "p95Latency": 0.1, "successRate": 0.005}
    assert body["owner"] == "developer"
    listed = dev.get(URL).json()
    assert listed["pagination"]["total"] == 1 and listed["experiments"][0]["id"] == body["id"]
    assert dev.get(f"{URL}/{body['id']}").json()["experiment"]["id"] == body["id"]


@pytest.mark.parametrize(
    "change, field",
    [
        (
            {
                "variants": [
                    {"name": "a", "version": "1.0.0", "weight": 60},
                    {"name": "a", "version": "1.0.0", "weight": 40},
                ]
            },
            "variants",
        ),
        (
            {
                "variants": [
                    {"name": "a", "version": "1.0.0", "weight": 60},
                    {"name": "b", "version": "1.0.0", "weight": 60},
                ]
            },
            "variants.weight",
        ),
        (
            {
                "variants": [
                    {"name": "a", "version": "1.0.0", "weight": 50},
                    {"name": "b", "version": "9", "weight": 50},
                ]
            },
            "variants[1].version",
        ),
        (
            {
                "variants": [
                    {"name": "a", "version": "1.0.0", "weight": 50, "configuration": {"temperature": 7}},
                    {"name": "b", "version": "1.0.0", "weight": 50},
                ]
            },
            "variants[0].configuration.temperature",
        ),
        ({"metrics": {"primary": "user_rating", "secondary": ["user_rating"]}}, "metrics.secondary"),
    ],
)
def test_definition_rules(dev, model, change, field):
    response = dev.post(URL, experiment_body(model, owner="developer", **change), format="json")
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert field in error["details"]["fields"], error


@pytest.mark.parametrize(
    "change",
    [
        {"metrics": {"primary": "happiness", "secondary": []}},
        {"metrics": {"primary": "user_rating", "secondary": [], "statisticalSignificance": 0.5}},
        {"metrics": {"primary": "user_rating", "secondary": [], "statisticalSignificance": 1}},
        {"traffic": {"type": "percentage", "totalPercentage": 101}},
        {"audience": {"percentage": -1}},
        {"audience": {"percentage": 10, "filters": {"shoeSize": "42"}}},
    ],
)
def test_field_rules(dev, model, change):
    response = dev.post(URL, experiment_body(model, owner="developer", **change), format="json")
    assert response.status_code == 400, response.content


def test_a_bad_rule_is_invalid_parameter_pointing_at_the_rule(dev, model):
    rules = [
        {"condition": "user.tier == 'premium'", "variantName": "cool"},
        {"condition": "user.tier == ", "variantName": "cool"},
    ]
    response = dev.post(
        URL,
        experiment_body(model, traffic={"type": "rules-based", "totalPercentage": 100, "rules": rules}),
        format="json",
    )
    error = assert_error(response, 400, "INVALID_PARAMETER")
    assert error["details"]["ruleIndex"] == 1
    assert "traffic.rules[1].condition" in error["details"]["fields"]
    for condition in ("user.shoeSize == '42'", "__import__('os')", "open('/etc/passwd')"):
        rules = [{"condition": condition, "variantName": "cool"}]
        response = dev.post(
            URL,
            experiment_body(model, traffic={"type": "rules-based", "totalPercentage": 100, "rules": rules}),
            format="json",
        )
        assert_error(response, 400, "INVALID_PARAMETER")


def test_unknown_model_is_404(dev):
    body = experiment_body(ModelRegistryFactory())
    body["modelId"] = "00000000-0000-0000-0000-000000000000"
    assert_error(dev.post(URL, body, format="json"), 404, "MODEL_NOT_FOUND")


def test_a_variant_may_be_another_model(dev, model):
    other = ModelRegistryFactory(name="other-provider", version="3")
    body = experiment_body(model, owner="developer")
    body["variants"][1] = {"name": "other", "version": "3", "weight": 50, "modelId": str(other.pk)}
    response = dev.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["experiment"]["variants"][1]["modelId"] == str(other.pk)
    # another version of the same model by name
    v2 = ModelRegistryFactory(name=model.name, version="2.0.0")
    body["variants"][1] = {"name": "v2", "version": "2.0.0", "weight": 50}
    response = dev.post(URL, body, format="json")
    assert response.json()["experiment"]["variants"][1]["modelId"] == str(v2.pk)


def test_lifecycle_is_audited_and_idempotent_where_it_should_be(dev, personas, model):
    experiment = create_experiment(personas["developer"], model)
    url = f"{URL}/{experiment.pk}"
    assert_error(dev.get(url + "/results"), 409, "INVALID_REQUEST")
    assert dev.post(url + "/start").json()["experiment"]["status"] == "running"
    assert_error(dev.post(url + "/start"), 409, "INVALID_REQUEST")
    assert_error(dev.delete(url), 409, "INVALID_REQUEST")
    assert dev.post(url + "/stop", {"reason": "enough"}, format="json").json()["experiment"]["status"] == "stopped"
    assert_error(dev.post(url + "/stop", {}, format="json"), 409, "INVALID_REQUEST")
    steps = list(
        ExperimentTransition.objects.filter(experiment=experiment)
        .order_by("id")
        .values_list("from_status", "to_status", "actor_username")
    )
    assert steps == [("", "draft", "developer"), ("draft", "running", "developer"), ("running", "stopped", "developer")]
    assert dev.delete(url).status_code == 204
    assert_error(dev.get(url), 404, "EXPERIMENT_NOT_FOUND")


def test_one_running_experiment_per_model(dev, personas, model):
    create_experiment(personas["developer"], model, start=True)
    second = create_experiment(personas["developer"], model)
    error = assert_error(dev.post(f"{URL}/{second.pk}/start"), 409, "INVALID_REQUEST")
    assert "already running" in error["message"]


def test_what_may_change_while_running(dev, personas, model):
    experiment = create_experiment(personas["developer"], model, start=True)
    url = f"{URL}/{experiment.pk}"
    ok = dev.patch(
        url,
        {"traffic": {"totalPercentage": 100}, "description": "widened", "metrics": {"secondary": ["success_rate"]}},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["experiment"]["description"] == "widened"
    refused = dev.patch(
        url,
        {
            "variants": [
                {"name": "control", "version": model.version, "weight": 20},
                {"name": "cool", "version": model.version, "weight": 80},
            ]
        },
        format="json",
    )
    error = assert_error(refused, 409, "INVALID_REQUEST")
    assert "variants" in error["details"]["fields"]
    lowered = dev.patch(url, {"audience": {"percentage": 50}}, format="json")
    assert "audience.percentage (lowered)" in assert_error(lowered, 409, "INVALID_REQUEST")["details"]["fields"]


def test_developers_change_only_their_own(client_for, personas, model):
    experiment = create_experiment(personas["manager"], model)
    assert_error(
        client_for("developer").patch(f"{URL}/{experiment.pk}", {"description": "x"}, format="json"), 403, "FORBIDDEN"
    )
    assert client_for("manager").patch(f"{URL}/{experiment.pk}", {"description": "x"}, format="json").status_code == 200


def test_list_filters(dev, personas, model):
    create_experiment(personas["developer"], model, name="alpha one")
    other = create_experiment(personas["developer"], ModelRegistryFactory(), name="beta two", start=True)
    assert [e["name"] for e in dev.get(URL + "?status=running").json()["experiments"]] == ["beta two"]
    assert [e["name"] for e in dev.get(URL + "?search=alp").json()["experiments"]] == ["alpha one"]
    assert [e["id"] for e in dev.get(f"{URL}?modelId={other.model_id}").json()["experiments"]] == [str(other.pk)]
    assert [e["name"] for e in dev.get(URL + "?sortBy=name&sortOrder=asc").json()["experiments"]] == [
        "alpha one",
        "beta two",
    ]
    assert_error(dev.get(URL + "?colour=red"), 400, "INVALID_PARAMETER")


def test_schedule_starts_and_completes_once(personas, model):
    from datetime import timedelta

    from django.utils import timezone

    from experiments import services

    experiment = create_experiment(personas["developer"], model)
    assert services.experiments_schedule(now=timezone.now()) == {"started": 0, "completed": 0}
    later = experiment.start_date + timedelta(minutes=1)
    assert services.experiments_schedule(now=later) == {"started": 1, "completed": 0}
    assert services.experiments_schedule(now=later) == {"started": 0, "completed": 0}
    end = experiment.end_date + timedelta(minutes=1)
    assert services.experiments_schedule(now=end)["completed"] == 1
    assert services.experiments_schedule(now=end)["completed"] == 0
    experiment.refresh_from_db()
    assert experiment.status == "completed"
    actions = list(experiment.transitions.order_by("id").values_list("to_status", "actor_username", "reason"))
    assert actions[1:] == [("running", "", "startDate reached."), ("completed", "", "endDate reached.")]


def test_assign_is_deterministic_and_sticky(client_for, personas, model):
    experiment = create_experiment(personas["developer"], model, start=True)
    dev = client_for("developer")
    url = f"{URL}/{experiment.pk}/assign"
    first = dev.post(url, {"userId": "u-1"}, format="json").json()
    assert first["included"] is True and first["variant"] in {"control", "cool"}
    assert dev.post(url, {"userId": "u-1"}, format="json").json()["variant"] == first["variant"]
    assert experiment.assignments.get(unit_id="u-1").variant == first["variant"]
    assert_error(client_for("viewer").post(url, {"userId": "u-1"}, format="json"), 403, "FORBIDDEN")


def test_promote_without_a_winner_is_409_unless_an_admin_forces(client_for, personas, model):
    deployment = DeploymentFactory(model=model, owner=personas["developer"], environment="production")
    experiment = create_experiment(personas["developer"], model, start=True, deploymentId=str(deployment.pk))
    url = f"{URL}/{experiment.pk}/promote"
    error = assert_error(client_for("developer").post(url, {}, format="json"), 409, "INVALID_REQUEST")
    assert error["details"]["winner"] is None and error["details"]["reasons"]
    assert_error(client_for("developer").post(url, {"force": True, "variant": "cool"}, format="json"), 403, "FORBIDDEN")
    done = client_for("admin").post(url, {"force": True, "variant": "cool"}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["experiment"]["status"] == "completed"
    deployment.refresh_from_db()
    assert deployment.config["parameters"]["temperature"] == 0.2
    promote = ExperimentTransition.objects.get(experiment=experiment, action="promote")
    assert promote.actor_username == "admin" and promote.details["forced"] is True
    assert Experiment.objects.get(pk=experiment.pk).status == "completed"


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_move_the_experiment_once(personas, model):
    """Two concurrent starts (or a start racing the schedule task): one transition, the other a 409."""
    import threading

    from django.db import connection

    from experiments import services
    from modelhub.api.exceptions import Conflict
    from tests.conftest import is_postgres

    if not is_postgres():
        pytest.skip("SQLite serialises writers (a concurrent writer gets 'database is locked', not a race)")
    experiment = create_experiment(personas["developer"], model)
    barrier = threading.Barrier(4)
    outcomes = []

    def start():
        try:
            barrier.wait(timeout=10)
            services.experiment_start(experiment=Experiment.objects.get(pk=experiment.pk), actor=personas["developer"])
            outcomes.append("started")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "started"]
    assert ExperimentTransition.objects.filter(experiment=experiment, to_status="running").count() == 1


def test_a_regex_rule_is_invalid_parameter_pointing_at_the_rule(dev, model):
    rules = [
        {"condition": "user.tier == 'premium'", "variantName": "cool"},
        {"condition": 'user.tier =~ "(a+)+$"', "variantName": "cool"},
    ]
    response = dev.post(
        URL,
        experiment_body(model, traffic={"type": "rules-based", "totalPercentage": 100, "rules": rules}),
        format="json",
    )
    error = assert_error(response, 400, "INVALID_PARAMETER")
    assert error["details"]["ruleIndex"] == 1
    assert "regular-expression" in error["details"]["fields"]["traffic.rules[1].condition"][0]
    assert not Experiment.objects.exists()


def test_an_own_only_developer_must_target_a_deployment_they_own(client_for, personas, model):
    dev = client_for("developer")
    # no deploymentId = every deployment of the model: only all-deployments roles
    error = assert_error(dev.post(URL, experiment_body(model), format="json"), 403, "FORBIDDEN")
    assert "deploymentId" in error["details"]["fields"]
    theirs = DeploymentFactory(model=model, owner=personas["outsider"])
    assert_error(dev.post(URL, experiment_body(model, deploymentId=str(theirs.pk)), format="json"), 403, "FORBIDDEN")
    assert not Experiment.objects.exists()
    assert client_for("manager").post(URL, experiment_body(model), format="json").status_code == 201
    # update: moving the target to someone else's deployment, or dropping it, is refused (PUT and PATCH)
    mine = create_experiment(personas["developer"], model)
    url = f"{URL}/{mine.pk}"
    assert_error(dev.patch(url, {"deploymentId": str(theirs.pk)}, format="json"), 403, "FORBIDDEN")
    assert_error(dev.patch(url, {"deploymentId": None}, format="json"), 403, "FORBIDDEN")
    put = experiment_body(model, deploymentId=str(theirs.pk))
    assert_error(dev.put(url, put, format="json"), 403, "FORBIDDEN")
    mine.refresh_from_db()
    assert mine.deployment.owner == personas["developer"]
    # start: the target changed hands since (or the experiment predates the rule)
    mine.deployment.owner = personas["outsider"]
    mine.deployment.save(update_fields=["owner"])
    assert_error(dev.post(url + "/start"), 403, "FORBIDDEN")
    assert Experiment.objects.get(pk=mine.pk).status == "draft"
    assert client_for("manager").post(url + "/start").status_code == 200


def test_promote_checks_the_target_deployments_owner(client_for, personas, model):
    experiment = create_experiment(personas["developer"], model, start=True)
    url = f"{URL}/{experiment.pk}/promote"
    dev = client_for("developer")
    assert_error(dev.post(url, {}, format="json"), 409, "INVALID_REQUEST")  # own target: only "no winner"
    experiment.deployment.owner = personas["outsider"]
    experiment.deployment.save(update_fields=["owner"])
    error = assert_error(dev.post(url, {}, format="json"), 403, "FORBIDDEN")
    assert error["details"]["deploymentId"] == str(experiment.deployment_id)
    done = client_for("admin").post(url, {"force": True, "variant": "cool"}, format="json")
    assert done.status_code == 200, done.content


def test_a_variant_is_routed_only_to_a_deployment_of_the_target_owner(personas, model):
    from experiments.selectors import load_plan

    other = ModelRegistryFactory(name="other-provider", version="3")
    target = DeploymentFactory(model=model, owner=personas["developer"], environment="production", status="running")
    foreign = DeploymentFactory(model=other, owner=personas["outsider"], environment="production", status="running")
    variants = [
        {"name": "control", "version": model.version, "weight": 50},
        {"name": "other", "version": "3", "weight": 50, "modelId": str(other.pk)},
    ]
    create_experiment(personas["developer"], model, start=True, deploymentId=str(target.pk), variants=variants)
    plan, routes = load_plan(target.pk)
    assert plan is not None and routes == {}  # only the outsider's deployment serves that model: not used
    own = DeploymentFactory(model=other, owner=personas["developer"], environment="production", status="running")
    plan, routes = load_plan(target.pk)
    assert routes == {"other": own.pk} and foreign.pk not in routes.values()


@pytest.mark.parametrize(
    "patch, code, field",
    [
        ({"variants": [{"name": "a"}, {"name": "b"}]}, "MISSING_REQUIRED_FIELD", "variants[0].version"),
        (
            {"traffic": {"rules": [{"condition": "user.tier == 'x'"}]}},
            "MISSING_REQUIRED_FIELD",
            "traffic.rules[0].variantName",
        ),
        ({"variants": [{"name": "a", "version": "1", "weight": 50}]}, "INVALID_REQUEST", "variants"),
    ],
)
def test_patch_revalidates_the_merged_definition(dev, personas, model, patch, code, field):
    experiment = create_experiment(personas["developer"], model)
    response = dev.patch(f"{URL}/{experiment.pk}", patch, format="json")
    error = assert_error(response, 400, code)
    assert field in error["details"]["fields"], error
    assert [v.name for v in Experiment.objects.get(pk=experiment.pk).variants.all()] == ["control", "cool"]


def test_the_admin_cannot_edit_the_definition(personas, rf):
    from django.contrib.admin.sites import site

    request = rf.get("/")
    request.user = personas["admin"]
    model_admin = site._registry[Experiment]
    form = model_admin.get_form(request)
    for name in ("traffic", "metrics", "audience", "analysis", "model", "deployment", "start_date", "end_date"):
        assert name not in form.base_fields, name
        assert name in model_admin.get_readonly_fields(request)


def test_a_broken_stored_plan_means_no_experiment_not_a_500(client_for, personas, model, caplog):
    from experiments.selectors import load_plan

    experiment = create_experiment(personas["developer"], model, start=True)
    Experiment.objects.filter(pk=experiment.pk).update(
        traffic={
            "type": "rules-based",
            "totalPercentage": 100,
            "rules": [{"condition": "user.tier ==", "variantName": "cool"}],
        }
    )
    assert load_plan(experiment.deployment_id) == (None, {})
    assert "broken plan" in caplog.text
    Experiment.objects.filter(pk=experiment.pk).update(traffic={"type": "percentage", "totalPercentage": "lots"})
    assert load_plan(experiment.deployment_id) == (None, {})
    answer = client_for("developer").post(f"{URL}/{experiment.pk}/assign", {"userId": "u1"}, format="json")
    assert answer.status_code == 200 and answer.json()["included"] is False
    assert answer.json()["reason"] == "experiment_misconfigured"
