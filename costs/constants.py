"""Enums and bounds of the costs app (public to the apps above: the gateway)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

# Counters hold exact integers of this unit: the events table's cost quantum (8 decimal places).
UNIT = Decimal("0.00000001")
UNITS_PER_USD = 100_000_000

MAX_BUDGETS = 100
MAX_ALERTS_PER_BUDGET = 10
MAX_CATEGORY_ENTRIES = 100
MAX_CHANNELS_PER_ALERT = 10
MAX_CHANNELS = 200
MAX_AMOUNT = Decimal("1000000000")  # USD per month


class ChannelType(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack incoming webhook"
    WEBHOOK = "webhook", "Webhook (Standard Webhooks signature)"


class AlertAction(models.TextChoices):
    NOTIFY = "notify", "Notify"
    THROTTLE = "throttle", "Throttle"
    BLOCK = "block", "Block"
    REROUTE = "reroute", "Reroute (extension)"


class ReservationStatus(models.TextChoices):
    OPEN = "open", "Open"
    SETTLED = "settled", "Settled"
    EXPIRED = "expired", "Expired"
    RELEASED = "released", "Released (DELETE /cost/authorize/{id})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"
    GONE = "gone", "Gone (410: the receiver asked us to stop)"


class Decision(models.TextChoices):
    ALLOW = "allow", "Allow"
    THROTTLE = "throttle", "Throttle"
    BLOCK = "block", "Block"


def to_units(amount: Decimal) -> int:
    """USD -> integer units (exact for anything quantized to 8 places; finer fractions round up)."""
    scaled = amount * UNITS_PER_USD
    whole = int(scaled)
    return whole + (1 if scaled > whole else 0)


def from_units(units: int) -> Decimal:
    return (Decimal(units) * UNIT).quantize(UNIT)
