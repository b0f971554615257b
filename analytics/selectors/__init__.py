"""Reads of the analytics app, one module per response (the public read surface for views and other apps).

* :mod:`.performance` - ``PerformanceResponse`` / ``PerformanceMetrics`` of a model over a window
* :mod:`.usage` - the model detail's ``usage`` and per-deployment ``lastUsed``
* :mod:`.dashboard` - ``DashboardResponse``
* :mod:`.alerts` - alerts, the ``alert:new`` payload, the window the alert check judges
* :mod:`.costs` - spend by day from the 1d buckets, and the raw aggregates of the costs app's opportunities
"""

from analytics.selectors.alerts import alert_event, alert_queryset, recent_window_by_model
from analytics.selectors.costs import cost_by_day, cost_by_reservation, cost_day_stats
from analytics.selectors.dashboard import ACTIVITY, dashboard, open_alerts, recent_activity
from analytics.selectors.performance import load_series, performance, performance_metrics, performance_window
from analytics.selectors.usage import last_used_by_deployment, model_usage, refresh_unique_users, unique_users

__all__ = [
    "ACTIVITY",
    "alert_event",
    "alert_queryset",
    "cost_by_day",
    "cost_by_reservation",
    "cost_day_stats",
    "dashboard",
    "last_used_by_deployment",
    "load_series",
    "model_usage",
    "open_alerts",
    "performance",
    "performance_metrics",
    "performance_window",
    "recent_activity",
    "recent_window_by_model",
    "refresh_unique_users",
    "unique_users",
]
