"""Publishers, listings, licence terms and plans (``marketplace.manage``)."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from catalog import selectors as catalog_selectors
from marketplace.constants import (
    AccessMode,
    ListingStatus,
    PlanStatus,
    PricingModel,
)
from marketplace.models import LicenceTerms, Listing, Plan, Publisher
from modelhub.api.exceptions import Conflict, ErrorCode, InvalidRequest, NotFound

# --- Publishers, listings, terms, plans (marketplace.manage) --------------------------------------


@transaction.atomic
def publisher_get_or_create(*, name: str, website: str = "", verified: bool | None = None) -> Publisher:
    publisher, created = Publisher.objects.get_or_create(name=name.strip(), defaults={"website": website})
    if verified is not None and publisher.verified != verified:
        publisher.verified = verified
        publisher.save(update_fields=["verified"])
    return publisher


@transaction.atomic
def listing_create(
    *,
    actor: Any,
    model_id: Any,
    publisher_name: str,
    summary: str = "",
    category: str = "",
    access_mode: str = AccessMode.OPEN,
) -> Listing:
    """A draft listing of a catalog model (one listing per model: 409 for a second)."""
    model = catalog_selectors.model_by_id(model_id)
    if model is None:
        raise NotFound(
            f"Model {model_id} not found.", code=ErrorCode.MODEL_NOT_FOUND, details={"modelId": str(model_id)}
        )
    if Listing.objects.filter(model=model).exists():
        raise Conflict("This model already has a listing.", details={"modelId": str(model.pk)})
    publisher = publisher_get_or_create(name=publisher_name)
    try:
        with transaction.atomic():
            return Listing.objects.create(
                model=model,
                publisher=publisher,
                summary=summary,
                category=category or model.category,
                access_mode=access_mode,
            )
    except IntegrityError:
        raise Conflict("This model already has a listing.", details={"modelId": str(model.pk)}) from None


@transaction.atomic
def listing_update(*, listing: Listing, actor: Any, **fields: Any) -> Listing:
    """Change summary, category, access mode or publisher (``publisher_name``); anything else is fixed."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    if "publisher_name" in fields:
        locked.publisher = publisher_get_or_create(name=fields.pop("publisher_name"))
    for name in ("summary", "category", "access_mode"):
        if name in fields:
            setattr(locked, name, fields.pop(name))
    if fields:
        raise InvalidRequest(f"Unknown listing fields: {', '.join(sorted(fields))}.")
    locked.save()
    return locked


@transaction.atomic
def listing_publish(*, listing: Listing, actor: Any) -> Listing:
    """draft or delisted -> published; needs licence terms and at least one plan on sale."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    problems = []
    if locked.current_terms_id is None:
        problems.append("Publish licence terms first.")
    if not locked.plans.filter(status=PlanStatus.ACTIVE).exists():
        problems.append("Add a plan first.")
    if problems:
        raise Conflict(" ".join(problems), details={"currentStatus": locked.status, "missing": problems})
    if locked.status != ListingStatus.PUBLISHED:
        locked.status = ListingStatus.PUBLISHED
        locked.published_at = locked.published_at or timezone.now()
        locked.delisted_at = None
        locked.save()
    return locked


@transaction.atomic
def listing_delist(*, listing: Listing, actor: Any) -> Listing:
    """published -> delisted: no new purchases; entitlements already held keep counting."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    if locked.status == ListingStatus.DRAFT:
        raise Conflict("A draft listing is not listed.", details={"currentStatus": locked.status})
    if locked.status != ListingStatus.DELISTED:
        locked.status = ListingStatus.DELISTED
        locked.delisted_at = timezone.now()
        locked.save()
    return locked


def terms_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@transaction.atomic
def terms_publish(*, listing: Listing, actor: Any, licence: str, title: str, body: str) -> LicenceTerms:
    """A new version of the listing's licence terms, current at once; earlier versions stay as they were
    (buyers accepted them). Publishing the same text as the current version changes nothing."""
    locked = Listing.objects.select_for_update(of=("self",)).select_related("current_terms").get(pk=listing.pk)
    digest = terms_hash(body)
    current = locked.current_terms
    if current is not None and current.content_hash == digest and current.licence == licence and current.title == title:
        return current
    version = (locked.terms.aggregate(v=Max("version"))["v"] or 0) + 1
    terms = LicenceTerms.objects.create(
        listing=locked, version=version, licence=licence, title=title, body=body, content_hash=digest
    )
    locked.current_terms = terms
    locked.save(update_fields=["current_terms", "updated_at"])
    return terms


def _check_plan_shape(pricing_model: str, amount: Decimal, interval: str, unit: str) -> None:
    fields: dict[str, list[str]] = {}
    if pricing_model == PricingModel.FREE and amount != 0:
        fields["price.amount"] = ["A free plan costs 0."]
    if pricing_model != PricingModel.FREE and amount <= 0:
        fields["price.amount"] = ["A paid plan costs more than 0."]
    if (pricing_model == PricingModel.SUBSCRIPTION) != bool(interval):
        fields["interval"] = ["Required for subscription plans, and only for them."]
    if (pricing_model == PricingModel.USAGE) != bool(unit):
        fields["unit"] = ["Required for usage plans, and only for them."]
    if fields:
        raise InvalidRequest(f"The plan is invalid: {', '.join(sorted(fields))}.", details={"fields": fields})


@transaction.atomic
def plan_create(
    *,
    listing: Listing,
    actor: Any,
    name: str,
    pricing_model: str,
    amount: Decimal,
    currency: str,
    interval: str = "",
    unit: str = "",
    replaces_plan_id: Any = None,
) -> Plan:
    """A new plan on sale. With ``replaces_plan_id`` it is the price change of that plan: the old one
    is retired (holders keep it; new buyers get this one)."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    _check_plan_shape(pricing_model, amount, interval, unit)
    replaced = None
    if replaces_plan_id is not None:
        replaced = Plan.objects.select_for_update().filter(pk=replaces_plan_id, listing=locked).first()
        if replaced is None:
            raise InvalidRequest(
                "replacesPlanId is not a plan of this listing.",
                details={"fields": {"replacesPlanId": ["Not a plan of this listing."]}},
            )
        if replaced.status != PlanStatus.ACTIVE:
            raise Conflict("That plan is already retired.", details={"planId": str(replaced.pk)})
        replaced.status = PlanStatus.RETIRED
        replaced.retired_at = timezone.now()
        replaced.save(update_fields=["status", "retired_at"])
    return Plan.objects.create(
        listing=locked,
        name=name,
        pricing_model=pricing_model,
        amount=amount,
        currency=currency,
        interval=interval,
        unit=unit,
        replaces=replaced,
    )


@transaction.atomic
def plan_retire(*, plan: Plan, actor: Any) -> Plan:
    """Take a plan off sale (idempotent); entitlements on it keep their terms."""
    Plan.objects.filter(pk=plan.pk, status=PlanStatus.ACTIVE).update(
        status=PlanStatus.RETIRED, retired_at=timezone.now()
    )
    plan.refresh_from_db()
    return plan
