"""ASGI entry point: ``uvicorn modelhub.asgi:application``.

HTTP requests run Django's WSGI handler on a fixed pool of worker threads
(a2wsgi, with ordinary responses handed back to the loop in one hop: ``modelhub.wsgi_bridge``): every
view in the hub is synchronous, and Django's ASGI handler would hop between the event loop and a new thread several times per request (once per
boundary between sync and async middleware, plus a fresh thread per request).
The catalog benchmark measured that at ~4 ms of CPU per request - more than the
whole trivial view costs. Websockets (Channels) keep the ASGI path.

Routing by path (one small dispatcher, no framework in between):

* ``/socket.io/...`` (HTTP long-polling and websocket) -> python-socketio (``modelhub.realtime.sio``);
* websocket ``/modelhub/realtime`` or ``/api/v1/modelhub/realtime`` -> the Channels consumer
  (``modelhub.realtime.consumers``), Origin checked first; any other websocket path is refused;
* HTTP under a deployment's ``.../v1/`` (the gateway: ``settings.GATEWAY_ASGI_APPLICATION``, native
  async, so a call that waits seconds for its upstream holds no thread);
* every other HTTP request -> Django on a2wsgi;
* ``lifespan`` -> answered; at startup the URLconf is loaded and the objects of the loaded project are
  frozen out of garbage collection (see ``_freeze_startup_objects``); at shutdown the upstream HTTP session of this loop
  (the gateway's connection pool) is closed, so no connection is left half-open.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")

django_wsgi_app = get_wsgi_application()

from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402

from modelhub import realtime, upstreams  # noqa: E402
from modelhub.realtime.consumers import websocket_application  # noqa: E402
from modelhub.realtime.sio import SOCKETIO_PATH, socketio_application  # noqa: E402
from modelhub.wsgi_bridge import OneHopWSGIMiddleware  # noqa: E402

http_application = OneHopWSGIMiddleware(django_wsgi_app, workers=settings.HTTP_THREADS)

if settings.EMBEDDED_WORKER:  # the embedded default: Celery worker + beat as threads of this process
    from modelhub import embedded

    embedded.start()

# The gateway app is named by a setting (like ROOT_URLCONF), so the project package imports no app.
if settings.GATEWAY_ASGI_APPLICATION:
    from django.utils.module_loading import import_string

    gateway_application = import_string(settings.GATEWAY_ASGI_APPLICATION)
    gateway_handles = import_string(settings.GATEWAY_ASGI_APPLICATION.rsplit(".", 1)[0] + ".handles")
else:  # pragma: no cover - a deployment without the gateway
    gateway_application = gateway_handles = None

WEBSOCKET_PATHS = frozenset({"/modelhub/realtime", "/api/v1/modelhub/realtime"})


_startup_frozen = False


def _freeze_startup_objects() -> None:
    """Import the URL patterns (every view and serializer) now, then move what exists into the garbage
    collector's permanent generation (``gc.freeze()``): the ~10^5 objects of a loaded Django project are no
    longer walked by every full collection, which showed as the p95 tail of the analytics benchmark (in
    process: p95 11.5 -> 10.4 ms). Once per process (live servers in the test suite start several)."""
    global _startup_frozen
    if _startup_frozen:
        return
    _startup_frozen = True
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - loads the URLconf and the views it names
    gc.collect()
    gc.freeze()


async def _lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _freeze_startup_objects()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await upstreams.close_session()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        return await _lifespan(scope, receive, send)
    # This loop serves the sockets: synchronous publishers (views, in-process tasks) hand their sends to it.
    realtime.bind_loop()
    path = scope.get("path", "")
    if path.startswith(SOCKETIO_PATH):
        return await socketio_application(scope, receive, send)
    if kind == "http":
        if gateway_handles is not None and gateway_handles(path):
            return await gateway_application(scope, receive, send)
        return await http_application(scope, receive, send)
    if kind == "websocket" and path.rstrip("/") in WEBSOCKET_PATHS:
        return await websocket_application(scope, receive, send)
    if kind == "websocket":
        return await WebsocketDenier()(scope, receive, send)
    raise ValueError(f"unsupported ASGI scope type {kind!r}")
