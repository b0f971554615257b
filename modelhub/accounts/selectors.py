"""Reads of users."""

from __future__ import annotations

from django.db.models import QuerySet

from modelhub.accounts.models import User


def user_queryset() -> QuerySet[User]:
    return User.objects.all().order_by("username", "id")
