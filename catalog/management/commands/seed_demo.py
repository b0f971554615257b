"""``python manage.py seed_demo``: demo users (one per role) and a realistic catalog. Idempotent."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from catalog import services
from catalog.demo import DEMO_MODELS, DEMO_USERS
from catalog.models import ModelRegistry
from modelhub.accounts import services as account_services
from modelhub.accounts.models import User


class Command(BaseCommand):
    help = "Create one demo user per role and register the demo catalog (safe to run again)."

    def handle(self, *args, **options) -> None:
        password = settings.DEMO_PASSWORD or secrets.token_urlsafe(12)
        admin = None
        created_users = 0
        for username, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = account_services.user_create(
                    actor=None, username=username, password=password, role=role, email=f"{username}@example.com"
                )
                created_users += 1
            if role == "admin":
                admin = user
        created_models = 0
        for spec in DEMO_MODELS:
            if not ModelRegistry.objects.filter(name=spec["name"], version=spec["version"]).exists():
                services.model_register(actor=admin, **spec)
                created_models += 1
        # The apps above the catalog add theirs (marketplace listings, ...) through the registry.
        services.DEMO_SEEDED.notify(admin=admin, stdout=self.stdout)
        self.stdout.write(
            f"seed_demo: {created_users} user(s) and {created_models} model(s) created "
            f"({User.objects.count()} users, {ModelRegistry.objects.count()} models in total)."
        )
        if created_users:
            self.stdout.write(f"Demo users {', '.join(u for u, _ in DEMO_USERS)} have the password: {password}")
