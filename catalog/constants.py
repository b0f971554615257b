"""The catalog's enums and bounds: a declared public module that apps above may import (no models here)."""

from __future__ import annotations

from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    NEUROWEAVER = "neuroweaver", "NeuroWeaver"
    GOOGLE = "google", "Google"
    CUSTOM = "custom", "Custom"


class ModelType(models.TextChoices):
    TEXT = "text", "Text"
    VISION = "vision", "Vision"
    MULTIMODAL = "multimodal", "Multimodal"
    EMBEDDING = "embedding", "Embedding"
    CODE = "code", "Code"


class ModelStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DEPRECATED = "deprecated", "Deprecated"
    EXPERIMENTAL = "experimental", "Experimental"
    MAINTENANCE = "maintenance", "Maintenance"


class SecurityLevel(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    RESTRICTED = "restricted", "Restricted"
    CONFIDENTIAL = "confidential", "Confidential"


MAX_CONTEXT_WINDOW = 100_000_000
