"""Assignment properties: deterministic, independent hashes, widening never moves a user, rules, filters."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.assignment import Plan, PlanVariant, RuleError, compile_rule, unit_hash

VARIANTS = (PlanVariant("a", 50, "1", "m", {}), PlanVariant("b", 30, "1", "m", {}), PlanVariant("c", 20, "1", "m", {}))


def _plan(total=100.0, audience=100.0, rules=(), kind="percentage", filters=None):
    return Plan.build(
        experiment_id="e",
        seed="seed-1",
        traffic={"type": kind, "totalPercentage": total, "rules": list(rules)},
        audience={"percentage": audience, "filters": filters or {}},
        variants=VARIANTS,
    )


@settings(max_examples=50, deadline=None)
@given(low=st.floats(0, 100), high=st.floats(0, 100))
def test_widening_traffic_never_moves_an_assigned_user(low, high):
    low, high = sorted((low, high))
    narrow, wide = _plan(total=low), _plan(total=high)
    for i in range(300):
        unit = f"user-{i}"
        before, _ = narrow.assign(unit)
        after, _ = wide.assign(unit)
        if before is not None:
            assert after is not None and after.name == before.name


def test_weights_and_the_product_of_percentages():
    plan = _plan(total=50, audience=40)
    counts = {"a": 0, "b": 0, "c": 0, None: 0}
    n = 20_000
    for i in range(n):
        variant, _ = plan.assign(f"u{i}")
        counts[variant.name if variant else None] += 1
    included = n - counts[None]
    assert abs(included / n - 0.2) < 0.015  # 50 % x 40 %
    assert abs(counts["a"] / included - 0.5) < 0.03 and abs(counts["c"] / included - 0.2) < 0.03
    assert plan.assign("u1") == plan.assign("u1")


def test_hashes_are_independent():
    pairs = [(unit_hash("s", f"u{i}", "traffic"), unit_hash("s", f"u{i}", "variant")) for i in range(5000)]
    import numpy as np

    x, y = np.array(pairs).T
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.05
    assert x.min() >= 0 and x.max() < 1


def test_rules_and_filters():
    plan = _plan(rules=[{"condition": "user.tier == 'premium'", "variantName": "c"}], kind="rules-based")
    assert plan.assign("x", {"tier": "premium"})[0].name == "c"
    assert plan.assign("x", {"tier": "free"}) == (None, "no_rule_matched")
    filtered = _plan(filters={"country": ["US", "CA"]})
    assert filtered.assign("x", {"country": "FR"}) == (None, "audience_filters")
    assert filtered.assign("x", {"country": "CA"})[0] is not None


@pytest.mark.parametrize(
    "condition", ["user.tier ==", "user.shoeSize == 'x'", "__import__('os')", "open('/etc/passwd')", "x" * 3]
)
def test_bad_rules_are_refused(condition):
    with pytest.raises(RuleError):
        compile_rule(condition)


def test_no_escape_into_python_attributes():
    plan = _plan(rules=[{"condition": "user.tier.__class__ != null", "variantName": "c"}], kind="rules-based")
    assert plan.assign("x", {"tier": "premium"}) == (None, "no_rule_matched")  # refused at evaluation: no match


@pytest.mark.parametrize(
    "condition",
    [
        'user.tier =~ "(a+)+$"',
        "user.tier =~~ 'a'",
        "user.tier !~ 'a'",
        "user.country == 'US' and user.tier !~~ '(a|aa)+$'",
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\" =~ '(a+)+$'",  # constant: folded while parsing
        "[t for t in [user.tier] if t =~ 'x'] == []",
    ],
)
def test_regex_comparisons_are_refused_at_compile_time(condition):
    with pytest.raises(RuleError, match="regular-expression"):
        compile_rule(condition)


def test_a_regex_comparison_node_is_found_in_the_compiled_ast():
    import rule_engine

    from experiments.assignment import _nodes

    rule = rule_engine.Rule("tier == null or (1 == 1 and tier =~ 'a')")
    assert any(isinstance(n, rule_engine.ast.FuzzyComparisonExpression) for n in _nodes(rule.statement))


def test_attribute_values_are_cut_before_rules_see_them():
    from experiments.assignment import context_for
    from experiments.constants import MAX_ATTRIBUTE_CHARS

    ctx = context_for("u" * 1000, {"tier": "a" * 100_000}, {"useCase": "b" * 1000})
    assert len(ctx["user"]["tier"]) == MAX_ATTRIBUTE_CHARS == 255
    assert len(ctx["user"]["id"]) == 255 and len(ctx["request"]["useCase"]) == 255


def test_gateway_attribute_header_values_are_capped():
    import orjson

    from gateway.app import _experiment_attributes

    raw = orjson.dumps({"tier": "a" * 1500, "country": "US", "plan": {"nested": 1}})
    assert _experiment_attributes({b"x-modelhub-user-attributes": raw}) == {"tier": "a" * 255, "country": "US"}
