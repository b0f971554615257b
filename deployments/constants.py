"""Deployment enums other apps use: a declared public module (no models here)."""

from __future__ import annotations

from django.db import models


class Environment(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
