"""The console is a client of the API, in process.

Every page reads and every action writes through the REST API itself - the same middleware (request
id, rate limits, the error envelope), authentication, role matrix, object checks, validation and
services - so a page can never show or do what the API would refuse. The call is a WSGI request
handed to Django's own handler (``BaseHandler.get_response``, as Django's test client does), carrying
a short-lived access token minted for the signed-in user; nothing leaves the process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest
from rest_framework_simplejwt.tokens import AccessToken

API = "/api/v1/modelhub"
# Long enough for one page's calls; never sent to the browser (the websocket gets its own, below).
INTERNAL_TOKEN_LIFETIME = timedelta(seconds=60)

_handler: BaseHandler | None = None


def _get_handler() -> BaseHandler:
    global _handler
    if _handler is None:
        handler = BaseHandler()
        handler.load_middleware()
        _handler = handler
    return _handler


def access_token(user: Any, lifetime: timedelta) -> AccessToken:
    """An access token for ``user`` with the claims the API's own tokens carry (role, username)."""
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=lifetime)
    token["role"] = user.role
    token["username"] = user.username
    return token


@dataclass(frozen=True)
class Answer:
    """What the API answered: the status, the decoded JSON body, the request id."""

    status: int
    data: Any
    request_id: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict[str, Any] | None:
        """The spec's error envelope's ``error`` object (code, message, details, requestId), if any."""
        if self.ok:
            return None
        if isinstance(self.data, dict) and isinstance(self.data.get("error"), dict):
            return self.data["error"]
        return {"code": "INTERNAL_ERROR", "message": f"HTTP {self.status}", "requestId": self.request_id}


def call(
    request: HttpRequest,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | list[tuple[str, Any]] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """``method`` ``API + path`` as the signed-in user of ``request``."""
    raw = b"" if body is None else orjson.dumps(body)
    environ = {
        "REQUEST_METHOD": method.upper(),
        "PATH_INFO": API + path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": urlencode(query or {}, doseq=True),
        "SERVER_NAME": request.get_host().split(":")[0] or "localhost",
        "SERVER_PORT": request.get_port(),
        "REMOTE_ADDR": request.META.get("REMOTE_ADDR", "127.0.0.1"),
        "HTTP_HOST": request.get_host(),
        "HTTP_ACCEPT": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {access_token(request.user, INTERNAL_TOKEN_LIFETIME)}",
        "HTTP_X_REQUEST_ID": getattr(request, "request_id", ""),
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": request.scheme,
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    response = _get_handler().get_response(WSGIRequest(environ))
    content = response.content if not response.streaming else b"".join(response.streaming_content)
    try:
        data = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        data = None
    return Answer(response.status_code, data, response.get("X-Request-ID", ""))
