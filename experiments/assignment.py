"""Who gets which variant: deterministic hashing, rules (``rule-engine``) and audience filters.

Pure functions (no database): the gateway calls them on its hot path through a cached
:class:`Plan` (see :mod:`experiments.selectors`), ``POST /experiments/{id}/assign`` calls them too.

Hashing
    ``u(salt) = int(sha256(f"{salt}:{seed}:{unit}")[:15 hex]) / 16**15`` in [0, 1). Three
    independent salts: ``audience`` (included when ``u < audience.percentage / 100``), ``traffic``
    (``u < traffic.totalPercentage / 100``) and ``variant`` (the variant whose cumulative weight
    interval holds ``u``). So the two percentages combine as a product, and raising either never
    moves an included user to another variant (the variant hash does not depend on them).

Rules
    ``traffic.rules[].condition`` are `rule-engine <https://zerosteiner.github.io/rule-engine/>`_
    expressions (a sandboxed expression language: no attribute access into Python objects, no calls),
    compiled when the experiment is saved against the declared context
    :data:`experiments.constants.RULE_CONTEXT` (``user.id, user.tier, user.country, user.plan,
    user.language, user.segment, request.useCase, request.environment`` - strings; absent = ``""``).
    The first rule that matches assigns its variant. In ``rules-based`` traffic a unit no rule
    matches is not in the experiment; in ``percentage`` traffic it gets a variant by weight.
    Regular-expression comparisons (``=~ =~~ !~ !~~``) are refused when a rule is compiled: a
    backtracking pattern over a long attribute would stall the gateway's event loop (ReDoS). Attribute
    values are cut to :data:`MAX_ATTRIBUTE_CHARS` wherever they enter (:func:`context_for`).
"""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rule_engine
import rule_engine.ast
import rule_engine.parser

from experiments.constants import MAX_ATTRIBUTE_CHARS, RULE_CONTEXT, TrafficType

# ``user.tier`` (the spec's syntax) is dot access into a mapping, which rule-engine 5 supports and plans to
# drop in 6 (pinned to 5.x; README "Experiments" says so). The deprecation is not the rule author's problem.
warnings.filterwarnings("ignore", category=rule_engine.errors.MappingAttributeLookupDeprecation)
_T = rule_engine.DataType
_CONTEXT = rule_engine.Context(
    type_resolver=rule_engine.type_resolver_from_dict(
        {name: _T.MAPPING(_T.STRING, _T.STRING) for name in RULE_CONTEXT}
    ),
)
_ATTRIBUTE = re.compile(r"\b(" + "|".join(RULE_CONTEXT) + r")\.([A-Za-z_][A-Za-z0-9_]*)")


_REGEX_TOKENS = frozenset({"EQ_FZM", "EQ_FZS", "NE_FZM", "NE_FZS"})  # =~ =~~ !~ !~~
_LEXER = rule_engine.parser.Parser()._lexer
_LEXER_LOCK = threading.Lock()


class RuleError(ValueError):
    pass


def _regex_operator(condition: str) -> str | None:
    """The first regex comparison operator among the condition's tokens (before parsing: rule-engine folds
    constant sub-expressions while it parses, so a literal ``"aaa…" =~ "(a+)+$"`` would run at save time)."""
    with _LEXER_LOCK:
        lexer = _LEXER.clone()
    lexer.input(condition)
    try:
        for token in lexer:
            if token.type in _REGEX_TOKENS:
                return token.value
    except Exception:  # a lexing error: the compile below names it  # noqa: S110
        pass
    return None


def _nodes(node: Any) -> Any:
    """Every AST node under ``node`` (rule-engine's nodes keep their children in slots)."""
    yield node
    for klass in type(node).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            value = getattr(node, slot, None)
            items = (
                value if isinstance(value, (list, tuple)) else value.values() if isinstance(value, dict) else (value,)
            )
            for item in items:
                if isinstance(item, (rule_engine.ast.ExpressionBase, rule_engine.ast.Statement)):
                    yield from _nodes(item)
    for value in getattr(node, "__dict__", {}).values():
        if isinstance(value, (rule_engine.ast.ExpressionBase, rule_engine.ast.Statement)):
            yield from _nodes(value)


def compile_rule(condition: str) -> rule_engine.Rule:
    """The compiled rule, or :class:`RuleError` naming what is wrong (regex comparisons are refused)."""
    operator = _regex_operator(condition)
    if operator is not None:
        raise RuleError(f"regular-expression comparisons ({operator}) are not allowed; use ==, != or in")
    try:
        rule = rule_engine.Rule(condition, context=_CONTEXT)
    except rule_engine.errors.EngineError as exc:
        raise RuleError(getattr(exc, "message", str(exc))) from None
    except Exception as exc:  # the parser raises plain errors on some inputs
        raise RuleError(str(exc)) from None
    if any(isinstance(n, rule_engine.ast.FuzzyComparisonExpression) for n in _nodes(rule.statement)):
        raise RuleError("regular-expression comparisons are not allowed; use ==, != or in")
    for scope, name in _ATTRIBUTE.findall(condition):
        if name not in RULE_CONTEXT[scope]:
            raise RuleError(f"unknown attribute {scope}.{name}; known: {', '.join(RULE_CONTEXT[scope])}")
    return rule


def context_for(unit: str, attributes: Mapping[str, Any], request: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The rule context: declared attributes as strings (cut to ``MAX_ATTRIBUTE_CHARS``), absent ones ``""``."""
    user = {name: str(attributes.get(name, "") or "")[:MAX_ATTRIBUTE_CHARS] for name in RULE_CONTEXT["user"]}
    user["id"] = unit[:MAX_ATTRIBUTE_CHARS]
    req = {name: str((request or {}).get(name, "") or "")[:MAX_ATTRIBUTE_CHARS] for name in RULE_CONTEXT["request"]}
    return {"user": user, "request": req}


def unit_hash(seed: str, unit: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{seed}:{unit}".encode()).hexdigest()
    return int(digest[:15], 16) / float(16**15)


def filters_match(filters: Mapping[str, Any], user: Mapping[str, str]) -> bool:
    """``audience.filters``: ``{attribute: value | [values]}``, all must hold (a list is any-of)."""
    for name, wanted in filters.items():
        value = user.get(name, "")
        if isinstance(wanted, list):
            if value not in {str(w) for w in wanted}:
                return False
        elif value != str(wanted):
            return False
    return True


@dataclass(frozen=True)
class PlanVariant:
    name: str
    weight: float
    version: str
    model_id: str
    configuration: dict[str, Any]


@dataclass
class Plan:
    """What assignment needs of one running experiment, compiled once."""

    experiment_id: str
    seed: str
    traffic_type: str
    total_percentage: float
    audience_percentage: float
    filters: dict[str, Any]
    variants: Sequence[PlanVariant]
    rules: Sequence[tuple[Any, str]] = field(default_factory=tuple)  # (compiled rule, variant name)
    weights_version: int = 1

    @classmethod
    def build(cls, *, experiment_id: Any, seed: str, traffic: Mapping, audience: Mapping, variants, weights_version=1):
        rules = tuple((compile_rule(r["condition"]), r["variantName"]) for r in traffic.get("rules") or ())
        return cls(
            experiment_id=str(experiment_id),
            seed=seed,
            traffic_type=traffic.get("type", TrafficType.PERCENTAGE),
            total_percentage=float(traffic.get("totalPercentage", 100)),
            audience_percentage=float(audience.get("percentage", 100)),
            filters=dict(audience.get("filters") or {}),
            variants=tuple(variants),
            rules=rules,
            weights_version=weights_version,
        )

    def by_name(self, name: str) -> PlanVariant | None:
        return next((v for v in self.variants if v.name == name), None)

    def assign(
        self, unit: str, attributes: Mapping[str, Any] | None = None, request: Mapping[str, Any] | None = None
    ) -> tuple[PlanVariant | None, str]:
        """``(variant, why)``; variant None when the unit is not in the experiment."""
        ctx = context_for(unit, attributes or {}, request)
        if self.filters and not filters_match(self.filters, ctx["user"]):
            return None, "audience_filters"
        if unit_hash(self.seed, unit, "audience") >= self.audience_percentage / 100:
            return None, "audience_percentage"
        if unit_hash(self.seed, unit, "traffic") >= self.total_percentage / 100:
            return None, "traffic_percentage"
        for rule, name in self.rules:
            try:
                matched = rule.matches(ctx)
            except rule_engine.errors.EngineError:
                matched = False
            if matched:
                return self.by_name(name), "rule"
        if self.traffic_type == TrafficType.RULES_BASED:
            return None, "no_rule_matched"
        return self.pick(unit), "weights"

    def pick(self, unit: str) -> PlanVariant | None:
        u = unit_hash(self.seed, unit, "variant") * sum(v.weight for v in self.variants)
        cumulative = 0.0
        for variant in self.variants:
            cumulative += variant.weight
            if u < cumulative:
                return variant
        return next((v for v in reversed(self.variants) if v.weight > 0), None)
