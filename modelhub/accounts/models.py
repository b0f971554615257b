"""The hub's user: Django's user with a UUID id and a role from the role matrix."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models

from modelhub.roles import Role


class UserManager(DjangoUserManager):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        extra_fields.setdefault("role", Role.ADMIN)
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    """A person who signs in to the hub; what they may do follows from ``role``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER, db_index=True)

    objects = UserManager()

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username


class RateLimitOverride(models.Model):
    """An admin's override of one user's rate limits; NULL fields keep the role default.

    ``endpoints`` maps ``"METHOD /path"`` (as in ``"GET /models/{id}"``) to
    ``{"requestsPerMinute": n, "burstLimit": n}``; it is merged over the role's.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="rate_limit_override")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    burst_limit = models.PositiveIntegerField(null=True, blank=True)
    endpoints = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = "rate-limit override"
        constraints = [
            models.CheckConstraint(
                condition=(
                    (models.Q(requests_per_minute__isnull=True) | models.Q(requests_per_minute__gte=1))
                    & (models.Q(requests_per_hour__isnull=True) | models.Q(requests_per_hour__gte=1))
                    & (models.Q(requests_per_day__isnull=True) | models.Q(requests_per_day__gte=1))
                    & (models.Q(burst_limit__isnull=True) | models.Q(burst_limit__gte=1))
                ),
                name="accounts_ratelimit_positive",
            )
        ]

    def __str__(self) -> str:
        return f"rate limits of {self.user}"
