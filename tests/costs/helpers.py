from __future__ import annotations

from decimal import Decimal

from costs import services


def budget(owner, monthly, *, alerts=None, categories=None, name="test"):
    return services.budget_create(
        actor=owner,
        monthly_budget=Decimal(str(monthly)),
        alerts=alerts if alerts is not None else [{"threshold": 100, "action": "block", "channels": []}],
        categories=categories or {},
        name=name,
    )
