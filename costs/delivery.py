"""Sending one notification: a webhook signed per Standard Webhooks, a Slack incoming webhook, or an email.

Webhooks: ``webhook-id`` is the outbox row's id (the same on every retry, so a receiver that saw it
can drop the repeat), ``webhook-timestamp`` and ``webhook-signature`` from the ``standardwebhooks``
package with the channel's secret. URLs pass the gateway's upstream check (:mod:`modelhub.upstreams`:
private, loopback and reserved ranges refused unless ``GATEWAY_UPSTREAM_ALLOWLIST`` lists them or
``GATEWAY_ALLOW_PRIVATE_UPSTREAMS`` is on) and the request goes to the checked address. 2xx is
delivered; 410 Gone stops (the receiver asked us to); anything else is retried with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson
from django.conf import settings
from django.core.mail import send_mail

from modelhub import upstreams


@dataclass(frozen=True)
class Outcome:
    ok: bool
    gone: bool = False
    error: str = ""


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    try:
        scheme, host, port, path = upstreams.split_url(url)
        parsed = httpx.URL(url)
        query = f"?{parsed.query.decode()}" if parsed.query else ""
        target = upstreams.check_sync(scheme, host, port, (path or "/") + query)
    except upstreams.UpstreamRefused as exc:
        return Outcome(False, error=str(exc))
    extensions = {"sni_hostname": target.sni} if target.sni else {}
    try:
        with httpx.Client(trust_env=False) as client:
            response = client.post(
                target.url,
                content=body,
                headers={**headers, "Host": target.host_header, "Content-Type": "application/json"},
                timeout=settings.COSTS_NOTIFY_TIMEOUT_SECONDS,
                follow_redirects=False,
                extensions=extensions,
            )
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return Outcome(True)
    if response.status_code == 410:
        return Outcome(False, gone=True, error="410 Gone: the receiver asked not to be sent more")
    return Outcome(False, error=f"HTTP {response.status_code}")


def send(note) -> Outcome:
    channel = note.channel
    payload = note.payload
    if channel.type == "webhook":
        from standardwebhooks import Webhook

        body = orjson.dumps(payload)
        msg_id = f"msg_{note.pk.hex}"
        now = datetime.now(UTC)
        signature = Webhook(channel.secret).sign(msg_id, now, body.decode())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        return _post(channel.target, body, headers)
    if channel.type == "slack":
        return _post(channel.target, orjson.dumps({"text": payload["message"]}), {})
    try:
        send_mail(
            subject=f"[Model Hub] {payload['message'][:120]}",
            message=orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode(),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[channel.target],
        )
    except Exception as exc:  # SMTP down: retried
        return Outcome(False, error=f"{type(exc).__name__}: {exc}")
    return Outcome(True)
