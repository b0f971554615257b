"""Model Hub project package: settings, URLs, ASGI/WSGI, Celery and the shared API plumbing."""

from modelhub.celery import app as celery_app

__all__ = ("celery_app",)
