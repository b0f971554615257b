"""Request and response bodies of the costs API (camelCase as the spec writes them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from catalog.constants import Provider
from costs.constants import (
    MAX_ALERTS_PER_BUDGET,
    MAX_AMOUNT,
    MAX_CATEGORY_ENTRIES,
    MAX_CHANNELS_PER_ALERT,
    AlertAction,
    ChannelType,
)
from deployments.constants import Environment
from modelhub.api.fields import EnumField
from modelhub.api.serializers import StrictCharField, StrictInputSerializer


class MoneyField(serializers.DecimalField):
    """USD: a JSON number or a decimal string, > 0, at most 8 decimal places; exact (never a float)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("max_digits", 18)
        kwargs.setdefault("decimal_places", 8)
        kwargs.setdefault("min_value", Decimal("0.00000001"))
        kwargs.setdefault("max_value", MAX_AMOUNT)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            self.fail("invalid")
        return super().to_internal_value(str(data) if isinstance(data, float) else data)


class BudgetAlertSerializer(StrictInputSerializer):
    threshold = serializers.DecimalField(
        max_digits=7, decimal_places=3, min_value=Decimal("0.001"), max_value=Decimal(1000), help_text="% of each limit"
    )
    action = EnumField(choices=AlertAction.choices)
    channels = serializers.ListField(
        child=StrictCharField(max_length=64), max_length=MAX_CHANNELS_PER_ALERT, required=False, default=list
    )
    rerouteTo = serializers.UUIDField(
        required=False, help_text="Extension, action reroute: the (cheaper) deployment calls go to once crossed."
    )
    throttleFactor = serializers.FloatField(
        required=False, min_value=0.01, max_value=0.99, help_text="Extension, action throttle (default 0.5)."
    )

    # A JSON number; DRF's DecimalField reads a float through str(), so 80.5 stays exactly 80.5.

    def validate(self, attrs: dict) -> dict:
        if attrs["action"] == AlertAction.REROUTE and not attrs.get("rerouteTo"):
            raise serializers.ValidationError({"rerouteTo": ["Required for action reroute."]})
        if attrs.get("rerouteTo") and attrs["action"] != AlertAction.REROUTE:
            raise serializers.ValidationError({"rerouteTo": ["Only for action reroute."]})
        if attrs.get("throttleFactor") is not None and attrs["action"] != AlertAction.THROTTLE:
            raise serializers.ValidationError({"throttleFactor": ["Only for action throttle."]})
        out = {"threshold": float(attrs["threshold"]), "action": attrs["action"], "channels": attrs["channels"]}
        if attrs.get("rerouteTo"):
            out["rerouteTo"] = str(attrs["rerouteTo"])
        if attrs.get("throttleFactor") is not None:
            out["throttleFactor"] = attrs["throttleFactor"]
        return out


class LimitsField(serializers.DictField):
    def __init__(self, key_check, **kwargs: Any):
        self.key_check = key_check
        super().__init__(child=MoneyField(), required=False, **kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict) and len(data) > MAX_CATEGORY_ENTRIES:
            raise serializers.ValidationError(f"At most {MAX_CATEGORY_ENTRIES} entries.")
        values = super().to_internal_value(data)
        for key in values:
            problem = self.key_check(key)
            if problem:
                raise serializers.ValidationError({key[:100]: [problem]})
        return {key: str(value) for key, value in values.items()}


def _uuid_key(key: str) -> str | None:
    import uuid

    try:
        if str(uuid.UUID(key)) != key:
            return "Must be a model id in canonical form (lower-case UUID with dashes)."
    except ValueError:
        return "Must be a model id (UUID)."
    return None


def _enum_key(choices):
    def check(key: str) -> str | None:
        return None if key in choices else f"Must be one of {', '.join(choices)}."

    return check


class CategoriesSerializer(StrictInputSerializer):
    models = LimitsField(_uuid_key)
    providers = LimitsField(_enum_key(Provider.values))
    environments = LimitsField(_enum_key(Environment.values))


class BudgetRequestSerializer(StrictInputSerializer):
    """The spec's ``BudgetRequest`` (plus an optional ``name``)."""

    monthlyBudget = MoneyField(source="monthly_budget")
    alerts = BudgetAlertSerializer(many=True, max_length=MAX_ALERTS_PER_BUDGET)
    categories = CategoriesSerializer()
    name = StrictCharField(max_length=100, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        attrs["categories"] = {k: v for k, v in attrs["categories"].items() if v}
        attrs["alerts"] = list(attrs["alerts"])
        # A threshold fires once per (budget, period, scope, threshold): two alerts at one threshold (e.g.
        # block -> webhook and notify -> email) would fire only the first, so they are refused here; one
        # alert takes several channels instead (README "Costs").
        seen: dict[Decimal, int] = {}
        duplicates: dict[int, dict[str, list[str]]] = {}
        for index, alert in enumerate(attrs["alerts"]):
            threshold = Decimal(str(alert["threshold"]))
            if threshold in seen:
                duplicates[index] = {
                    "threshold": [
                        f"alerts[{seen[threshold]}] has this threshold already; give one alert all its channels."
                    ]
                }
            else:
                seen[threshold] = index
        if duplicates:
            raise serializers.ValidationError({"alerts": duplicates})
        return attrs


def _money(value: Any) -> Any:
    return None if value is None else float(value)


class BudgetSerializer(serializers.Serializer):
    def to_representation(self, budget) -> dict[str, Any]:
        categories = budget.categories or {}
        return {
            "id": str(budget.pk),
            "name": budget.name,
            "monthlyBudget": _money(budget.monthly_budget),
            "alerts": budget.alerts,
            "categories": {k: {n: float(Decimal(v)) for n, v in categories.get(k, {}).items()} for k in categories},
            "ownerId": str(budget.owner_id),
            "createdAt": budget.created_at.isoformat().replace("+00:00", "Z"),
            "updatedAt": budget.updated_at.isoformat().replace("+00:00", "Z"),
        }


class ChannelRequestSerializer(StrictInputSerializer):
    name = StrictCharField(max_length=100)
    type = EnumField(choices=ChannelType.choices)
    target = StrictCharField(max_length=500, write_only=True, help_text="Answers show it masked (slack, webhook).")
    secret = StrictCharField(
        max_length=200, required=False, allow_blank=True, write_only=True, help_text="Webhooks: whsec_<base64>."
    )

    def validate(self, attrs: dict) -> dict:
        from django.core.validators import EmailValidator, URLValidator

        kind, target = attrs["type"], attrs["target"]
        try:
            if kind == ChannelType.EMAIL:
                EmailValidator()(target)
            else:
                URLValidator(schemes=["http", "https"])(target)
        except Exception:
            expected = "an email address" if kind == ChannelType.EMAIL else "an http(s) URL"
            raise serializers.ValidationError({"target": [f"Must be {expected}."]}) from None
        secret = attrs.get("secret") or ""
        if kind == ChannelType.WEBHOOK:
            from standardwebhooks import Webhook

            try:
                Webhook(secret)
                if not secret.startswith("whsec_") or len(secret) < 30:
                    raise ValueError
            except Exception:
                raise serializers.ValidationError(
                    {"secret": ["Webhooks need a Standard Webhooks secret: whsec_ + base64 of 24-64 random bytes."]}
                ) from None
        elif secret:
            raise serializers.ValidationError({"secret": ["Only webhooks take a secret."]})
        attrs["secret"] = secret
        return attrs


def masked_target(channel) -> str:
    """A Slack or webhook URL is a credential (whoever has it can post): only its scheme, host and last 4
    characters are shown, e.g. ``https://hooks.slack.com/…x9Qz``. An email address is shown whole."""
    from urllib.parse import urlsplit

    target = channel.target or ""
    if channel.type == ChannelType.EMAIL:
        return target
    try:
        parts = urlsplit(target)
        origin = f"{parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else ""
    except ValueError:
        origin = ""
    return f"{origin}/…{target[-4:]}" if len(target) > 8 else "…"


class ChannelSerializer(serializers.Serializer):
    def to_representation(self, channel) -> dict[str, Any]:
        return {
            "id": str(channel.pk),
            "name": channel.name,
            "type": channel.type,
            "target": masked_target(channel),  # write-only in full, like the secret
            "hasSecret": bool(channel.secret),
            "ownerId": str(channel.owner_id),
            "createdAt": channel.created_at.isoformat().replace("+00:00", "Z"),
            "updatedAt": channel.updated_at.isoformat().replace("+00:00", "Z"),
        }


class NotificationSerializer(serializers.Serializer):
    def to_representation(self, note) -> dict[str, Any]:
        iso = lambda v: v.isoformat().replace("+00:00", "Z") if v else None  # noqa: E731
        return {
            "id": str(note.pk),
            "alertId": str(note.alert_id),
            "budgetId": str(note.alert.budget_id),
            "channelId": str(note.channel_id),
            "channelType": note.channel.type,
            "status": note.status,
            "attempts": note.attempts,
            "lastError": note.last_error,
            "nextAttemptAt": iso(note.next_attempt_at),
            "sentAt": iso(note.sent_at),
            "createdAt": iso(note.created_at),
            "message": note.alert.message,
        }


class AuthorizeRequestSerializer(StrictInputSerializer):
    modelId = serializers.UUIDField(source="model_id")
    environment = EnumField(choices=Environment.choices, required=False, default=Environment.PRODUCTION)
    estimatedTokens = serializers.IntegerField(source="estimated_tokens", min_value=1, max_value=100_000_000)
    ttlSeconds = serializers.IntegerField(source="ttl_seconds", min_value=10, max_value=3600, required=False)
