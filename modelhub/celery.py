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
