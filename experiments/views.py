"""The experiments endpoints (spec section 4, issue #11)."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from experiments import selectors, services
from experiments.constants import ExperimentStatus
from experiments.filters import ExperimentFilterSet
from experiments.results import experiment_results
from experiments.serializers import (
    AssignRequestSerializer,
    AssignResponseSerializer,
    CreateExperimentRequestSerializer,
    ExperimentListResponseSerializer,
    ExperimentResponseSerializer,
    ExperimentResultsSerializer,
    ExperimentSerializer,
    PatchExperimentRequestSerializer,
    PromoteRequestSerializer,
    ResultsQuerySerializer,
    StopRequestSerializer,
)
from modelhub.api.exceptions import Conflict, ErrorCode, Forbidden
from modelhub.api.schema import ErrorResponseSerializer
from modelhub.api.viewsets import BaseViewSet
from modelhub.roles import Grant, grant_for

_409 = OpenApiResponse(ErrorResponseSerializer, description="The experiment's status does not allow it.")
_404 = OpenApiResponse(
    ErrorResponseSerializer, description="EXPERIMENT_NOT_FOUND, or MODEL_NOT_FOUND / DEPLOYMENT_NOT_FOUND in the body."
)
TAGS = ["experiments"]


@extend_schema_view(
    list=extend_schema(summary="List experiments", responses=ExperimentListResponseSerializer, tags=TAGS),
    retrieve=extend_schema(summary="An experiment", responses=ExperimentResponseSerializer, tags=TAGS),
    create=extend_schema(
        summary="Create an A/B test (draft; it starts at startDate or with /start)",
        request=CreateExperimentRequestSerializer,
        responses={
            201: ExperimentResponseSerializer,
            404: OpenApiResponse(ErrorResponseSerializer, description="MODEL_NOT_FOUND / DEPLOYMENT_NOT_FOUND."),
        },
        tags=TAGS,
    ),
    update=extend_schema(
        summary="Replace an experiment (a running one changes only as the README lists)",
        request=CreateExperimentRequestSerializer,
        responses={200: ExperimentResponseSerializer, 404: _404, 409: _409},
        tags=TAGS,
    ),
    partial_update=extend_schema(
        summary="Change part of an experiment (sections merged)",
        request=PatchExperimentRequestSerializer,
        responses={200: ExperimentResponseSerializer, 404: _404, 409: _409},
        tags=TAGS,
    ),
    destroy=extend_schema(
        summary="Delete a draft, completed or stopped experiment",
        responses={204: OpenApiResponse(description="Deleted."), 409: _409},
        tags=TAGS,
    ),
    start=extend_schema(
        summary="Start a draft", request=None, responses={200: ExperimentResponseSerializer, 409: _409}, tags=TAGS
    ),
    stop=extend_schema(
        summary="Stop a draft or running experiment",
        request=StopRequestSerializer,
        responses={200: ExperimentResponseSerializer, 409: _409},
        tags=TAGS,
    ),
    promote=extend_schema(
        summary="Apply the winner's configuration to the target deployment (needs models.deploy too)",
        request=PromoteRequestSerializer,
        responses={200: ExperimentResponseSerializer, 409: _409},
        tags=TAGS,
    ),
    results=extend_schema(
        summary="A/B test results (spec ExperimentResults)",
        parameters=[ResultsQuerySerializer],
        responses={200: ExperimentResultsSerializer, 409: _409},
        tags=TAGS,
    ),
    assign=extend_schema(
        summary="The variant of a user (for clients that call providers themselves)",
        request=AssignRequestSerializer,
        responses=AssignResponseSerializer,
        tags=TAGS,
    ),
)
class ExperimentViewSet(BaseViewSet):
    """Experiments: list, detail, create, change, delete, start, stop, promote, results, assign."""

    queryset = selectors.experiment_queryset()
    filterset_class = ExperimentFilterSet
    serializer_class = ExperimentSerializer
    input_serializer_classes = {
        "create": CreateExperimentRequestSerializer,
        "update": CreateExperimentRequestSerializer,
        "partial_update": PatchExperimentRequestSerializer,
        "stop": StopRequestSerializer,
        "promote": PromoteRequestSerializer,
        "assign": AssignRequestSerializer,
    }
    create_service = services.experiment_create
    update_service = services.experiment_update
    destroy_service = services.experiment_delete
    instance_kwarg = "experiment"
    not_found_code = ErrorCode.EXPERIMENT_NOT_FOUND
    resource_name = "Experiment"
    envelope_key = "experiment"
    results_key = "experiments"
    owner_field = "owner"
    permission_map = {
        "list": "experiments.read",
        "retrieve": "experiments.read",
        "results": "experiments.read",
        "assign": "analytics.ingest",
        "create": "experiments.create",
        "update": "experiments.update",
        "partial_update": "experiments.update",
        "start": "experiments.update",
        "stop": "experiments.update",
        "promote": "experiments.update",
        "destroy": "experiments.delete",
    }

    def create_kwargs(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"data": dict(data)}

    def update_kwargs(self, data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
        return {"data": dict(data), "partial": partial}

    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        experiment = services.experiment_start(experiment=self.get_object(), actor=request.user)
        return self.respond(self.reread(experiment))

    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        experiment = self.get_object()
        body = self.validated_input()
        experiment = services.experiment_stop(experiment=experiment, actor=request.user, reason=body.get("reason", ""))
        return self.respond(self.reread(experiment))

    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str | None = None) -> Response:
        experiment = self.get_object()
        if grant_for(request.user.role, "models.deploy") is Grant.NONE:
            raise Forbidden("Promoting needs models.deploy as well as experiments.update.")
        body = self.validated_input()
        done = services.experiment_promote(
            experiment=experiment,
            actor=request.user,
            variant=body.get("variant"),
            force=body.get("force", False),
            reason=body.get("reason", ""),
        )
        return self.respond(
            self.reread(done["experiment"]),
            promoted={"variant": done["variant"], "deploymentId": str(done["deployment"].pk)},
        )

    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str | None = None) -> Response:
        params = ResultsQuerySerializer.parse(request.query_params)
        experiment = self._unfiltered_object()
        if experiment.status == ExperimentStatus.DRAFT:
            raise Conflict(
                "A draft experiment has no results yet; start it.", details={"currentStatus": experiment.status}
            )
        return Response(experiment_results(experiment, mode=params.get("mode")))

    def _unfiltered_object(self) -> Any:
        """The object without the list's filterset (whose parameters are not this action's)."""
        try:
            pk = uuid.UUID(str(self.kwargs.get(self.lookup_url_kwarg)))
        except ValueError:
            raise Http404 from None
        experiment = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(self.request, experiment)
        return experiment

    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        experiment = self.get_object()
        body = self.validated_input()
        return Response(
            services.experiment_assign(
                experiment=experiment, user_id=body["userId"], attributes=body.get("attributes") or {}
            )
        )
