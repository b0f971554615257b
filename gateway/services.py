"""The gateway's writes and lookups: hub API keys, provider credentials, and the routes of deployments.

Keys: :func:`api_key_create` returns the secret once; only its SHA-256 is stored. Both the DRF
authentication (``POST /analytics/events``) and the gateway resolve a secret with
:func:`authenticate_api_key`; the gateway keeps a resolved key :data:`KEY_CACHE_SECONDS` in
process memory (a revocation is immediate in the process that revokes, and at most that long
elsewhere).

Credentials: :func:`credential_set_key` encrypts with Fernet (``cryptography``); the key comes
from ``GATEWAY_CREDENTIALS_KEY`` (a Fernet key) or is derived from ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from gateway.models import Adapter, ApiKey, ProviderCredential
from modelhub.api.authentication import API_KEY_PREFIX
from modelhub.api.exceptions import AppError, ErrorCode

MAX_KEYS_PER_USER = 100
MAX_KEY_DEPLOYMENTS = 100
KEY_CACHE_SECONDS = 5.0
LAST_USED_RESOLUTION_SECONDS = 60


class ApiKeyLimitExceeded(AppError):
    status_code = 409
    code = ErrorCode.INVALID_REQUEST
    default_message = f"At most {MAX_KEYS_PER_USER} active API keys per user."


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    prefix = secrets.token_hex(4)  # 8 hex digits: visible, unique (retried on the rare clash)
    return prefix, f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def api_key_create(
    *, owner: Any, name: str, deployment_ids: Iterable[Any] = (), expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``owner``; returns the row and the secret (shown once, never stored)."""
    ids = sorted({str(uuid.UUID(str(d))) for d in deployment_ids})
    if len(ids) > MAX_KEY_DEPLOYMENTS:
        raise AppError(f"At most {MAX_KEY_DEPLOYMENTS} deployments per key.", code=ErrorCode.INVALID_PARAMETER)
    if expires_at is not None and expires_at <= timezone.now():
        raise AppError("expiresAt must be in the future.", code=ErrorCode.INVALID_PARAMETER)
    with transaction.atomic():
        active = ApiKey.objects.select_for_update().filter(owner=owner, revoked_at__isnull=True)
        if len(list(active.values_list("pk", flat=True))) >= MAX_KEYS_PER_USER:
            raise ApiKeyLimitExceeded()
        for _ in range(5):
            prefix, secret = _new_secret()
            if not ApiKey.objects.filter(prefix=prefix).exists():
                break
        key = ApiKey.objects.create(
            owner=owner,
            name=name,
            prefix=prefix,
            secret_hash=hash_secret(secret),
            deployment_ids=ids,
            expires_at=expires_at,
        )
    return key, secret


def api_key_revoke(key: ApiKey) -> ApiKey:
    """Revoke (idempotent: a revoked key keeps its first revocation time)."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db()
    key_cache.forget(key.secret_hash)
    return key


def key_problem(key: ApiKey, now: datetime | None = None) -> str | None:
    """Why ``key`` may not be used now (None when it may)."""
    now = now or timezone.now()
    if key.revoked_at is not None:
        return "This API key has been revoked."
    if key.expires_at is not None and key.expires_at <= now:
        return "This API key has expired."
    if not key.owner.is_active:
        return "The owner of this API key is deactivated."
    return None


def authenticate_api_key(secret: str) -> tuple[Any, ApiKey] | None:
    """DRF's resolver (the ``API_KEYS`` slot): ``(owner, key)``, None when unknown, raises when refused."""
    key = ApiKey.objects.select_related("owner").filter(secret_hash=hash_secret(secret)).first()
    if key is None:
        return None
    problem = key_problem(key)
    if problem:
        raise AuthenticationFailed(problem)
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        # at most one write per key per minute on this path (the gateway's calls are counted by the drain)
        ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gte=now).update(last_used_at=now)
    return key.owner, key


class _KeyCache:
    """secret hash -> (expires, ApiKey with owner, or None for unknown), for the gateway's hot path."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, secret_hash: str) -> tuple[bool, ApiKey | None]:
        entry = self._entries.get(secret_hash)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put(self, secret_hash: str, key: ApiKey | None) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[secret_hash] = (time.monotonic() + KEY_CACHE_SECONDS, key)

    def forget(self, secret_hash: str) -> None:
        with self._lock:
            self._entries.pop(secret_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


key_cache = _KeyCache()


def find_api_key(secret: str) -> ApiKey | None:
    """The key (with its owner) for ``secret``, cached; None when unknown. Validity is the caller's check."""
    digest = hash_secret(secret)
    hit, key = key_cache.get(digest)
    if not hit:
        key = ApiKey.objects.select_related("owner").filter(secret_hash=digest).first()
        key_cache.put(digest, key)
    return key


def touch_api_keys(last_used: dict[str, datetime]) -> None:
    """Record ``lastUsedAt`` (the usage drain calls this once per batch); never moves a time backwards."""
    for key_id, when in last_used.items():
        ApiKey.objects.filter(pk=key_id).exclude(last_used_at__gte=when).update(last_used_at=when)


# --- provider credentials ------------------------------------------------------------------


def _fernet() -> Fernet:
    configured = getattr(settings, "GATEWAY_CREDENTIALS_KEY", "")
    if configured:
        return Fernet(configured.encode())
    derived = hashlib.sha256(b"modelhub.gateway.credentials:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def credential_set_key(credential: ProviderCredential, api_key: str) -> None:
    """Store ``api_key`` encrypted (an empty string clears it); the caller saves the row."""
    credential.api_key_encrypted = _fernet().encrypt(api_key.encode()).decode() if api_key else ""


def credential_api_key(credential: ProviderCredential) -> str:
    """The provider API key in clear, from the environment variable or the encrypted column ('' if none)."""
    if credential.api_key_env:
        return os.environ.get(credential.api_key_env, "")
    if not credential.api_key_encrypted:
        return ""
    try:
        return _fernet().decrypt(credential.api_key_encrypted.encode()).decode()
    except InvalidToken:
        return ""  # the key was rotated: the credential must be entered again (the admin says so)


def ensure_simulated_credentials() -> int:
    """The embedded default: every provider without a credential answers from the simulated provider."""
    from catalog.constants import Provider

    created = 0
    for provider in Provider.values:
        _, made = ProviderCredential.objects.get_or_create(provider=provider, defaults={"adapter": Adapter.SIMULATED})
        created += made
    return created


def forget_route(*_args: Any, **_kwargs: Any) -> None:
    """A deployment changed (the ``DEPLOYMENT_CHANGED`` slot): drop this process's cached routes."""
    from gateway.routes import route_cache

    route_cache.clear()
