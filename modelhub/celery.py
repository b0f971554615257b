"""The Celery app: ``celery -A modelhub worker`` / ``celery -A modelhub beat``.

Configured from Django settings under the ``CELERY_`` namespace (broker: Redis
in production, an in-memory transport in the embedded default); tasks are
autodiscovered from each app's ``tasks.py``. Periodic jobs are declared in
``CELERY_BEAT_SCHEDULE`` in settings, one place, each with an expiry.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")

app = Celery("modelhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# --- what every task carries: the request id of the request that queued it, and its metrics ----------
# The request id travels in a message header (set when the task is published, from the request being
# served) and is the log context of the task's run, so a task's log lines join its request's.

from celery import signals  # noqa: E402

_HEADER = "modelhub_request_id"
_started: dict[str, tuple[float, object]] = {}


@signals.before_task_publish.connect
def _carry_request_id(headers=None, **_kwargs) -> None:
    from modelhub.api.request_id import active_request_id

    request_id = active_request_id()
    if headers is not None and request_id:
        headers.setdefault(_HEADER, request_id)


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **_kwargs) -> None:
    import time

    from modelhub.api.request_id import set_request_id

    request_id = getattr(task.request, _HEADER, None) if task is not None else None
    token = set_request_id(request_id) if request_id else None
    _started[task_id] = (time.perf_counter(), token)


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **_kwargs) -> None:
    import time

    from modelhub import metrics
    from modelhub.api.request_id import reset_request_id

    started, token = _started.pop(task_id, (None, None))
    if started is not None and task is not None:
        metrics.task_duration.labels(task.name, state or "UNKNOWN").observe(time.perf_counter() - started)
    if token is not None:
        reset_request_id(token)
