"""Budgets where spend happens: the rules of every budget, cached per process, and the gate that
reserves a call's worst-case cost against every applicable limit before it is made and settles the
actual cost after it (see :mod:`costs.ledger` for the counters).

A budget limits four kinds of *scope*: ``all`` (``monthlyBudget``), ``m:<model id>``,
``p:<provider>`` and ``e:<environment>`` (``categories``). Its ``alerts`` thresholds (% of a limit)
apply to each of its limits: ``block`` refuses a reservation that would take the scope past
``limit x threshold / 100``; ``throttle`` scales the deployment's rate limit by ``throttleFactor``
(default 0.5) once the scope's spend is past its threshold; ``reroute`` sends calls to ``rerouteTo``
(a deployment) once past it; ``notify`` only notifies (the alert job).

Degraded: when the ledger (Redis) cannot be reached the gate decides from the database's spend
(no hold); when neither can be read, a scope with a ``block`` limit refuses (fails closed).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from costs.constants import AlertAction, from_units, to_units
from costs.ledger import counter_key, get_ledger

logger = logging.getLogger("modelhub.costs")


def period_of(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now.year:04d}-{now.month:02d}"


def period_start(period: str) -> datetime:
    year, month = (int(p) for p in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def next_period_start(period: str) -> datetime:
    year, month = (int(p) for p in period.split("-"))
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def scopes_for(model_id: Any, provider: str, environment: str) -> tuple[str, ...]:
    return ("all", f"m:{model_id}", f"p:{provider}", f"e:{environment}")


@dataclass(frozen=True)
class Limit:
    budget_id: str
    scope: str
    units: int  # the scope's monthly limit
    alerts: tuple[dict[str, Any], ...]

    def at(self, threshold: Any) -> int:
        return int(self.units * Decimal(str(threshold)) / 100)


@dataclass
class Plan:
    """What the budgets say about calls of one (model, provider, environment)."""

    scopes: tuple[str, ...] = ()
    block: dict[str, int] = field(default_factory=dict)  # scope -> units it may not pass
    throttles: list[tuple[str, int, float]] = field(default_factory=list)  # (scope, from units, factor)
    reroutes: list[tuple[str, int, uuid.UUID]] = field(default_factory=list)  # (scope, from units, deployment)

    @property
    def active(self) -> bool:
        return bool(self.scopes)


class Rules:
    def __init__(self, limits: list[Limit]) -> None:
        self.limits = limits
        self.by_scope: dict[str, list[Limit]] = {}
        for limit in limits:
            self.by_scope.setdefault(limit.scope, []).append(limit)
        self._plans: dict[tuple, Plan] = {}

    def plan(self, model_id: Any, provider: str, environment: str) -> Plan:
        key = (str(model_id), provider, environment)
        found = self._plans.get(key)
        if found is not None:
            return found
        plan = Plan()
        scopes = []
        for scope in scopes_for(model_id, provider, environment):
            limits = self.by_scope.get(scope)
            if not limits:
                continue
            scopes.append(scope)
            for limit in limits:
                for alert in limit.alerts:
                    try:
                        _apply(plan, scope, limit, alert)
                    except Exception as exc:  # written around the API's checks (a shell, an old row)
                        logger.warning("budget %s: alert %r skipped (%s)", limit.budget_id, alert, exc)
        plan.scopes = tuple(scopes)
        self._plans[key] = plan
        return plan


def _apply(plan: Plan, scope: str, limit: Limit, alert: dict[str, Any]) -> None:
    at = limit.at(alert["threshold"])
    action = alert["action"]
    if action == AlertAction.BLOCK:
        plan.block[scope] = min(plan.block.get(scope, at), at)
    elif action == AlertAction.THROTTLE:
        factor = float(alert.get("throttleFactor") or 0.5)
        if not 0 < factor <= 1:
            raise ValueError(f"throttleFactor {factor} is not in (0, 1]")
        plan.throttles.append((scope, at, factor))
    elif action == AlertAction.REROUTE and alert.get("rerouteTo"):
        plan.reroutes.append((scope, at, uuid.UUID(str(alert["rerouteTo"]))))


def usable_alert(alert: Any) -> bool:
    """An alert the rules can apply: a dict with a finite positive threshold and a known action."""
    try:
        threshold = Decimal(str(alert["threshold"]))
        return bool(threshold.is_finite() and threshold > 0 and alert["action"] in AlertAction.values)
    except Exception:
        return False


def load_rules() -> Rules:
    from costs.models import Budget

    limits = []
    for budget in Budget.objects.all()[:1000]:
        alerts = budget.alerts if isinstance(budget.alerts, list) else []
        bad = [a for a in alerts if not usable_alert(a)]
        if bad:  # written around the API's checks: skipped here, so the gate and the alert job keep working
            logger.warning("budget %s: malformed alerts skipped: %r", budget.pk, bad[:5])
        alerts = tuple(a for a in alerts if usable_alert(a))
        limits.append(Limit(str(budget.pk), "all", to_units(budget.monthly_budget), alerts))
        categories = budget.categories if isinstance(budget.categories, dict) else {}
        for kind, prefix in (("models", "m"), ("providers", "p"), ("environments", "e")):
            entries = categories.get(kind)
            for name, amount in (entries if isinstance(entries, dict) else {}).items():
                try:
                    units = to_units(Decimal(str(amount)))
                except Exception:
                    logger.warning("budget %s: malformed %s limit %r skipped", budget.pk, kind, name)
                    continue
                limits.append(Limit(str(budget.pk), f"{prefix}:{name}", units, alerts))
    return Rules(limits)


class RulesCache:
    def __init__(self) -> None:
        self._rules: Rules | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def fresh(self) -> Rules | None:
        return self._rules if self._rules is not None and self._expires > time.monotonic() else None

    def get(self) -> Rules:
        """Synchronous (the gateway calls it through sync_to_async on a miss); a stale copy if the DB fails."""
        rules = self.fresh()
        if rules is not None:
            return rules
        try:
            rules = load_rules()
        except Exception:
            if self._rules is None:
                raise
            logger.warning("budgets could not be read; using the last copy", exc_info=True)
            return self._rules
        with self._lock:
            self._rules, self._expires = rules, time.monotonic() + settings.COSTS_RULES_CACHE_SECONDS
        return rules

    def clear(self) -> None:
        with self._lock:
            self._rules, self._expires = None, 0.0
        _state.clear()


rules_cache = RulesCache()

# (model, provider, environment) -> (expires, {scope: units last seen}): what the last reservations saw,
# so the rate limit (throttle) and the chain (reroute) need no round trip of their own.
_state: dict[tuple, tuple[float, dict[str, int]]] = {}
STATE_SECONDS = 5.0


def _remember(target: tuple, scopes: tuple[str, ...], values: tuple[int, ...], amount: int) -> None:
    if len(_state) > 10_000:
        _state.clear()
    _state[target] = (time.monotonic() + STATE_SECONDS, {s: v + amount for s, v in zip(scopes, values, strict=False)})


def _seen(target: tuple) -> dict[str, int]:
    entry = _state.get(target)
    return entry[1] if entry is not None and entry[0] > time.monotonic() else {}


def throttle_factor(plan: Plan, target: tuple) -> float:
    """The smallest factor of the throttle thresholds this target's spend is past (1.0: none)."""
    if not plan.throttles:
        return 1.0
    seen = _seen(target)
    factors = [f for scope, at, f in plan.throttles if seen.get(scope, -1) >= at]
    return min(factors) if factors else 1.0


def reroute_target(plan: Plan, target: tuple) -> uuid.UUID | None:
    if not plan.reroutes:
        return None
    seen = _seen(target)
    for scope, at, deployment in plan.reroutes:
        if seen.get(scope, -1) >= at:
            return deployment
    return None


class BudgetExceeded(Exception):
    def __init__(self, scope: str, limit_units: int, spend_units: int, amount_units: int, degraded: str = ""):
        self.scope, self.limit_units, self.spend_units, self.amount_units = (
            scope,
            limit_units,
            spend_units,
            amount_units,
        )
        self.degraded = degraded
        if degraded:
            message = f"Budget for {scope} cannot be checked ({degraded}); a blocking budget refuses the call."
        else:
            message = (
                f"Budget exceeded for {scope}: {from_units(spend_units)} USD spent or reserved this month, "
                f"this call may cost up to {from_units(amount_units)} USD, the limit is {from_units(limit_units)} USD."
            )
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Hold:
    id: str
    keys: tuple[str, ...]
    units: int
    period: str


def new_hold_id() -> str:
    return f"res_{os.urandom(12).hex()}"


def db_spend_units(period: str, scopes: tuple[str, ...]) -> list[int]:
    """The database's spend of ``scopes`` in ``period`` (the 1d buckets: exact sums of event costs)."""
    from costs.selectors import spend_by_scope

    totals = spend_by_scope(period)
    return [to_units(totals.get(s, Decimal(0))) for s in scopes]


def _refuse(plan: Plan, scopes, values, blocked_index: int, units: int) -> BudgetExceeded:
    scope = scopes[blocked_index - 1]
    return BudgetExceeded(scope, plan.block[scope], values[blocked_index - 1], units)


def _degraded(plan: Plan, period: str, units: int, reason: str) -> None:
    """Redis is unavailable: decide from the database (no hold); fail closed if it is unavailable too."""
    if not plan.block:
        return
    try:
        values = db_spend_units(period, plan.scopes)
    except Exception:
        scope = next(iter(plan.block))
        raise BudgetExceeded(
            scope, plan.block[scope], 0, units, degraded="neither Redis nor the database answer"
        ) from None
    for scope, value in zip(plan.scopes, values, strict=True):
        limit = plan.block.get(scope, -1)
        if limit >= 0 and value + units > limit:
            raise BudgetExceeded(scope, limit, value, units)


def reserve_sync(plan: Plan, target: tuple, amount: Decimal, *, hold_id: str, ttl_seconds: float) -> Hold | None:
    """Reserve ``amount`` against every scope of ``plan`` (raises :class:`BudgetExceeded`)."""
    if not plan.active:
        return None
    period = period_of()
    keys = [counter_key(period, s) for s in plan.scopes]
    limits = [plan.block.get(s, -1) for s in plan.scopes]
    units = to_units(amount)
    ledger = get_ledger()
    try:
        for _ in range(3):
            result = ledger.reserve(keys, hold_id, units, int(ttl_seconds * 1000), period, limits)
            if result.status != -1:
                break
            missing = [plan.scopes[i] for i in result.values]
            ledger.seed([counter_key(period, s) for s in missing], db_spend_units(period, tuple(missing)))
        else:
            raise RuntimeError("budget counters could not be seeded")
    except BudgetExceeded:
        raise
    except Exception as exc:
        logger.warning("budget ledger unavailable (%s); deciding from the database", exc)
        _degraded(plan, period, units, str(exc))
        return None
    _remember(target, plan.scopes, result.values, units if result.status == 1 else 0)
    if result.status == 0:
        raise _refuse(plan, plan.scopes, result.values, result.blocked, units)
    return Hold(hold_id, tuple(keys), units, period) if units else None


async def reserve(plan: Plan, target: tuple, amount: Decimal, *, hold_id: str, ttl_seconds: float) -> Hold | None:
    """The async form (the gateway): one round trip when the counters exist."""
    from modelhub.db import db_in_thread

    if not plan.active:
        return None
    period = period_of()
    keys = [counter_key(period, s) for s in plan.scopes]
    limits = [plan.block.get(s, -1) for s in plan.scopes]
    units = to_units(amount)
    ledger = get_ledger()
    try:
        for _ in range(3):
            result = await ledger.areserve(keys, hold_id, units, int(ttl_seconds * 1000), period, limits)
            if result.status != -1:
                break
            missing = tuple(plan.scopes[i] for i in result.values)
            values = await db_in_thread(db_spend_units)(period, missing)
            await ledger.aseed([counter_key(period, s) for s in missing], values)
        else:
            raise RuntimeError("budget counters could not be seeded")
    except Exception as exc:
        logger.warning("budget ledger unavailable (%s); deciding from the database", exc)
        await db_in_thread(_degraded)(plan, period, units, str(exc))
        return None
    _remember(target, plan.scopes, result.values, units if result.status == 1 else 0)
    if result.status == 0:
        raise _refuse(plan, plan.scopes, result.values, result.blocked, units)
    return Hold(hold_id, tuple(keys), units, period) if units else None


async def settle(hold: Hold | None, actual: Decimal) -> None:
    if hold is None:
        return
    try:
        await get_ledger().asettle(list(hold.keys), hold.id, to_units(actual), hold.period)
    except Exception as exc:  # the hold lapses at its expiry; the reconcile job counts the event from the DB
        logger.warning("budget hold %s could not be settled (%s)", hold.id, exc)


def settle_sync(hold_id: str, keys: list[str], period: str, actual: Decimal) -> bool:
    return get_ledger().settle(keys, hold_id, to_units(actual), period)
