from django.db.models import Q, QuerySet

from modelhub.accounts.models import User
from modelhub.api.filters import FastFilterSet, ListFilter, SearchFilter, StrictBooleanFilter
from modelhub.roles import Role


class UserFilterSet(FastFilterSet):
    role = ListFilter(field_name="role", choices=Role.values)
    isActive = StrictBooleanFilter(field_name="is_active")
    search = SearchFilter(method="filter_search", max_length=150)

    class Meta:
        model = User
        fields: list[str] = []

    def filter_search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.filter(Q(username__icontains=value) | Q(email__icontains=value)) if value.strip() else qs
