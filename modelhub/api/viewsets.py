"""The base every API viewset stands on, so policy is written once (NetBox's BaseViewSet idea).

A resource's viewset declares what differs and inherits the flow::

    class DeploymentViewSet(BaseViewSet):
        queryset = selectors.deployment_queryset()      # reads, get_object and the re-read after a write
        filterset_class = DeploymentFilterSet
        serializer_class = DeploymentSerializer         # what retrieve and the writes answer with
        list_item_serializer_class = DeploymentListItemSerializer  # list items (default: serializer_class)
        input_serializer_classes = {"create": CreateDeploymentRequestSerializer, ...}  # request bodies
        create_service = services.deployment_create     # called with actor=request.user, **create_kwargs(data)
        update_service = services.deployment_update     # ... deployment=obj, actor=..., **update_kwargs(data, partial)
        destroy_service = services.deployment_stop      # ... deployment=obj, actor=..., **destroy_kwargs()
        instance_kwarg = "deployment"                   # the keyword the services take the object under
        envelope_key = "deployment"                     # {"deployment": {...}}
        results_key = "deployments"                     # {"deployments": [...], "pagination": {...}}
        not_found_code = ErrorCode.DEPLOYMENT_NOT_FOUND
        resource_name = "Deployment"
        permission_map = {"list": "deployments.read", ...}

What it then answers:

* ``list``: the filterset (strict parameters), the page, ``{results_key: [...], "pagination": ...}``
  plus :meth:`BaseViewSet.list_extra` (catalog adds ``filters``).
* ``retrieve``: one UUID (anything else is the resource's not-found error, as is an unknown id),
  ``{envelope_key: ...}`` plus :meth:`BaseViewSet.retrieve_extra` (catalog adds the detail sections).
* ``create`` (201), ``update``/``partial_update`` (200): the action's input serializer validates
  the body (``partial=True`` for PATCH unless ``partial_input = False``), the declared service
  does the write, the object is read again through ``get_queryset()`` (:meth:`BaseViewSet.reread`:
  annotations, no stale fields) and answered in the envelope.
* ``destroy`` (204): the declared service with the object.

Only the actions whose service is declared exist (and only for methods in
``http_method_names``): a viewset without ``create_service`` has no POST route, exactly as if
the method were not written. ``@action`` s stay actions that call a service and answer with
:meth:`BaseViewSet.respond`. Object-level permissions (``owner_field``, "own only" grants) are
checked by ``get_object`` as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from django.http import Http404
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from modelhub.api.exceptions import ErrorCode
from modelhub.api.filters import StrictFilterBackend
from modelhub.api.pagination import PagePagination
from modelhub.api.permissions import RolePermission

_SERVICES = ("create_service", "update_service", "destroy_service")
# action -> (the service that makes it exist, the HTTP method routed to it)
_ACTIONS: dict[str, tuple[str | None, str]] = {
    "list": (None, "get"),
    "retrieve": (None, "get"),
    "create": ("create_service", "post"),
    "update": ("update_service", "put"),
    "partial_update": ("update_service", "patch"),
    "destroy": ("destroy_service", "delete"),
}


class BaseViewSet(viewsets.GenericViewSet):
    """Role-matrix permissions, strict filters, spec pagination, resource-specific 404 codes and
    the CRUD flow through declared services (see the module docstring for a whole declaration)."""

    permission_classes = [RolePermission]
    filter_backends = [StrictFilterBackend]
    pagination_class = PagePagination
    permission_map: ClassVar[dict[str, str]] = {}
    not_found_code: ErrorCode = ErrorCode.INVALID_REQUEST
    resource_name = "Resource"
    results_key = "results"
    envelope_key = "result"
    owner_field = "owner"
    lookup_url_kwarg = "pk"

    list_item_serializer_class: type[serializers.BaseSerializer] | None = None
    input_serializer_classes: ClassVar[dict[str, type[serializers.BaseSerializer]]] = {}
    create_service: Callable[..., Any] | None = None
    update_service: Callable[..., Any] | None = None
    destroy_service: Callable[..., Any] | None = None
    instance_kwarg = "instance"
    partial_input = True

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name in _SERVICES:  # a plain function as a class attribute would be bound to the view
            value = cls.__dict__.get(name)
            if value is not None and not isinstance(value, staticmethod):
                setattr(cls, name, staticmethod(value))
        methods = set(cls.http_method_names)
        for action, (service, method) in _ACTIONS.items():
            offered = method in methods and (service is None or getattr(cls, service) is not None)
            if offered and not hasattr(cls, action):
                setattr(cls, action, _action(getattr(BaseViewSet, f"_{action}")))

    # --- reading -----------------------------------------------------------------------------

    def get_object(self) -> Any:
        raw = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        try:
            uuid.UUID(str(raw))
        except ValueError:
            raise Http404 from None
        return super().get_object()

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action in self.input_serializer_classes:
            return self.input_serializer_classes[self.action]
        if self.action == "list" and self.list_item_serializer_class is not None:
            return self.list_item_serializer_class
        return self.serializer_class

    def reread(self, instance: Any) -> Any:
        """The object as reads show it, after a service changed it."""
        return self.get_queryset().get(pk=instance.pk)

    # --- hooks ---------------------------------------------------------------------------------

    def list_extra(self, page: list[Any]) -> dict[str, Any]:
        """More top-level keys for the list response (after ``pagination``)."""
        return {}

    def retrieve_extra(self, instance: Any) -> dict[str, Any]:
        """More top-level keys for the retrieve response (after the envelope key)."""
        return {}

    def create_kwargs(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validated body -> ``create_service`` keywords (the input fields' ``source`` names them)."""
        return dict(data)

    def update_kwargs(self, data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
        """Validated body -> ``update_service`` keywords."""
        return dict(data)

    def destroy_kwargs(self) -> dict[str, Any]:
        return {}

    # --- answering -----------------------------------------------------------------------------

    def validated_input(self, *, partial: bool = False) -> Any:
        """The request body through this action's input serializer (400 when invalid)."""
        serializer = self.get_serializer_class()(
            data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def respond(self, instance: Any, code: int = status.HTTP_200_OK, **extra: Any) -> Response:
        """``{envelope_key: <serializer_class>(instance), **extra}``."""
        return Response({self.envelope_key: self.serializer_class(instance).data, **extra}, status=code)

    # --- the actions (attached by __init_subclass__ where declared) ----------------------------

    def _list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = self.get_serializer_class()(page, many=True).data
        return self.paginator.get_paginated_response(data, **self.list_extra(page))

    def _retrieve(self, request: Request) -> Response:
        instance = self.get_object()
        return self.respond(instance, **self.retrieve_extra(instance))

    def _create(self, request: Request) -> Response:
        data = self.validated_input()
        instance = self.create_service(actor=request.user, **self.create_kwargs(data))
        return self.respond(self.reread(instance), status.HTTP_201_CREATED)

    def _update(self, request: Request, partial: bool = False) -> Response:
        instance = self.get_object()
        data = self.validated_input(partial=partial and self.partial_input)
        instance = self.update_service(
            **{self.instance_kwarg: instance}, actor=request.user, **self.update_kwargs(data, partial=partial)
        )
        return self.respond(self.reread(instance))

    def _partial_update(self, request: Request) -> Response:
        return self._update(request, partial=True)

    def _destroy(self, request: Request) -> Response:
        self.destroy_service(**{self.instance_kwarg: self.get_object()}, actor=request.user, **self.destroy_kwargs())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _action(implementation: Callable[..., Response]) -> Callable[..., Response]:
    """A fresh function per viewset (drf-spectacular's decorators annotate the function itself)."""

    def action(self: BaseViewSet, request: Request, *args: Any, **kwargs: Any) -> Response:
        return implementation(self, request)

    action.__name__ = action.__qualname__ = implementation.__name__.lstrip("_")
    action.__doc__ = implementation.__doc__
    return action
