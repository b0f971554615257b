"""The marketplace in the Django admin: listings (publish, delist), their terms and plans, purchases
(refund) and entitlements (approve, reject, revoke) - every governance action through the same
services as the API, so the same rules hold. Terms, plans, purchases and entitlements are read-only
here: a new terms version or plan is created through the API (or the listing's inline forms call the
services), never by editing a published or sold row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marketplace import services
from marketplace.models import Entitlement, LicenceTerms, Listing, Plan, Publisher, Purchase, Review
from modelhub.api.admin import RoleMatrixAdminMixin
from modelhub.api.exceptions import AppError


def _run(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, verb: str, call: Callable[[Any], Any]
) -> None:
    done = 0
    for obj in queryset:
        try:
            call(obj)
            done += 1
        except AppError as exc:
            model_admin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    model_admin.message_user(request, f"{done} {verb}.", messages.SUCCESS)


class _ReadOnly(RoleMatrixAdminMixin):
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Every field is read-only: a save changes nothing (changes go through the actions)."""


class TermsInline(RoleMatrixAdminMixin, admin.TabularInline):
    matrix_permissions = {"view": "marketplace.read"}
    model = LicenceTerms
    extra = 0
    can_delete = False
    fields = ("version", "licence", "title", "content_hash", "published_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PlanInline(RoleMatrixAdminMixin, admin.TabularInline):
    matrix_permissions = {"view": "marketplace.read"}
    model = Plan
    fk_name = "listing"
    extra = 0
    can_delete = False
    fields = ("name", "pricing_model", "amount", "currency", "interval", "unit", "status", "replaces", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Publisher)
class PublisherAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    matrix_permissions = {"view": "marketplace.read", "add": "marketplace.manage", "change": "marketplace.manage"}
    list_display = ("name", "verified", "website", "created_at")
    list_filter = ("verified",)
    search_fields = ("name",)


@admin.register(Listing)
class ListingAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    """Listings: publish and delist through the services; summary, category and access mode editable."""

    matrix_permissions = {"view": "marketplace.read", "change": "marketplace.manage"}
    list_display = (
        "model",
        "publisher",
        "status",
        "access_mode",
        "category",
        "popularity",
        "avg_rating",
        "published_at",
    )
    list_filter = ("status", "access_mode", "category", "publisher")
    search_fields = ("model__name", "publisher__name", "summary")
    list_select_related = ("model", "publisher")
    inlines = [TermsInline, PlanInline]
    actions = ["publish", "delist"]
    fields = (
        "model",
        "publisher",
        "summary",
        "category",
        "access_mode",
        "status",
        "current_terms",
        "popularity",
        "avg_rating",
        "review_count",
        "published_at",
        "delisted_at",
    )
    readonly_fields = (
        "model",
        "publisher",
        "status",
        "current_terms",
        "popularity",
        "avg_rating",
        "review_count",
        "published_at",
        "delisted_at",
    )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # listings are created through the API (POST /marketplace/listings)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # delist instead: entitlements refer to it

    def save_model(self, request: HttpRequest, obj: Listing, form: Any, change: bool) -> None:
        fields = {
            name: form.cleaned_data[name]
            for name in ("summary", "category", "access_mode")
            if name in form.changed_data
        }
        if fields:
            services.listing_update(listing=obj, actor=request.user, **fields)

    @admin.action(description="Publish selected listings", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(
            self,
            request,
            queryset,
            "listing(s) published",
            lambda x: services.listing_publish(listing=x, actor=request.user),
        )

    @admin.action(description="Delist selected listings", permissions=["change"])
    def delist(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(
            self,
            request,
            queryset,
            "listing(s) delisted",
            lambda x: services.listing_delist(listing=x, actor=request.user),
        )


@admin.register(LicenceTerms)
class LicenceTermsAdmin(_ReadOnly, admin.ModelAdmin):
    """Published terms are immutable: shown, never changed."""

    matrix_permissions = {"view": "marketplace.read"}
    list_display = ("listing", "version", "licence", "title", "content_hash", "published_at")
    search_fields = ("listing__model__name", "title", "licence")
    list_select_related = ("listing__model",)


@admin.register(Plan)
class PlanAdmin(_ReadOnly, admin.ModelAdmin):
    """Plans are never edited (a price change is a new plan through the API); retire takes one off sale."""

    matrix_permissions = {"view": "marketplace.read", "change": "marketplace.manage"}
    list_display = (
        "listing",
        "name",
        "pricing_model",
        "amount",
        "currency",
        "interval",
        "unit",
        "status",
        "created_at",
    )
    list_filter = ("pricing_model", "status", "currency")
    search_fields = ("listing__model__name", "name")
    list_select_related = ("listing__model",)
    actions = ["retire"]

    @admin.action(description="Retire selected plans (off sale; holders keep them)", permissions=["change"])
    def retire(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(self, request, queryset, "plan(s) retired", lambda x: services.plan_retire(plan=x, actor=request.user))


@admin.register(Purchase)
class PurchaseAdmin(_ReadOnly, admin.ModelAdmin):
    matrix_permissions = {"view": "marketplace.refund", "change": "marketplace.refund"}
    list_display = ("created_at", "user", "plan", "kind", "amount", "currency", "status", "refunded_at")
    list_filter = ("status", "kind", "currency")
    search_fields = ("=id", "user__username", "plan__listing__model__name")
    list_select_related = ("user", "plan__listing__model")
    date_hierarchy = "created_at"
    actions = ["refund"]

    @admin.action(description="Refund selected purchases", permissions=["change"])
    def refund(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(
            self,
            request,
            queryset,
            "purchase(s) refunded",
            lambda x: services.purchase_refund(purchase=x, actor=request.user, reason="Refunded in the admin."),
        )


@admin.register(Entitlement)
class EntitlementAdmin(_ReadOnly, admin.ModelAdmin):
    matrix_permissions = {"view": "marketplace.read", "change": "marketplace.approve"}
    list_display = (
        "created_at",
        "listing",
        "holder",
        "user",
        "scope",
        "status",
        "plan",
        "period_end",
        "cancel_at_period_end",
    )
    list_filter = ("status", "scope")
    search_fields = ("=id", "user__username", "listing__model__name")
    list_select_related = ("listing__model", "user", "plan")
    date_hierarchy = "created_at"
    actions = ["approve", "reject", "revoke"]

    @admin.action(description="Approve selected access requests", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(
            self,
            request,
            queryset,
            "approved",
            lambda x: services.entitlement_approve(entitlement=x, actor=request.user, reason="Approved in the admin."),
        )

    @admin.action(description="Reject selected access requests (refunds what was paid)", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(
            self,
            request,
            queryset,
            "rejected",
            lambda x: services.entitlement_reject(entitlement=x, actor=request.user, reason="Rejected in the admin."),
        )

    @admin.action(description="Revoke selected entitlements", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        _run(
            self,
            request,
            queryset,
            "revoked",
            lambda x: services.entitlement_revoke(entitlement=x, actor=request.user, reason="Revoked in the admin."),
        )


@admin.register(Review)
class ReviewAdmin(_ReadOnly, admin.ModelAdmin):
    matrix_permissions = {"view": "marketplace.read"}
    list_display = ("updated_at", "listing", "user", "rating", "title")
    list_filter = ("rating",)
    search_fields = ("listing__model__name", "user__username", "title")
    list_select_related = ("listing__model", "user")
