"""The gateway's own rows: hub API keys for programs, and the credentials of the providers it calls."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from catalog.constants import Provider


class ApiKey(models.Model):
    """A hub API key: a program's credential, acting with its owner's role.

    The secret (``mh_<prefix>_<random>``) is shown once, at creation; the hub keeps its
    SHA-256 (the secret carries 256 bits of randomness, so a slow password hash adds nothing)
    and the visible ``prefix``. ``deployment_ids`` empty means every deployment the owner may
    call; otherwise only those. A key past ``expires_at`` or with ``revoked_at`` set is refused.
    ``last_used_at`` is written by the usage drain (at most once per drain per key), not by
    the request path.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    deployment_ids = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["owner", "created_at"], name="gateway_apikey_owner_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Adapter(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic Messages"
    SIMULATED = "simulated", "Simulated provider (no network)"


class ProviderCredential(models.Model):
    """How the gateway reaches one provider's API (deployments that name no host of their own).

    The API key is either stored encrypted (Fernet, key from ``GATEWAY_CREDENTIALS_KEY`` or
    derived from ``SECRET_KEY``) or referenced by the name of an environment variable that
    holds it; it is never returned by any API. ``adapter = simulated`` answers from the
    built-in simulated provider and needs neither.
    """

    provider = models.CharField(max_length=16, choices=Provider.choices, unique=True)
    adapter = models.CharField(max_length=16, choices=Adapter.choices)
    base_url = models.CharField(
        max_length=500, blank=True, help_text="Blank: the provider's public API (OpenAI, Anthropic, Google)."
    )
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of an environment variable holding the key (instead of storing it)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider"]
        constraints = [
            models.CheckConstraint(condition=Q(provider__in=Provider.values), name="gateway_credential_provider_valid"),
            models.CheckConstraint(condition=Q(adapter__in=Adapter.values), name="gateway_credential_adapter_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} via {self.get_adapter_display()}"
