"""ASGI entry point: ``uvicorn modelhub.asgi:application``.

HTTP goes to Django; websocket routes are added by the realtime work (Channels).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs settings loaded)

application = ProtocolTypeRouter({"http": django_asgi_app})
