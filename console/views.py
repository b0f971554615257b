"""The console's pages: server-rendered from the API's own answers (see :mod:`console.internal`).

A page that the role may not read renders the API's refusal (its message and request id) with the
API's status; an action answers the row or panel it changed (htmx swaps it in), or the error.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors as catalog_selectors
from console import internal
from console.navigation import allowed_pages
from deployments import selectors as deployment_selectors
from deployments.constants import Environment
from marketplace.constants import PricingModel
from modelhub.roles import Grant, grant_for, has_permission

# The websocket's token: short, renewed by the page before it lapses (console.js).
SOCKET_TOKEN_LIFETIME = internal.timedelta(minutes=5)
MODEL_FILTERS = ("search", "provider", "modelType", "status", "sortBy", "sortOrder", "page")
DEPLOYMENT_FILTERS = ("environment", "status", "modelId", "page")
DEPLOYMENT_STATUSES = ("creating", "running", "scaling", "failed", "stopped")  # the spec's enum
ALERT_FILTERS = ("status", "severity", "page")


def _page(request: HttpRequest, template: str, context: dict[str, Any], answer: internal.Answer | None = None):
    """Render a page; when the API refused its main read, the page shows why, with the API's status."""
    status = 200
    if answer is not None and not answer.ok:
        context["error"] = answer.error
        status = answer.status
    context["nav"] = allowed_pages(request.user.role)
    context["role"] = request.user.role
    partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target")
    if partial and context.get("partial_template"):
        return render(request, context["partial_template"], context, status=status)
    return render(request, template, context, status=status)


def _read_list(
    request: HttpRequest, path: str, names: tuple[str, ...], limit: int, default: list[tuple[str, str]] | None = None
) -> tuple[dict[str, str], internal.Answer, dict[str, Any]]:
    """A list page's read: the page's filters from the query string (or ``default``) through the API.
    Returns (the filters applied, the API's answer, its body or {} when it refused)."""
    query = _query(request, names) or list(default or [])
    answer = internal.call(request, "GET", path, query=query + [("limit", str(limit))])
    return dict(query), answer, (answer.data if answer.ok else {})


def _query(request: HttpRequest, names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(name, value) for name in names for value in request.GET.getlist(name) if value != ""]


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """``/``: the first page the role may read (the dashboard for most), or the login."""
    if not request.user.is_authenticated:
        return HttpResponseRedirect(reverse("console:login"))
    pages = allowed_pages(request.user.role)
    return HttpResponseRedirect(reverse(pages[0].url_name) if pages else reverse("console:models"))


@login_required
@require_POST
def socket_token(request: HttpRequest) -> JsonResponse:
    """A short-lived access token for this page's websocket (session-only; the API stays JWT-only)."""
    token = internal.access_token(request.user, SOCKET_TOKEN_LIFETIME)
    return JsonResponse({"token": str(token), "expiresIn": int(SOCKET_TOKEN_LIFETIME.total_seconds())})


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    answer = internal.call(request, "GET", "/analytics/dashboard")
    context: dict[str, Any] = {"page": "dashboard", "dashboard": answer.data}
    if answer.ok and has_permission(request.user.role, "costs.read"):
        # Cost against the budget: this month's spend, budget and projection (GET /cost/analysis).
        analysis = internal.call(request, "GET", "/cost/analysis")
        context["budget"] = analysis.data["budget"] if analysis.ok else None
    return _page(request, "console/dashboard.html", context, answer)


@login_required
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    applied, answer, data = _read_list(request, "/models", MODEL_FILTERS, 20)
    return _page(
        request,
        "console/models.html",
        {
            "page": "models",
            "models": data.get("models", []),
            "pagination": data.get("pagination"),
            "available": (data.get("filters") or {}).get("available", {}),
            "applied": applied,
            "partial_template": "console/_model_rows.html",
        },
        answer,
    )


@login_required
@require_GET
def model_detail(request: HttpRequest, model_id: uuid.UUID) -> HttpResponse:
    answer = internal.call(request, "GET", f"/models/{model_id}")
    context: dict[str, Any] = {"page": "models", "model": answer.data if answer.ok else None}
    if answer.ok and has_permission(request.user.role, "marketplace.read"):
        listed = internal.call(request, "GET", f"/marketplace/models/{model_id}")  # 404: not listed
        context["listing"] = listed.data["listing"] if listed.ok else None
    if answer.ok and has_permission(request.user.role, "analytics.read"):
        performance = internal.call(request, "GET", f"/analytics/models/{model_id}/performance")
        context["performance"] = performance.data if performance.ok else None
        context["performance_error"] = performance.error
    return _page(request, "console/model_detail.html", context, answer)


def _deployment_rows(request: HttpRequest, deployments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each deployment with the actions this user may take on it (the API checks again)."""
    role = request.user.role
    scale, stop = grant_for(role, "deployments.scale"), grant_for(role, "deployments.delete")
    own = set()
    if Grant.OWN in (scale, stop):
        own = {
            str(i) for i in deployment_selectors.owned_deployment_ids(request.user.pk, [d["id"] for d in deployments])
        }
    rows = []
    for deployment in deployments:
        mine = deployment["id"] in own

        def may(grant: Grant, mine: bool = mine) -> bool:
            return grant is Grant.ALL or (grant is Grant.OWN and mine)

        live = deployment["status"] not in ("stopped", "failed")
        rows.append(
            {
                **deployment,
                "can_scale": may(scale) and deployment["status"] == "running",
                "can_stop": may(stop) and live,
            }
        )
    return rows


@login_required
@require_GET
def deployments(request: HttpRequest) -> HttpResponse:
    applied, answer, data = _read_list(request, "/deployments", DEPLOYMENT_FILTERS, 50)
    return _page(
        request,
        "console/deployments.html",
        {
            "page": "deployments",
            "deployments": _deployment_rows(request, data.get("deployments", [])),
            "pagination": data.get("pagination"),
            "applied": applied,
            "environments": Environment.values,
            "statuses": DEPLOYMENT_STATUSES,
            "partial_template": "console/_deployment_rows.html",
        },
        answer,
    )


def _deployment_row(request: HttpRequest, deployment_id: uuid.UUID, error: dict[str, Any] | None) -> HttpResponse:
    answer = internal.call(request, "GET", f"/deployments/{deployment_id}")
    if not answer.ok:
        return render(request, "console/_error.html", {"error": answer.error}, status=answer.status)
    row = _deployment_rows(request, [answer.data["deployment"]])[0]
    return render(request, "console/_deployment_row.html", {"d": row, "row_error": error})


@login_required
@require_POST
def deployment_scale(request: HttpRequest, deployment_id: uuid.UUID) -> HttpResponse:
    try:
        replicas = int(request.POST.get("replicas", ""))
    except ValueError:
        replicas = -1  # the API answers its own INVALID_PARAMETER for it
    answer = internal.call(request, "POST", f"/deployments/{deployment_id}/scale", body={"replicas": replicas})
    return _deployment_row(request, deployment_id, answer.error)


@login_required
@require_POST
def deployment_stop(request: HttpRequest, deployment_id: uuid.UUID) -> HttpResponse:
    answer = internal.call(request, "DELETE", f"/deployments/{deployment_id}")
    return _deployment_row(request, deployment_id, answer.error)


@login_required
@require_GET
def alerts(request: HttpRequest) -> HttpResponse:
    open_ones = [("status", "open"), ("status", "acknowledged")]
    applied, answer, data = _read_list(request, "/analytics/alerts", ALERT_FILTERS, 50, default=open_ones)
    return _page(
        request,
        "console/alerts.html",
        {
            "page": "alerts",
            "alerts": data.get("alerts", []),
            "can_acknowledge": has_permission(request.user.role, "alerts.acknowledge"),
            "applied": applied,
        },
        answer,
    )


@login_required
@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: uuid.UUID) -> HttpResponse:
    answer = internal.call(request, "POST", f"/analytics/alerts/{alert_id}/acknowledge")
    current = internal.call(request, "GET", f"/analytics/alerts/{alert_id}")
    if not current.ok:
        return render(request, "console/_error.html", {"error": current.error}, status=current.status)
    return render(
        request,
        "console/_alert_row.html",
        {
            "a": current.data["alert"],
            "can_acknowledge": has_permission(request.user.role, "alerts.acknowledge"),
            "row_error": answer.error,
        },
    )


# --- marketplace -----------------------------------------------------------------------------------

MARKET_FILTERS = ("search", "pricingModel", "sortBy", "page")


@login_required
@require_GET
def marketplace(request: HttpRequest) -> HttpResponse:
    applied, answer, data = _read_list(request, "/marketplace/models", MARKET_FILTERS, 24)
    return _page(
        request,
        "console/marketplace.html",
        {
            "page": "marketplace",
            "listings": data.get("listings", []),
            "pagination": data.get("pagination"),
            "applied": applied,
            "pricing_models": PricingModel.choices,
            "sorts": ("popularity", "rating", "price", "newest"),
            "partial_template": "console/_listing_cards.html",
        },
        answer,
    )


def _purchase_form_context(request: HttpRequest, listing: dict[str, Any]) -> dict[str, Any]:
    # One idempotency key per rendered form: a double click, a retried submit or a second tab with the
    # same form replays the first answer instead of buying twice (the API's Idempotency-Key contract).
    return {
        "listing": listing,
        "purchase_key": uuid.uuid4().hex,
        "can_purchase": has_permission(request.user.role, "marketplace.purchase"),
    }


@login_required
@require_GET
def listing(request: HttpRequest, model_id: uuid.UUID) -> HttpResponse:
    answer = internal.call(request, "GET", f"/marketplace/models/{model_id}")
    context: dict[str, Any] = {"page": "marketplace"}
    if answer.ok:
        context.update(_purchase_form_context(request, answer.data["listing"]))
    return _page(request, "console/listing.html", context, answer)


@login_required
@require_POST
def listing_purchase(request: HttpRequest, model_id: uuid.UUID) -> HttpResponse:
    """Buy a plan: the accepted terms version and the price shown are sent, so a change in between is
    the API's conflict naming the current values, not a silent purchase at another price."""
    if request.POST.get("accept") != "yes":
        error = {"code": "INVALID_REQUEST", "message": "Accept the licence terms to purchase.", "requestId": ""}
        return render(request, "console/_purchase_result.html", {"error": error}, status=400)
    try:
        terms_version = int(request.POST.get("termsVersion", ""))
    except ValueError:
        terms_version = 0  # the API answers its own INVALID_PARAMETER
    body = {
        "planId": request.POST.get("planId", ""),
        "termsVersion": terms_version,
        "expectedPrice": {"amount": request.POST.get("amount", ""), "currency": request.POST.get("currency", "")},
    }
    if request.POST.get("scope") == "hub":
        body["scope"] = "hub"
    answer = internal.call(
        request,
        "POST",
        f"/marketplace/models/{model_id}/purchase",
        body=body,
        headers={"Idempotency-Key": request.POST.get("idempotencyKey", "")},
    )
    status = answer.status if not answer.ok else 200
    return render(
        request,
        "console/_purchase_result.html",
        {"result": answer.data if answer.ok else None, "error": answer.error},
        status=status,
    )


@login_required
@require_GET
def my_models(request: HttpRequest) -> HttpResponse:
    answer = internal.call(request, "GET", "/marketplace/my-models", query=[("limit", "50")])
    data = answer.data if answer.ok else {}
    items = data.get("entitlements", data.get("models", []))
    return _page(request, "console/my_models.html", {"page": "marketplace", "items": items}, answer)


# --- costs -------------------------------------------------------------------------------------------

COST_FILTERS = ("environment", "provider", "modelId")


@login_required
@require_GET
def costs(request: HttpRequest) -> HttpResponse:
    query = _query(request, COST_FILTERS)
    answer = internal.call(request, "GET", "/cost/analysis", query=query)
    context: dict[str, Any] = {"page": "costs", "analysis": answer.data if answer.ok else None, "applied": dict(query)}
    if answer.ok:
        by_model = answer.data["currentUsage"]["costByModel"]  # keyed by model id: show the names
        names = catalog_selectors.model_names([u for u in map(_uuid_or_none, by_model) if u])
        context["cost_by_model"] = sorted(
            ((names.get(_uuid_or_none(k), k), v) for k, v in by_model.items()), key=lambda item: -item[1]
        )
        budgets = internal.call(request, "GET", "/cost/budgets", query=[("limit", "50")])
        context["budgets"] = (budgets.data or {}).get("budgets", []) if budgets.ok else []
        context["budgets_error"] = budgets.error
        context["environments"] = Environment.values
    return _page(request, "console/costs.html", context, answer)


# --- experiments ---------------------------------------------------------------------------------------

EXPERIMENT_FILTERS = ("status", "search", "page")


@login_required
@require_GET
def experiments(request: HttpRequest) -> HttpResponse:
    applied, answer, data = _read_list(request, "/experiments", EXPERIMENT_FILTERS, 50)
    return _page(
        request,
        "console/experiments.html",
        {"page": "experiments", "experiments": data.get("experiments", []), "applied": applied},
        answer,
    )


def _experiment_context(request: HttpRequest, experiment_id: uuid.UUID) -> tuple[dict[str, Any], internal.Answer]:
    answer = internal.call(request, "GET", f"/experiments/{experiment_id}")
    context: dict[str, Any] = {"page": "experiments"}
    if answer.ok:
        experiment = answer.data["experiment"]
        context["experiment"] = experiment
        results = internal.call(request, "GET", f"/experiments/{experiment_id}/results")
        context["results"] = results.data if results.ok else None
        context["results_error"] = results.error
        role = request.user.role
        update = grant_for(role, "experiments.update")
        mine = experiment.get("owner") == request.user.username
        context["can_promote"] = (
            has_permission(role, "models.deploy")
            and (update is Grant.ALL or (update is Grant.OWN and mine))
            and experiment["status"] in ("running", "completed", "stopped")
        )
    return context, answer


@login_required
@require_GET
def experiment_detail(request: HttpRequest, experiment_id: uuid.UUID) -> HttpResponse:
    context, answer = _experiment_context(request, experiment_id)
    return _page(request, "console/experiment.html", context, answer)


@login_required
@require_POST
def experiment_promote(request: HttpRequest, experiment_id: uuid.UUID) -> HttpResponse:
    """Promote the winner to the target deployment; without a winner the API's 409 says why."""
    answer = internal.call(request, "POST", f"/experiments/{experiment_id}/promote", body={})
    return render(
        request,
        "console/_promote_result.html",
        {"result": answer.data if answer.ok else None, "error": answer.error},
        status=200 if answer.ok else answer.status,
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
