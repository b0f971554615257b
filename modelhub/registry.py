"""Extension points: how a lower app shows or reacts to what a higher app owns, without importing it.

The apps stand in one row (``catalog`` <- ``marketplace`` <- ``deployments`` <- ``analytics`` <- ...)
and import only to their left. When a lower app needs something a higher one owns - the model
detail's deployments and performance, the dashboard's activity from later apps, "a deployment
changed" for the dashboard - the lower app declares a :class:`Slot` in its ``selectors`` or
``services`` and calls it; the higher app registers a provider in its ``AppConfig.ready()``, the
same way OpenAPI links are registered (:func:`modelhub.api.schema.register_links`).

Providers run in registration order, which is ``INSTALLED_APPS`` order - the layer row - so a
provider sees what the providers of lower apps contributed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Provider = Callable[..., Any]


class Slot:
    """A named list of providers; registering the same function twice keeps one."""

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.__doc__ = doc
        self._providers: list[Provider] = []

    def register(self, provider: Provider) -> Provider:
        """Add ``provider`` (idempotent: ``ready()`` may run more than once in tests). Usable as a decorator."""
        key = (provider.__module__, provider.__qualname__)
        self._providers = [p for p in self._providers if (p.__module__, p.__qualname__) != key]
        self._providers.append(provider)
        return provider

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._providers)

    def collect(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Every provider's answer, in registration order."""
        return [provider(*args, **kwargs) for provider in self._providers]

    def notify(self, *args: Any, **kwargs: Any) -> None:
        """Call every provider for its effect."""
        for provider in self._providers:
            provider(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Slot {self.name}: {len(self._providers)} provider(s)>"
