"""The marketplace: publishers, listings of catalog models, licence terms, plans, purchases,
entitlements, reviews, and the idempotency keys that make a purchase happen once."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from marketplace.constants import (
    AMOUNT_DECIMAL_PLACES,
    CURRENCIES,
    HELD_STATUSES,
    MAX_AMOUNT_DIGITS,
    AccessMode,
    BillingInterval,
    EntitlementScope,
    EntitlementStatus,
    IdempotencyState,
    ListingStatus,
    PlanStatus,
    PricingModel,
    PurchaseKind,
    PurchaseStatus,
    UsageUnit,
)


def _in(field: str, values: list[str] | tuple[str, ...]) -> Q:
    return Q(**{f"{field}__in": list(values)})


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=MAX_AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


class Publisher(models.Model):
    """Who offers listings (a model vendor, an internal team). ``verified`` is set by hub staff."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    website = models.URLField(max_length=500, blank=True)
    verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Listing(models.Model):
    """A catalog model offered in the marketplace: one listing per model (the routes' ``modelId``).

    ``popularity`` (entitlements ever granted) and ``avg_rating``/``review_count`` are
    denormalised by the services so list filters and sorts run in SQL.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.OneToOneField("catalog.ModelRegistry", on_delete=models.PROTECT, related_name="listing")
    publisher = models.ForeignKey(Publisher, on_delete=models.PROTECT, related_name="listings")
    summary = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=100, blank=True)
    access_mode = models.CharField(max_length=24, choices=AccessMode.choices, default=AccessMode.OPEN)
    status = models.CharField(max_length=16, choices=ListingStatus.choices, default=ListingStatus.DRAFT)
    current_terms = models.ForeignKey(
        "LicenceTerms", on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    popularity = models.PositiveIntegerField(default=0, editable=False)
    avg_rating = models.FloatField(null=True, blank=True, editable=False)
    review_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    delisted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-published_at", "-created_at"]
        constraints = [
            models.CheckConstraint(condition=_in("access_mode", AccessMode.values), name="mkt_listing_access_valid"),
            models.CheckConstraint(condition=_in("status", ListingStatus.values), name="mkt_listing_status_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "-popularity"], name="mkt_listing_status_pop_idx"),
            models.Index(fields=["category"], name="mkt_listing_category_idx"),
        ]

    def __str__(self) -> str:
        return f"listing of {self.model_id} ({self.status})"


class LicenceTerms(models.Model):
    """One version of a listing's licence terms. Published when created and never changed after:
    a change is a new version. ``content_hash`` is the SHA-256 of ``body`` (what a buyer accepted)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="terms")
    version = models.PositiveIntegerField()
    licence = models.CharField(max_length=100, help_text="An SPDX id or a short name, e.g. apache-2.0, proprietary.")
    title = models.CharField(max_length=200)
    body = models.TextField(max_length=100_000)
    content_hash = models.CharField(max_length=64, editable=False)
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["listing", "-version"]
        verbose_name_plural = "licence terms"
        constraints = [
            models.UniqueConstraint(fields=["listing", "version"], name="mkt_terms_listing_version_unique"),
            models.CheckConstraint(condition=Q(version__gte=1), name="mkt_terms_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValidationError("Published licence terms are immutable; publish a new version.")
        super().save(*args, **kwargs)


class Plan(models.Model):
    """A way to buy a listing. A plan that has been sold is never edited: a price change is a new
    plan (``replaces`` the old one, which is retired)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="plans")
    name = models.CharField(max_length=100)
    pricing_model = models.CharField(max_length=16, choices=PricingModel.choices)
    amount = _money()
    currency = models.CharField(max_length=3, default="USD")
    interval = models.CharField(max_length=8, choices=BillingInterval.choices, blank=True)
    unit = models.CharField(max_length=12, choices=UsageUnit.choices, blank=True)
    status = models.CharField(max_length=8, choices=PlanStatus.choices, default=PlanStatus.ACTIVE)
    replaces = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaced_by")
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["listing", "amount", "created_at"]
        constraints = [
            models.CheckConstraint(condition=_in("pricing_model", PricingModel.values), name="mkt_plan_model_valid"),
            models.CheckConstraint(condition=_in("currency", CURRENCIES), name="mkt_plan_currency_valid"),
            models.CheckConstraint(condition=_in("status", PlanStatus.values), name="mkt_plan_status_valid"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="mkt_plan_amount_non_negative"),
            models.CheckConstraint(
                condition=~Q(pricing_model=PricingModel.FREE) | Q(amount=0), name="mkt_plan_free_is_zero"
            ),
            models.CheckConstraint(
                condition=(Q(pricing_model=PricingModel.SUBSCRIPTION) & _in("interval", BillingInterval.values))
                | (~Q(pricing_model=PricingModel.SUBSCRIPTION) & Q(interval="")),
                name="mkt_plan_interval_iff_subscription",
            ),
            models.CheckConstraint(
                condition=(Q(pricing_model=PricingModel.USAGE) & _in("unit", UsageUnit.values))
                | (~Q(pricing_model=PricingModel.USAGE) & Q(unit="")),
                name="mkt_plan_unit_iff_usage",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.pricing_model} {self.amount} {self.currency})"

    PRICE_FIELDS = ("listing_id", "pricing_model", "amount", "currency", "interval", "unit")

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values(*self.PRICE_FIELDS).first()
            if stored is not None and any(stored[f] != getattr(self, f) for f in self.PRICE_FIELDS):
                raise ValidationError("A plan's price is never edited: create a new plan that replaces it.")
        super().save(*args, **kwargs)

    @property
    def is_paid(self) -> bool:
        return self.pricing_model != PricingModel.FREE and self.amount > 0


class Entitlement(models.Model):
    """The right to use (deploy) a listed model: held by one user, or hub-wide (bought by an admin or
    manager for everyone). ``holder`` is ``user:<id>`` or ``hub``; at most one pending-or-active
    entitlement per (holder, listing) - a partial unique constraint, so two concurrent purchases
    cannot both succeed.

    ``ended_at`` is when it stopped counting (cancelled, expired, revoked, refunded, rejected):
    running deployments are stopped a grace period after it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    listing = models.ForeignKey(Listing, on_delete=models.PROTECT, related_name="entitlements")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="entitlements")
    terms = models.ForeignKey(LicenceTerms, on_delete=models.PROTECT, related_name="entitlements")
    scope = models.CharField(max_length=8, choices=EntitlementScope.choices, default=EntitlementScope.USER)
    holder = models.CharField(max_length=64, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="entitlements", help_text="Who acquired it."
    )
    status = models.CharField(max_length=12, choices=EntitlementStatus.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    status_reason = models.CharField(max_length=500, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["holder", "listing"],
                condition=_in("status", HELD_STATUSES),
                name="mkt_one_held_entitlement_per_holder",
                violation_error_message="An active or pending entitlement to this listing is already held.",
            ),
            models.CheckConstraint(condition=_in("status", EntitlementStatus.values), name="mkt_ent_status_valid"),
            models.CheckConstraint(condition=_in("scope", EntitlementScope.values), name="mkt_ent_scope_valid"),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="mkt_ent_user_idx"),
            models.Index(fields=["status", "period_end"], name="mkt_ent_status_end_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.holder} -> {self.listing_id} ({self.status})"


class Purchase(models.Model):
    """A recorded payment (or free acquisition) for an entitlement: the price and terms as accepted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="purchases")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="purchases")
    terms = models.ForeignKey(LicenceTerms, on_delete=models.PROTECT, related_name="purchases")
    terms_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=PurchaseKind.choices, default=PurchaseKind.INITIAL)
    amount = _money()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=12, choices=PurchaseStatus.choices, default=PurchaseStatus.COMPLETED)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    refunded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    refund_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="mkt_purchase_amount_non_negative"),
            models.CheckConstraint(condition=_in("status", PurchaseStatus.values), name="mkt_purchase_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.amount} {self.currency} ({self.status})"


class Review(models.Model):
    """A rating (1-5) and text from a user who holds or held an entitlement; one per user and listing."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="marketplace_reviews")
    rating = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField(max_length=5000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["listing", "user"], name="mkt_review_one_per_user"),
            models.CheckConstraint(condition=Q(rating__gte=1, rating__lte=5), name="mkt_review_rating_range"),
        ]

    def __str__(self) -> str:
        return f"{self.rating}/5 by {self.user_id}"


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` a user sent with a purchase: the request's fingerprint, whether it is
    still running, and the answer to replay. Purged ``expires_at`` (24 h after creation)."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=IdempotencyState.choices, default=IdempotencyState.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The answer's JSON as text, not jsonb: a replay must be byte-for-byte the first answer (jsonb
    # would reorder the keys).
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    locked_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="mkt_idempotency_user_key_unique"),
            models.CheckConstraint(condition=_in("state", IdempotencyState.values), name="mkt_idem_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} ({self.state})"
