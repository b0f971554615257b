"""django-filter building blocks that speak the API's query contract.

* :class:`ListFilter` - a list parameter given repeated (``?provider=a&provider=b``),
  comma-separated (``?provider=a,b``) or both, bounded in count and length,
  optionally checked against an enum.
* :class:`StrictFilterBackend` - rejects unknown query parameters and turns an
  invalid filter form into ``400 INVALID_PARAMETER`` with the offending
  parameters (and, for enums, the allowed values) in ``details``.
* :class:`SortFilterMixin` - ``sortBy``/``sortOrder``, the columns read from an output
  serializer's field ``source`` s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import django_filters
from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import F, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field

from modelhub.api.exceptions import InvalidParameter

MAX_VALUE_LENGTH = 200
# OpenAPI's way of saying "no NUL characters" (ECMA-262 and Python read \u0000 alike).
NO_NUL = "^[^\\u0000]*$"
# Parameters for which an empty value means "not given" (an empty search searches nothing).
EMPTY_ALLOWED = frozenset({"search"})


class _ListWidget(forms.Widget):
    def value_from_datadict(self, data, files, name):
        getlist = getattr(data, "getlist", None)
        raw = getlist(name) if getlist else ([data[name]] if name in data else [])
        values: list[str] = []
        for item in raw:
            values.extend(part.strip() for part in str(item).split(","))
        return [v for v in values if v] or None


class ListField(forms.Field):
    widget = _ListWidget

    def __init__(self, *, choices: Iterable[str] | None = None, max_values: int | None = None, **kwargs: Any):
        self.choices = [c[0] if isinstance(c, (tuple, list)) else c for c in choices] if choices is not None else None
        self.max_values = max_values or settings.API_LIST_FILTER_MAX_VALUES
        super().__init__(**kwargs)

    def clean(self, value: Any) -> list[str] | None:
        if not value:
            return None
        deduplicated = list(dict.fromkeys(value))
        if len(value) > self.max_values:  # counted as given, as the schema's maxItems counts them
            raise forms.ValidationError(f"At most {self.max_values} values are allowed.", code="too_many")
        if any("\x00" in v for v in deduplicated):
            raise forms.ValidationError("Null characters are not allowed.", code="null_characters_not_allowed")
        too_long = [v for v in deduplicated if len(v) > MAX_VALUE_LENGTH]
        if too_long:
            raise forms.ValidationError(f"Values are limited to {MAX_VALUE_LENGTH} characters.", code="too_long")
        if self.choices is not None:
            unknown = [v for v in deduplicated if v not in self.choices]
            if unknown:
                raise forms.ValidationError(
                    "Unknown value(s): %(unknown)s.", code="invalid_choice", params={"unknown": ", ".join(unknown)}
                )
        return deduplicated


class ListFilter(django_filters.Filter):
    """A list parameter; by default a row matches when its field is any of the values."""

    field_class = ListField

    def __init__(self, *args: Any, choices: Iterable[str] | None = None, **kwargs: Any):
        choices = list(choices) if choices is not None else None
        if choices is not None:
            kwargs["choices"] = [(c, c) for c in choices]
        super().__init__(*args, **kwargs)
        items: dict[str, Any] = {"type": "string", "maxLength": MAX_VALUE_LENGTH}
        if choices is not None:
            items["enum"] = choices
        else:  # an empty value or a NUL character is refused (StrictFilterBackend), not ignored
            items.update(minLength=1, pattern=NO_NUL)
        extend_schema_field({"type": "array", "items": items, "maxItems": settings.API_LIST_FILTER_MAX_VALUES})(self)

    def filter(self, qs: QuerySet, value: list[str] | None) -> QuerySet:
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class BoundedNumberFilter(django_filters.NumberFilter):
    """A number between ``minimum`` and ``maximum`` (inclusive), enforced and declared in OpenAPI."""

    def __init__(self, *args: Any, minimum: Any, maximum: Any, **kwargs: Any):
        kwargs["validators"] = [MinValueValidator(minimum), MaxValueValidator(maximum), *kwargs.get("validators", [])]
        super().__init__(*args, **kwargs)
        extend_schema_field({"type": "number", "minimum": float(minimum), "maximum": float(maximum)})(self)


class SearchFilter(django_filters.CharFilter):
    """Free text of at most ``max_length`` characters (declared in OpenAPI); empty means no search."""

    def __init__(self, *args: Any, max_length: int, **kwargs: Any):
        super().__init__(*args, max_length=max_length, **kwargs)
        extend_schema_field({"type": "string", "maxLength": max_length, "pattern": NO_NUL})(self)


class _StrictBooleanField(forms.Field):
    def clean(self, value: Any) -> bool | None:
        if value is None:
            return None
        lowered = str(value).strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise forms.ValidationError("Must be true or false.", code="invalid")


class StrictBooleanFilter(django_filters.Filter):
    """``true`` or ``false`` (also ``1``/``0``); anything else is an error, not "no filter"."""

    field_class = _StrictBooleanField

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        extend_schema_field({"type": "boolean"})(self)

    def filter(self, qs: QuerySet, value: bool | None) -> QuerySet:
        if value is None:
            return qs
        return qs.filter(**{self.field_name: value})


def _choices_of(flt: django_filters.Filter) -> list[str] | None:
    choices = flt.extra.get("choices")
    if choices is None:
        return None
    return [c[0] if isinstance(c, (tuple, list)) else c for c in choices]


class FastFilterSet(django_filters.FilterSet):
    """django-filter's FilterSet without its per-request deep copy of every filter.

    The stock ``__init__`` deep-copies all declared filters (with their choices and
    schema annotations) and builds a new form class on every request - about 2 ms
    of the catalog list. Filters hold no request state beyond ``model`` and
    ``parent``, so a shallow copy is enough; the form class is built once per
    FilterSet class (Django forms deep-copy their fields per instance anyway).
    """

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data if data is not None else {}
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {name: copy.copy(f) for name, f in self.base_filters.items()}
        for filter_ in self.filters.values():
            filter_.model = queryset.model
            filter_.parent = self
            if filter_.method is not None:
                filter_.method = filter_.method  # rebinds the FilterMethod to this copy

    @classmethod
    def _form_class(cls) -> type:
        form_class = cls.__dict__.get("_cached_form_class")
        if form_class is None:
            fields = {name: f.field for name, f in cls.base_filters.items()}
            form_class = type(f"{cls.__name__}Form", (cls._meta.form,), fields)
            form_class.base_fields = _SharedFields(form_class.base_fields)
            cls._cached_form_class = form_class
        return form_class

    def get_form_class(self) -> type:
        return self._form_class()

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        return self.apply(queryset, self.form.cleaned_data)

    def apply(self, queryset: QuerySet, cleaned: dict[str, Any]) -> QuerySet:
        """``queryset`` filtered by ``cleaned`` (a valid form's ``cleaned_data``, or the same built by
        hand: the catalog compiles its list query from stand-in values, ``catalog.listing``)."""
        for name, value in cleaned.items():
            queryset = self.filters[name].filter(queryset, value)
        return queryset


class _SharedFields(dict):
    """A filter form's fields, shared by its instances: a Django form deep-copies its ``base_fields``
    per instance (~0.4 ms for the catalog's eleven) in case code changes a field per request; the
    filter forms never do, and their fields' ``clean`` keeps no state."""

    def __deepcopy__(self, memo: dict) -> dict:
        return dict(self)


class _SortFilter(django_filters.ChoiceFilter):
    """Validated like any filter; :meth:`SortFilterMixin.filter_queryset` applies it after every filter."""

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        return qs


class SortFilterMixin:
    """``sortBy``/``sortOrder`` for a :class:`FastFilterSet`, in one place for every list::

        class DeploymentFilterSet(SortFilterMixin, FastFilterSet):
            sort_serializer = DeploymentListItemSerializer  # whose fields' ``source`` give the columns
            sort_by = ("createdAt", "updatedAt", "name")    # the accepted sortBy values, in order
            sort_aliases = {"name": "modelName"}            # a sortBy value -> the output field it sorts by
            sort_default = "createdAt"                       # without sortBy
            sort_descending = frozenset({"createdAt", "updatedAt"})  # these default to desc, the rest asc
            sort_tiebreak = ("-created_at", "-id")          # after the sort column, so pages are stable

    A sortBy value sorts by the column its output field reads (``source``, dots as ``__``);
    a value that is no output field names a model field itself (the catalog's ``popularity``).
    The two filters are added to the filterset when the class is created. Override
    :meth:`order_without_sort_by` for an order other than ``sort_default`` when no sortBy is
    given (the catalog orders a search by relevance).
    """

    sort_serializer: type
    sort_by: tuple[str, ...] = ()
    sort_aliases: ClassVar[dict[str, str]] = {}
    sort_default: str = ""
    sort_descending: frozenset[str] = frozenset()
    sort_tiebreak: tuple[str, ...] = ("id",)
    sort_columns: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if not cls.sort_by:
            return
        cls.sort_columns = sort_columns(cls.sort_serializer, cls.sort_by, cls.sort_aliases)
        declared = cls.__dict__.get("declared_filters")  # FilterSetMetaclass set it before this runs
        if declared is not None:
            declared.setdefault("sortBy", _SortFilter(field_name="sortBy", choices=[(k, k) for k in cls.sort_by]))
            declared.setdefault(
                "sortOrder", _SortFilter(field_name="sortOrder", choices=[("asc", "asc"), ("desc", "desc")])
            )

    @classmethod
    def effective_sort(cls, sort_by: str | None, sort_order: str | None) -> tuple[str, str]:
        """The (sortBy, sortOrder) a list is in, given what the request said (None: not given)."""
        sort_by = sort_by or cls.sort_default
        return sort_by, sort_order or ("desc" if sort_by in cls.sort_descending else "asc")

    def order_without_sort_by(self, qs: QuerySet, cleaned: dict[str, Any]) -> QuerySet | None:
        """The order when no sortBy is given; None: ``sort_default``'s."""
        return None

    def apply(self, queryset: QuerySet, cleaned: dict[str, Any]) -> QuerySet:
        qs = super().apply(queryset, cleaned)  # type: ignore[misc]
        given = cleaned.get("sortBy") or None
        if not given:
            ordered = self.order_without_sort_by(qs, cleaned)
            if ordered is not None:
                return ordered
        sort_by, sort_order = self.effective_sort(given, cleaned.get("sortOrder") or None)
        column = F(self.sort_columns[sort_by])
        return qs.order_by(column.desc() if sort_order == "desc" else column.asc(), *self.sort_tiebreak)


def sort_columns(serializer_class: type, names: Iterable[str], aliases: dict[str, str] | None = None) -> dict[str, str]:
    """camelCase sortBy value -> ORM column, from the serializer's declared fields' ``source``."""
    declared = serializer_class._declared_fields
    columns: dict[str, str] = {}
    for name in names:
        field_name = (aliases or {}).get(name, name)
        field = declared.get(field_name)
        if field is None:
            columns[name] = name  # not shown: a model field of that name
            continue
        source = field.source or field_name
        if source == "*" or getattr(field, "compiled_getter", None) is not None:
            raise TypeError(f"sortBy={name}: {serializer_class.__name__}.{field_name} has no column to sort by.")
        columns[name] = source.replace(".", "__")
    return columns


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter backend with the API's error contract and no silent drops.

    A parameter the endpoint does not know is an error rather than ignored: a
    typo in ``?provder=openai`` would otherwise return the whole catalog. Views
    list their non-filter parameters (pagination, ...) in ``extra_query_params``.
    """

    def filter_queryset(self, request, queryset, view):
        filterset = self.validated_filterset(request, queryset, view)
        return queryset if filterset is None else filterset.qs

    def validated_filterset(self, request, queryset, view):
        """The request's filterset, validated (or None when the view has none); raises the API's
        ``INVALID_PARAMETER`` for unknown, empty, repeated or invalid parameters."""
        filterset = self.get_filterset(request, queryset, view)
        known = set(getattr(view, "extra_query_params", ()))
        paginator = getattr(view, "paginator", None)
        if paginator is not None:
            known |= set(getattr(paginator, "query_params", ()))
        if filterset is not None:
            known |= set(filterset.filters)
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise InvalidParameter(
                f"Unknown query parameter(s): {', '.join(unknown)}.",
                details={
                    "fields": {name: ["Unknown parameter."] for name in unknown},
                    "allowedParameters": sorted(known),
                },
            )
        list_params = {
            name for name, f in (filterset.filters.items() if filterset else ()) if isinstance(f, ListFilter)
        }
        repeated = sorted(
            name
            for name in request.query_params
            if name not in list_params and len(request.query_params.getlist(name)) > 1
        )
        empty = sorted(
            name
            for name in request.query_params
            if name in known and name not in EMPTY_ALLOWED and "" in request.query_params.getlist(name)
        )
        if empty:
            raise InvalidParameter(
                f"Query parameter(s) given without a value: {', '.join(empty)}.",
                details={"fields": {name: ["Give a value, or leave the parameter out."] for name in empty}},
            )
        if repeated:
            raise InvalidParameter(
                f"Query parameter(s) given more than once: {', '.join(repeated)}.",
                details={"fields": {name: ["Give this parameter once."] for name in repeated}},
            )
        if filterset is None:
            return None
        if not filterset.is_valid():
            raise_invalid_form(filterset.form, filterset.filters)
        view.filterset = filterset  # the view echoes cleaned values as filters.applied
        return filterset


def raise_invalid_form(form: forms.Form, filters: dict[str, django_filters.Filter] | None = None) -> None:
    fields = {name: [str(m) for m in errors] for name, errors in form.errors.items()}
    details: dict[str, Any] = {"fields": fields}
    allowed = {}
    for name, errors in form.errors.as_data().items():
        if any(e.code in {"invalid_choice", "invalid"} for e in errors):
            choices = _choices_of(filters[name]) if filters and name in filters else None
            if choices is None and name in form.fields:
                field_choices = getattr(form.fields[name], "choices", None)
                choices = (
                    [c[0] if isinstance(c, (tuple, list)) else c for c in field_choices] if field_choices else None
                )
            if choices:
                allowed[name] = [c for c in choices if c != ""]
    if allowed:
        details["allowedValues"] = allowed
    raise InvalidParameter(f"Invalid query parameter(s): {', '.join(sorted(fields))}.", details=details)


def cleaned_applied(
    filterset: django_filters.FilterSet | None, skip: Callable[[str], bool] = lambda _: False
) -> dict[str, Any]:
    """The filters a request actually applied, in their cleaned form."""
    if filterset is None or not hasattr(filterset.form, "cleaned_data"):
        return {}
    return {
        name: value
        for name, value in filterset.form.cleaned_data.items()
        if value not in (None, "", []) and not skip(name)
    }
