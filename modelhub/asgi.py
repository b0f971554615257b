"""ASGI entry point: ``uvicorn modelhub.asgi:application``.

HTTP requests run Django's WSGI handler on a fixed pool of worker threads
(a2wsgi): every view in the hub is synchronous, and Django's ASGI handler would
hop between the event loop and a new thread several times per request (once per
boundary between sync and async middleware, plus a fresh thread per request).
The catalog benchmark measured that at ~4 ms of CPU per request - more than the
whole trivial view costs. Websockets (Channels) keep the ASGI path.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")

django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

http_application = WSGIMiddleware(django_wsgi_app, workers=settings.HTTP_THREADS)

application = ProtocolTypeRouter({"http": http_application})
