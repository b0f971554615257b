"""The console's pages in menu order, each with the permission the API needs to read it."""

from __future__ import annotations

from dataclasses import dataclass

from modelhub.roles import has_permission


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    url_name: str
    permission: str


NAV: tuple[Page, ...] = (
    Page("dashboard", "Dashboard", "console:dashboard", "analytics.read"),
    Page("models", "Models", "console:models", "models.read"),
    Page("deployments", "Deployments", "console:deployments", "deployments.read"),
    Page("experiments", "Experiments", "console:experiments", "experiments.read"),
    Page("costs", "Costs", "console:costs", "costs.read"),
    Page("marketplace", "Marketplace", "console:marketplace", "marketplace.read"),
    Page("alerts", "Alerts", "console:alerts", "analytics.read"),
)


def allowed_pages(role: str | None) -> list[Page]:
    """The pages ``role`` may read, in menu order (the menu shows only these)."""
    return [page for page in NAV if has_permission(role, page.permission)]
