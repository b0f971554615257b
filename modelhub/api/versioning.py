"""Marking an API version or a single route as deprecated.

``settings.API_DEPRECATIONS`` maps either a version (``"v1"``) or a URL name
(``"v1:catalog:model-list"``, the name ``reverse()`` takes) to::

    {"deprecated_at": datetime, "sunset": datetime | None, "link": "https://..."}

Every response of a deprecated route then carries

* ``Deprecation: @<unix seconds>`` - RFC 9745 (a Structured Field date);
* ``Sunset: <HTTP-date>`` - RFC 8594, when a removal date is known;
* ``Link: <...>; rel="deprecation"; type="text/html"`` (and ``rel="sunset"``).

The route's own entry wins over its version's. Keeping this in settings means an
operator announces a deprecation with a deploy, not a code change per view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.http import http_date


def _entry_for(request: HttpRequest) -> dict[str, Any] | None:
    table = settings.API_DEPRECATIONS
    if not table:
        return None
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    if match.view_name in table:
        return table[match.view_name]
    if match.namespaces and match.namespaces[0] in table:
        return table[match.namespaces[0]]
    return None


def deprecation_headers(request: HttpRequest) -> dict[str, str]:
    entry = _entry_for(request)
    if not entry:
        return {}
    deprecated_at: datetime = entry["deprecated_at"]
    headers = {"Deprecation": f"@{int(deprecated_at.timestamp())}"}
    links = []
    if entry.get("link"):
        links.append(f'<{entry["link"]}>; rel="deprecation"; type="text/html"')
    if entry.get("sunset"):
        headers["Sunset"] = http_date(entry["sunset"].timestamp())
        if entry.get("sunset_link") or entry.get("link"):
            links.append(f'<{entry.get("sunset_link") or entry["link"]}>; rel="sunset"; type="text/html"')
    if links:
        headers["Link"] = ", ".join(links)
    return headers
