"""Marketplace enums and bounds: a declared public module the apps above may import (no models here)."""

from __future__ import annotations

from django.db import models


class AccessMode(models.TextChoices):
    OPEN = "open", "Open"
    APPROVAL_REQUIRED = "approval_required", "Approval required"


class ListingStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    DELISTED = "delisted", "Delisted"


class PricingModel(models.TextChoices):
    FREE = "free", "Free"
    ONE_TIME = "one_time", "One-time"
    SUBSCRIPTION = "subscription", "Subscription"
    USAGE = "usage", "Usage-priced"


class BillingInterval(models.TextChoices):
    MONTH = "month", "Month"
    YEAR = "year", "Year"


class UsageUnit(models.TextChoices):
    TOKENS_1K = "1k_tokens", "per 1,000 tokens"
    TOKENS_1M = "1m_tokens", "per 1,000,000 tokens"


class PlanStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class EntitlementStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
    REJECTED = "rejected", "Rejected"
    REFUNDED = "refunded", "Refunded"


class EntitlementScope(models.TextChoices):
    USER = "user", "The purchasing user"
    HUB = "hub", "Everyone on the hub"


class PurchaseStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    REFUNDED = "refunded", "Refunded"


class PurchaseKind(models.TextChoices):
    INITIAL = "initial", "Initial purchase"
    RENEWAL = "renewal", "Subscription renewal"


class IdempotencyState(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"


# An entitlement in one of these counts as held: at most one per (holder, listing) - a DB constraint.
HELD_STATUSES = (EntitlementStatus.PENDING, EntitlementStatus.ACTIVE)
# Statuses an entitlement never leaves.
FINAL_STATUSES = (
    EntitlementStatus.CANCELLED,
    EntitlementStatus.EXPIRED,
    EntitlementStatus.REVOKED,
    EntitlementStatus.REJECTED,
    EntitlementStatus.REFUNDED,
)
HUB_HOLDER = "hub"
CURRENCIES = ("USD", "EUR", "GBP")
MAX_AMOUNT_DIGITS = 14
AMOUNT_DECIMAL_PLACES = 6
