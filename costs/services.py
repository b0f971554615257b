"""Writes of the costs app: budgets and channels, authorizations, the reconcile job, budget alerts and
their notifications (outbox). The gateway reaches the enforcement through the functions at the end
(``gate_*``), so it imports nothing of this app but ``costs.services``."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import selectors as catalog_selectors
from costs import enforcement
from costs.constants import UNIT, AlertAction, Decision, DeliveryStatus, ReservationStatus, from_units, to_units
from costs.ledger import counter_key, get_ledger
from costs.models import Budget, BudgetAlert, Notification, NotificationChannel, Reservation
from modelhub.api.exceptions import AppError, Conflict, ErrorCode, InvalidRequest, NotFound
from modelhub.realtime import publish

logger = logging.getLogger("modelhub.costs")


class BudgetExceededError(AppError):
    """402: the spend this needs does not fit a blocking budget."""

    status_code = 402
    code = ErrorCode.BUDGET_EXCEEDED
    default_message = "A budget does not allow this spend."


def _changed() -> None:
    # Now (this transaction's later reads) and after commit (what other threads reloaded meanwhile).
    enforcement.rules_cache.clear()
    transaction.on_commit(enforcement.rules_cache.clear)


# --- channels ---------------------------------------------------------------------------------


@transaction.atomic
def channel_create(*, actor: Any, name: str, type: str, target: str, secret: str = "") -> NotificationChannel:
    from costs.constants import MAX_CHANNELS

    if NotificationChannel.objects.count() >= MAX_CHANNELS:
        raise Conflict(f"At most {MAX_CHANNELS} notification channels.")
    return NotificationChannel.objects.create(name=name, type=type, target=target, secret=secret, owner=actor)


@transaction.atomic
def channel_update(*, channel: NotificationChannel, actor: Any, **fields: Any) -> NotificationChannel:
    for key in ("name", "type", "target", "secret"):
        if key in fields:
            setattr(channel, key, fields[key])
    channel.save()
    return channel


@transaction.atomic
def channel_delete(*, channel: NotificationChannel, actor: Any) -> None:
    users = [str(b.pk) for b in Budget.objects.all() if str(channel.pk) in _channel_refs(b)]
    if users:
        raise Conflict("Budgets still send to this channel; change their alerts first.", details={"dependents": users})
    channel.delete()


def _channel_refs(budget: Budget) -> set[str]:
    return {str(c) for alert in budget.alerts or () for c in alert.get("channels") or ()}


# --- budgets ----------------------------------------------------------------------------------


def _check_references(alerts: list[dict], categories: dict) -> None:
    from deployments import selectors as deployment_selectors

    refs = {str(c) for a in alerts for c in a.get("channels") or ()} - {"email", "slack", "webhook"}
    known = {str(pk) for pk in NotificationChannel.objects.filter(pk__in=list(refs)).values_list("pk", flat=True)}
    unknown = sorted(refs - known)
    if unknown:
        raise InvalidRequest(
            "alerts[].channels names channels that do not exist.",
            details={"fields": {"alerts.channels": [f"no channel {u}" for u in unknown]}},
        )
    models = list((categories.get("models") or {}).keys())
    if models:
        found = {str(pk) for pk in catalog_selectors.models_in_bulk(models)}
        missing = sorted(set(models) - found)
        if missing:
            raise NotFound(
                "categories.models names unknown models.",
                code=ErrorCode.MODEL_NOT_FOUND,
                details={"fields": {"categories.models": missing}},
            )
    targets = [a["rerouteTo"] for a in alerts if a.get("rerouteTo")]
    if targets:
        found = {str(pk) for pk in deployment_selectors.invocation_targets([uuid.UUID(str(t)) for t in targets])}
        missing = sorted({str(t) for t in targets} - found)
        if missing:
            raise NotFound(
                "alerts[].rerouteTo names unknown deployments.",
                code=ErrorCode.DEPLOYMENT_NOT_FOUND,
                details={"fields": {"alerts.rerouteTo": missing}},
            )


@transaction.atomic
def budget_create(
    *, actor: Any, monthly_budget: Decimal, alerts: list[dict], categories: dict, name: str = ""
) -> Budget:
    from costs.constants import MAX_BUDGETS

    if Budget.objects.count() >= MAX_BUDGETS:
        raise Conflict(f"At most {MAX_BUDGETS} budgets.")
    _check_references(alerts, categories)
    budget = Budget.objects.create(
        name=name, monthly_budget=monthly_budget, alerts=alerts, categories=categories, owner=actor
    )
    _changed()
    return budget


@transaction.atomic
def budget_update(
    *, budget: Budget, actor: Any, monthly_budget: Decimal, alerts: list[dict], categories: dict, name: str = ""
) -> Budget:
    _check_references(alerts, categories)
    budget.name, budget.monthly_budget, budget.alerts, budget.categories = name, monthly_budget, alerts, categories
    budget.save()
    _changed()
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor: Any) -> None:
    budget.delete()
    _changed()


# --- authorize (clients that call providers themselves) ----------------------------------------


class ReservationLimitError(AppError):
    """409: the caller's open reservations are at their count or amount limit."""

    status_code = 409
    code = ErrorCode.RESERVATION_LIMIT_EXCEEDED
    default_message = "Too many open reservations; release some (DELETE /cost/authorize/{id}) or let them expire."


def _check_open_reservations(actor: Any, amount: Decimal, now: datetime) -> None:
    """One user cannot hold the hub's headroom: at most ``COSTS_AUTHORIZE_MAX_OPEN`` open reservations,
    holding at most ``COSTS_AUTHORIZE_MAX_OPEN_USD`` together (the caller holds its user row's lock)."""
    from django.db.models import Count, Sum

    found = Reservation.objects.filter(owner=actor, status=ReservationStatus.OPEN, expires_at__gt=now).aggregate(
        n=Count("pk"), total=Sum("amount")
    )
    count, total = found["n"], found["total"] or Decimal(0)
    max_count, max_usd = settings.COSTS_AUTHORIZE_MAX_OPEN, Decimal(str(settings.COSTS_AUTHORIZE_MAX_OPEN_USD))
    details = {
        "openReservations": count,
        "openAmount": str(total.quantize(UNIT)),
        "maxOpenReservations": max_count,
        "maxOpenAmount": str(max_usd),
    }
    if count >= max_count:
        raise ReservationLimitError(f"You hold {count} open reservations, the most allowed.", details=details)
    if total + amount > max_usd:
        raise ReservationLimitError(
            f"Your open reservations hold {total.quantize(UNIT)} USD; this one ({amount} USD) would pass "
            f"the {max_usd} USD allowed.",
            details=details,
        )


def reservation_release(*, actor: Any, reservation_id: str) -> None:
    """Give an open reservation's hold back (own reservations only; another's is not found). Releasing
    one that is no longer open (released, settled, expired) changes nothing: the same answer as once."""
    reservation = Reservation.objects.filter(pk=str(reservation_id)[:64], owner=actor).first()
    if reservation is None:
        raise NotFound("No reservation of yours with this id.")
    with transaction.atomic():
        claimed = Reservation.objects.filter(pk=reservation.pk, status=ReservationStatus.OPEN).update(
            status=ReservationStatus.RELEASED, closed_at=timezone.now()
        )
        if claimed:
            period = enforcement.period_of(reservation.created_at)
            enforcement.settle_sync(
                reservation.pk, [counter_key(period, s) for s in reservation.scopes], period, Decimal(0)
            )


@transaction.atomic
def authorize(
    *, actor: Any, model_id: uuid.UUID, environment: str, estimated_tokens: int, ttl_seconds: int | None = None
) -> dict[str, Any]:
    """allow / throttle / block for a call the client makes itself; allow and throttle hold the
    estimated cost under a reservation id that the call's ingested event (``reservationId``) settles."""
    model = catalog_selectors.model_by_id(model_id)
    if model is None:
        raise NotFound("No model with this id.", code=ErrorCode.MODEL_NOT_FOUND)
    from analytics import services as analytics_services

    amount = analytics_services.token_cost(estimated_tokens, model.baseline_cost_per_1k_tokens)
    plan = enforcement.rules_cache.get().plan(model.pk, model.provider, environment)
    ttl = ttl_seconds or settings.COSTS_AUTHORIZE_TTL_SECONDS
    hold_id = enforcement.new_hold_id()
    target = (str(model.pk), model.provider, environment)
    base = {"modelId": str(model.pk), "environment": environment, "estimatedCost": amount}
    if plan.active and amount > 0:  # a hold will be taken: the caller's open ones are counted under its lock
        from django.contrib.auth import get_user_model

        list(get_user_model().objects.select_for_update().filter(pk=actor.pk).values_list("pk", flat=True))
        _check_open_reservations(actor, amount, timezone.now())
    try:
        hold = enforcement.reserve_sync(plan, target, amount, hold_id=hold_id, ttl_seconds=ttl)
    except enforcement.BudgetExceeded as exc:
        return {**base, "decision": Decision.BLOCK.value, "reservationId": None, "reason": exc.message}
    factor = enforcement.throttle_factor(plan, target)
    now = timezone.now()
    if hold is not None:
        Reservation.objects.create(
            id=hold.id,
            model_id=model.pk,
            environment=environment,
            scopes=list(plan.scopes),
            amount=amount,
            owner=actor,
            expires_at=now + timedelta(seconds=ttl),
        )
    return {
        **base,
        "decision": (Decision.THROTTLE if factor < 1 else Decision.ALLOW).value,
        "reservationId": hold.id if hold else None,
        "expiresAt": now + timedelta(seconds=ttl) if hold else None,
        "throttleFactor": factor,
        "reason": "",
    }


def _settle_reservations(now: datetime) -> dict[str, int]:
    """Open reservations whose event arrived: settled with the events' cost; past expiry: expired."""
    from analytics import selectors as analytics_selectors

    settled = expired = 0
    open_ids = list(Reservation.objects.filter(status=ReservationStatus.OPEN).values_list("pk", flat=True)[:5000])
    if not open_ids:
        return {"settled": 0, "expired": 0}
    spent = analytics_selectors.cost_by_reservation(open_ids)
    for reservation in Reservation.objects.filter(pk__in=open_ids):
        period = enforcement.period_of(reservation.created_at)
        keys = [counter_key(period, s) for s in reservation.scopes]
        if reservation.pk in spent:
            cost = spent[reservation.pk]
            with transaction.atomic():
                claimed = Reservation.objects.filter(pk=reservation.pk, status=ReservationStatus.OPEN).update(
                    status=ReservationStatus.SETTLED, settled_cost=cost, closed_at=now
                )
                if claimed:
                    enforcement.settle_sync(reservation.pk, keys, period, cost)
                    settled += 1
        elif reservation.expires_at <= now:
            with transaction.atomic():
                claimed = Reservation.objects.filter(pk=reservation.pk, status=ReservationStatus.OPEN).update(
                    status=ReservationStatus.EXPIRED, closed_at=now
                )
                if claimed:
                    enforcement.settle_sync(reservation.pk, keys, period, Decimal(0))
                    expired += 1
    return {"settled": settled, "expired": expired}


def reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """Settle authorized reservations by their events, then raise counters below the database's spend
    (events ingested without the gateway). Idempotent."""
    from costs.selectors import spend_by_scope

    now = now or timezone.now()
    result = _settle_reservations(now)
    period = enforcement.period_of(now)
    rules = enforcement.rules_cache.get()
    scopes = sorted(rules.by_scope)
    if scopes:
        totals = spend_by_scope(period)
        floors = [to_units(totals.get(s, Decimal(0))) for s in scopes]
        try:
            result["raised"] = get_ledger().correct([counter_key(period, s) for s in scopes], floors)
        except Exception as exc:
            logger.warning("budget counters could not be reconciled: %s", exc)
            result["raised"] = 0
    return result


# --- the analysis's daily figures --------------------------------------------------------------


def _days_to_refresh(now: datetime) -> list[datetime]:
    """Today and yesterday (still changing), plus retained days that have spend but no figures yet."""
    from analytics import selectors as analytics_selectors
    from costs.models import CostDay

    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    oldest = today - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"] - 1)
    with_spend = {r["day"] for r in analytics_selectors.cost_by_day(oldest, today + timedelta(days=1))}
    done = set(CostDay.objects.filter(day__gte=oldest.date()).values_list("day", flat=True).distinct())
    missing = sorted(d for d in with_spend if d.date() not in done)
    return sorted({today, today - timedelta(days=1), *missing})


def refresh_cost_days(*, days: list[datetime] | None = None, now: datetime | None = None) -> dict[str, int]:
    """Recompute the opportunity figures of ``days`` (default :func:`_days_to_refresh`); each day is
    replaced whole in one transaction, so a re-run or a concurrent run leaves the same rows."""
    from analytics import selectors as analytics_selectors
    from costs.models import CostDay

    now = now or timezone.now()
    ttl = settings.COSTS_OPPORTUNITIES["cache_ttl_seconds"]
    rows = 0
    for day in days if days is not None else _days_to_refresh(now):
        stats = analytics_selectors.cost_day_stats(day, ttl_seconds=ttl)
        objects = [
            CostDay(
                day=day.date(),
                model_id=r["model_id"],
                environment=r["environment"],
                use_case=r["use_case"],
                computed_at=now,
                **{
                    k: r[k] or 0
                    for k in (
                        "requests",
                        "successes",
                        "success_cost",
                        "failed",
                        "failed_cost",
                        "retries",
                        "offline_count",
                        "offline_cost",
                        "repeat_count",
                        "repeat_cost",
                        "accepted_count",
                        "rejected_count",
                        "rating_sum",
                        "rating_count",
                        "max_tokens",
                    )
                },
            )
            for r in stats
        ]
        with transaction.atomic():
            CostDay.objects.filter(day=day.date()).delete()
            CostDay.objects.bulk_create(objects, batch_size=1000)
        rows += len(objects)
    return {"rows": rows}


# --- budget alerts and notifications ------------------------------------------------------------


def _scope_label(scope: str, names: dict[str, str]) -> str:
    if scope == "all":
        return "all spend"
    kind, _, value = scope.partition(":")
    return {"m": f"model {names.get(value, value)}", "p": f"provider {value}", "e": f"environment {value}"}[kind]


def _channels_for(budget: Budget, alert: dict) -> list[NotificationChannel]:
    refs = [str(c) for c in alert.get("channels") or ()]
    ids = [r for r in refs if r not in ("email", "slack", "webhook")]
    types = [r for r in refs if r in ("email", "slack", "webhook")]
    qs = NotificationChannel.objects.filter(pk__in=ids)
    found = list(qs)
    if types:
        found += list(NotificationChannel.objects.filter(type__in=types).exclude(pk__in=[c.pk for c in found]))
    return found


def _fire(budget: Budget, period: str, scope: str, alert: dict, spend: Decimal, limit: Decimal, label: str, now):
    threshold = Decimal(str(alert["threshold"]))
    message = (
        f"Budget {budget.name or budget.pk}: {label} reached {threshold}% of {limit} USD "
        f"({spend} USD spent in {period}); action {alert['action']}."
    )
    try:
        with transaction.atomic():
            fired = BudgetAlert.objects.create(
                budget=budget,
                period=period,
                scope=scope,
                threshold=threshold,
                action=alert["action"],
                spend=spend,
                limit=limit,
                message=message[:500],
                fired_at=now,
            )
            channels = _channels_for(budget, alert)
            payload = {
                "type": "budget.threshold_crossed",
                "alertId": str(fired.pk),
                "budgetId": str(budget.pk),
                "period": period,
                "scope": scope,
                "threshold": float(threshold),
                "action": alert["action"],
                "spend": str(spend.quantize(UNIT)),
                "limit": str(limit.quantize(UNIT)),
                "message": fired.message,
                "firedAt": now.isoformat().replace("+00:00", "Z"),
            }
            ids = []
            for channel in channels:
                note = Notification.objects.create(alert=fired, channel=channel, payload=payload, next_attempt_at=now)
                ids.append(str(note.pk))
            transaction.on_commit(lambda: _enqueue(ids))
    except IntegrityError:  # costs_alert_once_per_period: it fired already (maybe in a concurrent run)
        return None
    severity = (
        "critical" if alert["action"] in (AlertAction.BLOCK, AlertAction.THROTTLE) or threshold >= 100 else "warning"
    )
    publish(
        "alert:new",
        {
            "id": str(fired.pk),
            "type": "budget_exceeded" if threshold >= 100 else "budget_warning",
            "severity": severity,
            "message": fired.message,
            **({"modelId": scope[2:]} if scope.startswith("m:") else {}),
        },
    )
    return fired


def _enqueue(ids: list[str]) -> None:
    if not ids:
        return
    try:
        from costs.tasks import deliver_notifications

        deliver_notifications.delay(ids)
    except Exception as exc:  # the sweeper sends them
        logger.warning("notifications could not be enqueued (%s); the sweeper will send them", exc)


def evaluate_budgets(*, now: datetime | None = None) -> dict[str, int]:
    """Every budget against all recorded spend (the 1d buckets) and the gateway's counters, whichever is
    higher; each threshold crossed fires once per period. Idempotent."""
    from costs.selectors import spend_by_scope

    now = now or timezone.now()
    period = enforcement.period_of(now)
    totals = spend_by_scope(period)
    rules = enforcement.rules_cache.get()
    scopes = sorted(rules.by_scope)
    counters: dict[str, int | None] = {}
    held: dict[str, int] = {}
    try:
        keys = [counter_key(period, s) for s in scopes]
        ledger = get_ledger()
        counters = dict(zip(scopes, ledger.values(keys), strict=True))
        held = dict(zip(scopes, ledger.held(keys), strict=True))
    except Exception as exc:
        logger.warning("budget counters unavailable (%s); judging recorded spend only", exc)
    names = catalog_selectors.model_names([s[2:] for s in scopes if s.startswith("m:")])
    names = {str(k): v for k, v in names.items()}
    budgets = {str(b.pk): b for b in Budget.objects.all()}
    fired = 0
    for limit in rules.limits:
        budget = budgets.get(limit.budget_id)
        if budget is None:
            continue
        recorded = totals.get(limit.scope, Decimal(0))
        counted = counters.get(limit.scope)
        settled = from_units(counted - held.get(limit.scope, 0)) if counted is not None else Decimal(0)
        spend = max(recorded, settled)
        limit_usd = from_units(limit.units)
        for alert in limit.alerts:
            if spend * 100 >= limit_usd * Decimal(str(alert["threshold"])):
                label = _scope_label(limit.scope, names)
                fired += _fire(budget, period, limit.scope, alert, spend, limit_usd, label, now) is not None
    return {"fired": fired}


# --- delivery ---------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, settings.COSTS_NOTIFY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


def deliver(notification_id: Any, *, now: datetime | None = None) -> str:
    """Send one outbox row if it is due (claimed with a conditional update, so two workers do not both
    send it); record the outcome. Returns the status."""
    from costs import delivery

    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.COSTS_NOTIFY_TIMEOUT_SECONDS * 3)
    claimed = Notification.objects.filter(
        pk=notification_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=lease)
    if not claimed:
        return "skipped"
    note = Notification.objects.select_related("channel").get(pk=notification_id)
    try:
        outcome = delivery.send(note)
    except Exception as exc:  # a bug or an odd channel: recorded and retried, never lost
        logger.exception("notification %s failed", note.pk)
        outcome = delivery.Outcome(False, error=f"{type(exc).__name__}: {exc}")
    note.attempts += 1
    if outcome.ok:
        note.status, note.sent_at, note.last_error = DeliveryStatus.SENT, timezone.now(), ""
    elif outcome.gone:
        note.status, note.last_error = DeliveryStatus.GONE, outcome.error[:500]
    elif note.attempts >= settings.COSTS_NOTIFY_MAX_ATTEMPTS:
        note.status, note.last_error = DeliveryStatus.FAILED, outcome.error[:500]
    else:
        note.last_error = outcome.error[:500]
        note.next_attempt_at = timezone.now() + _backoff(note.attempts)
    note.save(update_fields=["status", "attempts", "sent_at", "last_error", "next_attempt_at"])
    return note.status


def sweep_outbox(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Send what is due (new rows whose after-commit send was lost, and retries after their backoff)."""
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for pk in due:
        status = deliver(pk, now=now)
        counts[status] = counts.get(status, 0) + 1
    return counts


# --- the gateway's entry points --------------------------------------------------------------------

BudgetExceeded = enforcement.BudgetExceeded
Hold = enforcement.Hold


def gate_plan_cached(model_id: Any, provider: str, environment: str) -> enforcement.Plan | None:
    """The plan without touching the database (None: the rules must be loaded first, :func:`gate_rules`)."""
    rules = enforcement.rules_cache.fresh()
    return None if rules is None else rules.plan(model_id, provider, environment)


def gate_plan(model_id: Any, provider: str, environment: str) -> enforcement.Plan:
    """Load the budgets if needed and plan (synchronous; the gateway calls it through sync_to_async)."""
    return enforcement.rules_cache.get().plan(model_id, provider, environment)


gate_reserve = enforcement.reserve
gate_settle = enforcement.settle
gate_throttle_factor = enforcement.throttle_factor
gate_reroute_target = enforcement.reroute_target
new_hold_id = enforcement.new_hold_id


def purchase_check(*, user: Any, model_id: Any, amount: Decimal, currency: str) -> None:
    """Marketplace purchases count against ``all`` budgets: refused when a blocking budget cannot hold it."""
    rules = enforcement.rules_cache.get()
    limits = rules.by_scope.get("all") or []
    block = [lim.at(a["threshold"]) for lim in limits for a in lim.alerts if a["action"] == AlertAction.BLOCK]
    if not block:
        return
    from costs.selectors import spend_by_scope

    period = enforcement.period_of()
    recorded = to_units(spend_by_scope(period).get("all", Decimal(0)))
    try:
        counted = get_ledger().values([counter_key(period, "all")])[0] or 0
    except Exception:
        counted = 0
    spend = max(recorded, counted)
    if spend + to_units(Decimal(str(amount))) > min(block):
        raise BudgetExceededError(
            f"This purchase ({amount} {currency}) does not fit the monthly budget: "
            f"{from_units(spend)} of {from_units(min(block))} USD are spent or reserved.",
        )
