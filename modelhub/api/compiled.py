"""Compiled serializers: the fast path generated from the one declaration.

DRF's generic ``Serializer.to_representation`` walks bound field objects for every
instance (``get_attribute``, ``to_representation``, ``SkipField`` checks): ~10 µs per
catalog model, which showed in the catalog benchmark. The hub used to hand-write a
second, fast ``to_representation`` beside each declaration; nothing kept the two equal.
Here the declaration is the only definition: :func:`compile_serializer` reads the
declared fields once per class and generates (``exec``, as ``dataclasses`` does) one
plain function that builds the dict in a single literal, so the fast path costs what
the hand-written one did and cannot drift from what OpenAPI documents.
``tests/api/test_serializers.py`` feeds every :class:`CompiledSerializer` the same
objects through DRF's path (:func:`generic_representation`) and the compiled one and
requires equal JSON.

How to declare an output serializer::

    class DeploymentSerializer(CompiledSerializer):
        id = serializers.UUIDField()                                   # o.id -> str
        modelName = serializers.CharField(source="model_name")         # an annotation of the selector's queryset
        endpoint = computed(serializers.URLField, deployment_endpoint) # a callable of the instance
        configuration = computed(DeploymentConfigSerializer, configuration_source)  # nested, compiled too
        createdAt = serializers.DateTimeField(source="created_at")     # modelhub.api.dates.iso

        class Meta:
            ref_name = "Deployment"

then ``DeploymentSerializer(obj).data`` / ``DeploymentSerializer(page, many=True).data`` as
usual (or ``DeploymentSerializer.render(obj)`` / ``.render_many(objs)`` without a serializer
instance, e.g. for a realtime payload), and add a builder of sample objects to ``BUILDERS`` in
``tests/api/test_serializers.py`` (the test fails for a compiled serializer without one). A
value that is constant or derived (``deploymentId`` of a per-model alert) is
``computed(serializers.UUIDField, lambda alert: None, allow_null=True)``. Nested serializers
that are only nested need not be CompiledSerializer s: they are compiled as part of their
parent (those with ``source="*"`` inline into the parent's dict literal).
``compile_serializer(cls).source`` shows the generated code.

What each declared field compiles to (the value ``v`` is read with ``source``):

* the source: ``source="a"`` -> ``o.a``; ``source="*"`` -> ``o``; a dotted source -> DRF's
  own ``get_attribute`` (exact, slower: prefer an annotation or :func:`computed`);
  :func:`computed` -> ``getter(o)``. Instances whose serializer's ``Meta`` says
  ``compiled_from = "mapping"`` are dicts (stored JSON): ``o["a"]``, and a key that is
  absent follows DRF (``default``, else ``None`` when ``allow_null``, else left out when
  not ``required``). ``compiled_from = "json"`` says more: the value is JSON stored in
  exactly this shape (written only through the declared input serializers, so no other
  keys and JSON types already), and the fast path passes it through as it is - what the
  hand-written paths did with stored JSON. The equality test holds DRF's path to it.
* the value: ``UUIDField`` -> ``str``; ``DateTimeField`` -> :func:`modelhub.api.dates.iso`;
  ``FloatField`` and ``DecimalField(coerce_to_string=False)`` -> ``float``; a nested
  serializer (``many`` or not, plain or compiled) -> its own compiled function;
  ``CharField``/``ChoiceField``/``IntegerField``/``BooleanField``/``NumberField``/
  ``JSONField``/``DictField`` and ``ListField`` of those -> passed through (the instance
  already holds the JSON type); anything else -> that field's ``to_representation``.
* ``None`` stays ``None`` (as in DRF) for fields declared ``allow_null=True`` and for
  mapping instances; object instances must hold every other source (a missing
  attribute is a bug, not an omitted field).
* ``write_only`` fields are left out, as DRF does. The generated function has no
  serializer ``context`` (fields needing the request, e.g. hyperlinks, fall back to their
  own ``to_representation`` bound to a context-less prototype: avoid them here).
"""

from __future__ import annotations

import contextlib
import keyword
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models.manager import BaseManager
from rest_framework import serializers
from rest_framework.fields import ISO_8601, SkipField, empty
from rest_framework.settings import api_settings

from modelhub.api.dates import iso
from modelhub.api.fields import NumberField

Render = Callable[[Any], dict[str, Any]]

_MISSING = object()


# --- Declaring sources -------------------------------------------------------------------------


class _ComputedMixin:
    """A field (or nested serializer) whose value is ``getter(instance)``."""

    compiled_getter: Callable[[Any], Any]

    def __init__(self, *args: Any, getter: Callable[[Any], Any], **kwargs: Any):
        self.compiled_getter = getter
        kwargs["source"] = "*"
        super().__init__(*args, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return self.compiled_getter(instance)


_computed_classes: dict[type, type] = {}


def computed(field_class: type[serializers.Field], getter: Callable[[Any], Any], **kwargs: Any) -> Any:
    """A ``field_class(**kwargs)`` whose value is ``getter(instance)`` (DRF's path and the compiled one).

    The field keeps its class for OpenAPI (``computed(serializers.URLField, f)`` is
    documented as a URI string; ``computed(SomeSerializer, f)`` as ``SomeSerializer``).
    """
    cls = _computed_classes.get(field_class)
    if cls is None:
        attrs: dict[str, Any] = {
            "__module__": field_class.__module__,
            "__doc__": field_class.__doc__,  # OpenAPI describes the component with it
            "computed_from": field_class,
        }
        if issubclass(field_class, serializers.BaseSerializer):
            attrs["__qualname__"] = field_class.__qualname__  # OpenAPI names components after it
        cls = type(field_class.__name__, (_ComputedMixin, field_class), attrs)
        _computed_classes[field_class] = cls
    return cls(getter=getter, **kwargs)


# --- The compiler ------------------------------------------------------------------------------

# Field types whose values the instance already holds as JSON (DRF would only re-wrap them).
_PASS_THROUGH = (
    serializers.CharField,
    serializers.ChoiceField,
    serializers.IntegerField,
    serializers.BooleanField,
    serializers.JSONField,
)


def _passes_through(field: serializers.Field) -> bool:
    if isinstance(field, NumberField):
        return True
    if isinstance(field, (serializers.DictField, serializers.ListField)):
        # A child of DRF's private _UnvalidatedField (DictField()/ListField() without one) passes values as they are.
        return _passes_through(field.child) or type(field.child).__name__ == "_UnvalidatedField"
    if isinstance(field, (serializers.FloatField, serializers.DecimalField, serializers.DateTimeField)):
        return False
    return isinstance(field, _PASS_THROUGH)


class _Compiler:
    def __init__(self, serializer_class: type[serializers.Serializer], parent: _Compiler | None = None):
        self.serializer_class = serializer_class
        meta = getattr(serializer_class, "Meta", None)
        self.mapping = getattr(meta, "compiled_from", "object") == "mapping"
        # A nested serializer inlined into its parent's literal shares the parent's names.
        self.namespace: dict[str, Any] = (
            parent.namespace if parent else {"_iso": iso, "_missing": _MISSING, "SkipField": SkipField}
        )
        self.names = parent.names if parent else iter(range(1, 1_000_000))

    def name(self, value: Any, prefix: str) -> str:
        name = f"_{prefix}{next(self.names)}"
        self.namespace[name] = value
        return name

    # value -> JSON
    def convert(self, field: serializers.Field, expr: str) -> tuple[str, bool]:
        """An expression turning ``expr`` into JSON, and whether it needs a None check first."""
        if _stored_json(field.child if isinstance(field, serializers.ListSerializer) else field):
            return expr, False  # already this shape (see compiled_from = "json")
        if isinstance(field, serializers.ListSerializer):
            render = self.name(compile_serializer(type(field.child)), "render")
            return f"[{render}(item) for item in {expr}]", True
        if isinstance(field, serializers.Serializer):
            if expr == "o" and not hasattr(field, "compiled_getter"):  # source="*": inline its literal
                leading, statements = _Compiler(type(field), parent=self).body()
                if not statements:
                    return f"{{{', '.join(leading)}}}", False
            declared = getattr(field, "computed_from", type(field))
            return f"{self.name(compile_serializer(declared), 'render')}({expr})", True
        if _passes_through(field):
            return expr, False
        if isinstance(field, serializers.UUIDField) and field.uuid_format == "hex_verbose":
            return f"str({expr})", True
        if isinstance(field, serializers.DateTimeField) and _iso_format(field):
            return f"_iso({expr})", False  # iso(None) is None, as DRF answers
        coerce = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)  # as DRF reads it
        if isinstance(field, serializers.DecimalField) and not coerce:
            return f"float({expr})", True
        if isinstance(field, serializers.FloatField):
            return f"float({expr})", True
        if isinstance(field, serializers.ListField) and isinstance(field.child, serializers.Serializer):
            render = self.name(compile_serializer(type(field.child)), "render")
            return f"[{render}(item) for item in {expr}]", True
        return f"{self.name(field, 'field')}.to_representation({expr})", True

    def body(self) -> tuple[list[str], list[str]]:
        """The leading run of fields as dict-literal items (usually all), then statements for the rest."""
        prototype = self.serializer_class()  # bound fields: source_attrs, field_name, defaults
        leading: list[str] = []
        statements: list[str] = []
        for field in prototype.fields.values():
            if field.write_only:
                continue
            key = repr(field.field_name)
            expr, statement = self.field_code(field)
            if expr is not None and not statements:
                leading.append(f"{key}: {expr}")
            elif expr is not None:
                statements.append(f"    r[{key}] = {expr}")
            else:
                statements.append(statement.replace("KEY", key))
        return leading, statements

    def compile(self) -> Render:
        leading, statements = self.body()
        literal = f"{{{', '.join(leading)}}}"
        lines = [
            "def render(o):",
            *([f"    r = {literal}", *statements, "    return r"] if statements else [f"    return {literal}"]),
        ]
        source = "\n".join(lines)
        code = compile(source, f"<compiled {self.serializer_class.__qualname__}>", "exec")
        exec(code, self.namespace)  # noqa: S102 - generated from the declaration, no outside input
        render = self.namespace["render"]
        render.__qualname__ = f"{self.serializer_class.__qualname__}.render"
        render.source = source  # what was generated, for a reader in a debugger
        return render

    def field_code(self, field: serializers.Field) -> tuple[str | None, str]:
        """Either an expression for the dict literal, or statements (with KEY for the key)."""
        getter = getattr(field, "compiled_getter", None)
        absent: str | None = None  # what a missing key means (mapping instances)
        if getter is not None:
            access = f"{self.name(getter, 'get')}(o)"
        elif field.source == "*":
            access = "o"
        elif self.mapping and len(field.source_attrs) == 1:
            attr = field.source_attrs[0]
            if field.default is not empty:
                absent = f"{self.name(field, 'field')}.get_default()"
            elif field.allow_null:
                absent = "None"
            elif not field.required:
                absent = "skip"
            access = f"o[{attr!r}]"
        elif (
            len(field.source_attrs) == 1
            and field.source_attrs[0].isidentifier()
            and not keyword.iskeyword(field.source_attrs[0])
        ):
            access = f"o.{field.source_attrs[0]}"
        else:  # dotted sources: DRF's own lookup, exact (and SkipField when not required)
            return None, self.generic_statement(field)

        guard_needed = field.allow_null or self.mapping or absent is not None
        converted, needs_check = self.convert(field, "v")
        if absent is None:
            if converted == "v":
                return access, ""
            if needs_check and guard_needed:
                return f"(None if (v := {access}) is None else {converted})", ""
            return self.convert(field, access)[0], ""
        attr = field.source_attrs[0]
        value = f"(None if v is None else {converted})" if needs_check else converted
        if absent == "skip":  # DRF leaves a field that is not required out when its key is absent
            return None, f"    if (v := o.get({attr!r}, _missing)) is not _missing:\n        r[KEY] = {value}"
        return None, f"    v = o.get({attr!r}, _missing)\n    r[KEY] = {absent} if v is _missing else {value}"

    def generic_statement(self, field: serializers.Field) -> str:
        name = self.name(field, "field")
        converted, needs_check = self.convert(field, "v")
        value = f"(None if v is None else {converted})" if needs_check else converted
        return (
            f"    try:\n        v = {name}.get_attribute(o)\n    except SkipField:\n        pass\n"
            f"    else:\n        r[KEY] = {value}"
        )


def _stored_json(field: serializers.Field) -> bool:
    if not isinstance(field, serializers.BaseSerializer):
        return False
    declared = getattr(field, "computed_from", type(field))
    return getattr(getattr(declared, "Meta", None), "compiled_from", "object") == "json"


def _iso_format(field: serializers.DateTimeField) -> bool:
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    return isinstance(output_format, str) and output_format.lower() == ISO_8601


def compile_serializer(serializer_class: type[serializers.Serializer]) -> Render:
    """The generated ``instance -> dict`` function of ``serializer_class`` (built once per class)."""
    render = _renders.get(serializer_class)
    if render is None:
        render = _renders[serializer_class] = _Compiler(serializer_class).compile()
    return render


_renders: dict[type, Render] = {}


# --- The base classes --------------------------------------------------------------------------


class CompiledListSerializer(serializers.ListSerializer):
    """``many=True`` of a compiled serializer: one call of the generated function per item."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        render = compile_serializer(type(self.child))
        iterable = data.all() if isinstance(data, BaseManager) else data
        return [render(item) for item in iterable]


class CompiledSerializer(serializers.Serializer):
    # An output serializer whose to_representation is generated from its declared fields: declare
    # the fields with their source (see the module docstring) and do not write to_representation.
    # Output only: request bodies are modelhub.api.serializers.StrictInputSerializer s. (A comment,
    # not a docstring: drf-spectacular would describe every subclass without one of its own with it.)

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> serializers.ListSerializer:
        list_serializer = super().many_init(*args, **kwargs)
        if type(list_serializer) is serializers.ListSerializer:
            list_serializer.__class__ = CompiledListSerializer
        return list_serializer

    @classmethod
    def render(cls, instance: Any) -> dict[str, Any]:
        """The representation of ``instance`` without a serializer instance (the hot paths)."""
        return compile_serializer(cls)(instance)

    @classmethod
    def render_many(cls, instances: Any) -> list[dict[str, Any]]:
        render = compile_serializer(cls)
        return [render(item) for item in instances]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return compile_serializer(type(self))(instance)


def compiled_serializers() -> list[type[CompiledSerializer]]:
    """Every CompiledSerializer subclass imported so far (import the apps first)."""
    found: list[type[CompiledSerializer]] = []
    pending = list(CompiledSerializer.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "computed_from" not in cls.__dict__ and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


@contextlib.contextmanager
def generic_representation() -> Iterator[None]:
    """Within the block, compiled serializers answer through DRF's generic path (for tests)."""
    saved = CompiledSerializer.to_representation, CompiledListSerializer.to_representation
    CompiledSerializer.to_representation = serializers.Serializer.to_representation  # type: ignore[method-assign]
    CompiledListSerializer.to_representation = serializers.ListSerializer.to_representation  # type: ignore[method-assign]
    try:
        yield
    finally:
        CompiledSerializer.to_representation, CompiledListSerializer.to_representation = saved  # type: ignore[method-assign]
