"""Marketplace request bodies and query parameters (strict), and the response shapes for OpenAPI.

Answers are built as plain data by :mod:`marketplace.selectors` (``listing_data``,
``entitlement_data``, ...) - the realtime event and the stored idempotent answers reuse them - and
the output serializers below declare exactly those shapes; ``tests/marketplace`` validates real
answers against the OpenAPI schema generated from them.
"""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from marketplace.constants import (
    CURRENCIES,
    AccessMode,
    BillingInterval,
    EntitlementScope,
    EntitlementStatus,
    ListingStatus,
    PlanStatus,
    PricingModel,
    PurchaseKind,
    PurchaseStatus,
    UsageUnit,
)
from modelhub.api.fields import EnumField
from modelhub.api.params import QuerySerializer
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictCharField, StrictInputSerializer, StrictRegexField

AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,7})(\.[0-9]{1,6})?$"
NO_NUL = r"^[^\u0000]*$"

# --- Inputs ------------------------------------------------------------------------------------


class MoneyInputSerializer(StrictInputSerializer):
    amount = StrictRegexField(
        AMOUNT_PATTERN, max_length=16, help_text='A decimal string, e.g. "20.00" (at most 6 decimal places).'
    )
    currency = EnumField(choices=list(CURRENCIES))

    class Meta:
        ref_name = "MarketplaceMoneyInput"

    def validate(self, attrs: dict) -> dict:
        return {**attrs, "amount_decimal": Decimal(attrs["amount"])}


class PurchaseRequestSerializer(StrictInputSerializer):
    planId = serializers.UUIDField()
    termsVersion = serializers.IntegerField(min_value=1, max_value=1_000_000)
    expectedPrice = MoneyInputSerializer()
    scope = EnumField(choices=EntitlementScope.choices, required=False, default=EntitlementScope.USER)


class ListingCreateSerializer(StrictInputSerializer):
    modelId = serializers.UUIDField()
    publisher = StrictRegexField(r"^\S(.*\S)?$", max_length=200)
    summary = StrictCharField(max_length=500, required=False, allow_blank=True, default="")
    category = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    accessMode = EnumField(choices=AccessMode.choices, required=False, default=AccessMode.OPEN)


class ListingUpdateSerializer(StrictInputSerializer):
    publisher = StrictRegexField(r"^\S(.*\S)?$", max_length=200, required=False)
    summary = StrictCharField(max_length=500, required=False, allow_blank=True)
    category = StrictCharField(max_length=100, required=False, allow_blank=True)
    accessMode = EnumField(choices=AccessMode.choices, required=False)


class TermsCreateSerializer(StrictInputSerializer):
    licence = StrictRegexField(r"^\S(.*\S)?$", max_length=100)
    title = StrictRegexField(r"^\S(.*\S)?$", max_length=200)
    body = StrictRegexField(NO_NUL, max_length=100_000, min_length=1)


class PlanCreateSerializer(StrictInputSerializer):
    name = StrictRegexField(r"^\S(.*\S)?$", max_length=100)
    pricingModel = EnumField(choices=PricingModel.choices)
    price = MoneyInputSerializer()
    interval = EnumField(choices=BillingInterval.choices, required=False)
    unit = EnumField(choices=UsageUnit.choices, required=False)
    replacesPlanId = serializers.UUIDField(required=False)


class DecisionSerializer(StrictInputSerializer):
    reason = StrictRegexField(NO_NUL, max_length=500, required=False, allow_blank=True, default="")


class ReviewInputSerializer(StrictInputSerializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    title = StrictRegexField(NO_NUL, max_length=200, required=False, allow_blank=True, default="")
    body = StrictRegexField(NO_NUL, max_length=5000, required=False, allow_blank=True, default="")


# Comma-separated values, each trimmed when split (``marketplace.selectors.listings._split``): the field keeps
# the text as given, so a value of only whitespace (``\x1e`` is whitespace to Python, not to OpenAPI's \s)
# is no filter rather than a blank-field error the schema does not describe.
_LIST = r"^[^\u0000]{1,2000}$"


class ListingQuerySerializer(QuerySerializer):
    """``GET /marketplace/models``: filters AND together; a list parameter is comma-separated and any
    of its values matches."""

    search = StrictRegexField(NO_NUL, max_length=200, required=False, allow_blank=True)
    provider = StrictRegexField(_LIST, required=False, trim_whitespace=False, help_text="Comma-separated providers.")
    modelType = StrictRegexField(_LIST, required=False, trim_whitespace=False, help_text="Comma-separated model types.")
    category = StrictRegexField(_LIST, required=False, trim_whitespace=False, help_text="Comma-separated categories.")
    pricingModel = StrictRegexField(
        _LIST, required=False, trim_whitespace=False, help_text="Comma-separated: free, one_time, subscription, usage."
    )
    licence = StrictRegexField(
        _LIST, required=False, trim_whitespace=False, help_text="Comma-separated licence ids of the current terms."
    )
    minRating = serializers.FloatField(min_value=0, max_value=5, required=False)
    sortBy = EnumField(choices=["popularity", "rating", "price", "newest"], required=False)
    sortOrder = EnumField(choices=["asc", "desc"], required=False)
    page = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False)


class PageQuerySerializer(QuerySerializer):
    page = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False)


class EntitlementQuerySerializer(PageQuerySerializer):
    status = EnumField(choices=EntitlementStatus.choices, required=False)


class ManagedListingQuerySerializer(PageQuerySerializer):
    status = EnumField(choices=ListingStatus.choices, required=False)


# --- Outputs (the shapes selectors build) ------------------------------------------------------


class MoneySerializer(serializers.Serializer):
    amount = serializers.CharField(help_text="Decimal string.")
    currency = serializers.ChoiceField(choices=list(CURRENCIES))

    class Meta:
        ref_name = "MarketplaceMoney"


class PlanSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    pricingModel = serializers.ChoiceField(choices=PricingModel.choices)
    price = MoneySerializer(help_text="For usage plans: per `unit`.")
    interval = serializers.ChoiceField(choices=BillingInterval.choices, allow_null=True)
    unit = serializers.ChoiceField(choices=UsageUnit.choices, allow_null=True)
    status = serializers.ChoiceField(choices=PlanStatus.choices)
    replacesPlanId = serializers.UUIDField(allow_null=True)
    createdAt = serializers.DateTimeField()

    class Meta:
        ref_name = "MarketplacePlan"


class TermsSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    licence = serializers.CharField()
    title = serializers.CharField()
    contentHash = serializers.CharField(help_text="SHA-256 of the body, hex.")
    publishedAt = serializers.DateTimeField()
    body = serializers.CharField(required=False, help_text="In the detail only.")

    class Meta:
        ref_name = "MarketplaceTerms"


class _Publisher(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    verified = serializers.BooleanField()

    class Meta:
        ref_name = "MarketplacePublisher"


class _Rating(serializers.Serializer):
    average = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()

    class Meta:
        ref_name = "MarketplaceRating"


class _HeldRef(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=EntitlementStatus.choices)
    scope = serializers.ChoiceField(choices=EntitlementScope.choices)
    planId = serializers.UUIDField()

    class Meta:
        ref_name = "MarketplaceHeldEntitlement"


class _Caller(serializers.Serializer):
    canPurchase = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True, help_text="Why not, when canPurchase is false.")
    canDeploy = serializers.BooleanField(help_text="Whether a deployment of the model would pass the entitlement gate.")
    entitlements = _HeldRef(
        many=True, help_text="Pending or active entitlements that count for the caller (own and hub-wide)."
    )

    class Meta:
        ref_name = "MarketplaceCaller"


class ListingSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The listing's id.")
    modelId = serializers.UUIDField(help_text="The catalog model's id: what the routes take.")
    name = serializers.CharField()
    version = serializers.CharField()
    provider = serializers.CharField()
    modelType = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    summary = serializers.CharField(allow_blank=True)
    category = serializers.CharField(allow_blank=True)
    publisher = _Publisher()
    accessMode = serializers.ChoiceField(choices=AccessMode.choices)
    status = serializers.ChoiceField(choices=ListingStatus.choices)
    terms = TermsSerializer(allow_null=True)
    plans = PlanSerializer(many=True, help_text="Plans on sale.")
    pricingModels = serializers.ListField(child=serializers.ChoiceField(choices=PricingModel.choices))
    startingPrice = MoneySerializer(allow_null=True)
    rating = _Rating()
    popularity = serializers.IntegerField(help_text="Entitlements granted.")
    publishedAt = serializers.DateTimeField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    caller = _Caller(required=False, help_text="What the caller may do and holds (public routes).")


class ListingEnvelopeSerializer(serializers.Serializer):
    listing = ListingSerializer()


@extend_schema_serializer(many=False)  # a list action's whole answer, not an array of it
class ListingListSerializer(serializers.Serializer):
    listings = ListingSerializer(many=True)
    pagination = PaginationSerializer()


class _Period(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(allow_null=True, help_text="Null: no end (one-time, usage, free).")

    class Meta:
        ref_name = "MarketplacePeriod"


class _Usage(serializers.Serializer):
    since = serializers.DateTimeField(help_text="The hour the current period started.")
    requests = serializers.IntegerField()
    promptTokens = serializers.IntegerField()
    completionTokens = serializers.IntegerField()
    cost = MoneySerializer(help_text="The providers' cost of that traffic (analytics).")
    estimatedCharge = MoneySerializer(allow_null=True, help_text="Usage plans: tokens / unit x price.")

    class Meta:
        ref_name = "MarketplaceEntitlementUsage"


class EntitlementSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    modelId = serializers.UUIDField()
    listingId = serializers.UUIDField()
    modelName = serializers.CharField()
    scope = serializers.ChoiceField(choices=EntitlementScope.choices)
    holder = serializers.CharField(allow_null=True, help_text="The holding user; null for hub-wide.")
    acquiredBy = serializers.CharField()
    status = serializers.ChoiceField(choices=EntitlementStatus.choices)
    statusReason = serializers.CharField(allow_null=True)
    plan = PlanSerializer()
    termsVersion = serializers.IntegerField()
    termsHash = serializers.CharField()
    period = _Period()
    cancelAtPeriodEnd = serializers.BooleanField()
    endedAt = serializers.DateTimeField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    activeDeployments = serializers.IntegerField(required=False, help_text="In my-models: your live deployments of it.")
    usage = _Usage(required=False, allow_null=True, help_text="In my-models: traffic under it since its period began.")


class EntitlementEnvelopeSerializer(serializers.Serializer):
    entitlement = EntitlementSerializer()


@extend_schema_serializer(many=False)  # a list action's whole answer, not an array of it
class EntitlementListSerializer(serializers.Serializer):
    entitlements = EntitlementSerializer(many=True)
    pagination = PaginationSerializer()


class PurchaseSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    entitlementId = serializers.UUIDField()
    modelId = serializers.UUIDField()
    planId = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=PurchaseKind.choices)
    price = MoneySerializer()
    termsVersion = serializers.IntegerField()
    termsHash = serializers.CharField()
    status = serializers.ChoiceField(choices=PurchaseStatus.choices)
    buyer = serializers.CharField()
    createdAt = serializers.DateTimeField()
    refundedAt = serializers.DateTimeField(allow_null=True)


class PurchaseResultSerializer(serializers.Serializer):
    purchase = PurchaseSerializer()
    entitlement = EntitlementSerializer()


class PurchaseEnvelopeSerializer(serializers.Serializer):
    purchase = PurchaseSerializer()


class PlanEnvelopeSerializer(serializers.Serializer):
    plan = PlanSerializer()


class TermsEnvelopeSerializer(serializers.Serializer):
    terms = TermsSerializer()


class ReviewSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    modelId = serializers.UUIDField()
    author = serializers.CharField()
    rating = serializers.IntegerField(min_value=1, max_value=5)
    title = serializers.CharField(allow_blank=True)
    body = serializers.CharField(allow_blank=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()


class ReviewEnvelopeSerializer(serializers.Serializer):
    review = ReviewSerializer()


@extend_schema_serializer(many=False)  # a list action's whole answer, not an array of it
class ReviewListSerializer(serializers.Serializer):
    reviews = ReviewSerializer(many=True)
    pagination = PaginationSerializer()


@extend_schema_serializer(many=False)  # a list action's whole answer, not an array of it
class PurchaseListSerializer(serializers.Serializer):
    purchases = PurchaseSerializer(many=True)
    pagination = PaginationSerializer()
