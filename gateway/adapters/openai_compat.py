"""The OpenAI-compatible adapter: ``POST {base}/chat/completions`` and ``{base}/embeddings``, relayed.

Bodies go upstream as the hub checked them (defaults filled, ``model`` set to the upstream model
name); answers come back unchanged, their ``usage`` read for the usage event. Streams are asked
for ``stream_options.include_usage`` so they are priced like other calls; the usage chunk is passed
on only when the client asked for it itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from django.conf import settings

from gateway.adapters import RETRYABLE_STATUSES, Outcome, Stream, Upstream
from gateway.openai import GatewayError
from modelhub import upstreams

_DONE = b"data: [DONE]\n\n"


def _headers(upstream: Upstream, target: upstreams.Target, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"host": target.host_header, "content-type": "application/json", "accept": "application/json"}
    if upstream.api_key:
        headers["authorization"] = f"Bearer {upstream.api_key}"
    if extra:
        headers.update(extra)
    return headers


def _upstream_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode(errors="replace")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:500]
    if isinstance(error, str):
        return error[:500]
    return str(body)[:200]


def failure(status: int, raw: bytes, retry_after: str | None = None) -> Outcome:
    """An upstream's non-2xx answer as an outcome (client errors relayed as 400, the rest 429/502)."""
    message = _upstream_message(raw)
    if status == 429:
        headers = {"retry-after": retry_after} if retry_after else None
        error = GatewayError("upstream_rate_limited", f"The upstream is rate limiting: {message}", headers=headers)
    elif status in (401, 403):
        error = GatewayError("upstream_error", f"The upstream refused the hub's credentials ({status}): {message}")
    elif 400 <= status < 500 and status not in RETRYABLE_STATUSES:
        error = GatewayError("invalid_request", f"The upstream refused the request ({status}): {message}")
    else:
        error = GatewayError("upstream_error", f"The upstream answered {status}: {message}")
    return Outcome(error=error, retryable=status in RETRYABLE_STATUSES, upstream_status=status)


def transport_failure(exc: BaseException, timeout: float) -> Outcome:
    if isinstance(exc, upstreams.UpstreamRefused):
        return Outcome(error=GatewayError("upstream_refused", str(exc)))
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return Outcome(
            error=GatewayError("upstream_timeout", f"The upstream did not answer within {timeout:g} s."), retryable=True
        )
    return Outcome(
        error=GatewayError("upstream_error", f"Could not reach the upstream: {type(exc).__name__}."), retryable=True
    )


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, upstreams.UpstreamRefused, OSError)


async def open_request(
    upstream: Upstream, path: str, payload: dict[str, Any], timeout: float, *, stream: bool, headers: Any = None
) -> tuple[aiohttp.ClientResponse | None, Outcome | None]:
    """POST ``payload`` to ``{base}{path}``; (response, None) on 2xx, else (None, failure outcome)."""
    try:
        scheme, host, port, base_path = upstreams.split_url(upstream.base_url)
        target = await upstreams.check(scheme, host, port, base_path + path)
        response = await upstreams.session().post(
            target.parsed_url,
            data=orjson.dumps(payload),
            headers=(headers or _headers)(upstream, target),
            timeout=upstreams.timeouts(timeout, stream=stream),
            allow_redirects=False,
            server_hostname=target.sni,
        )
    except TRANSPORT_ERRORS as exc:
        return None, transport_failure(exc, timeout)
    if response.status >= 300:
        try:
            raw = await response.content.read(64 * 1024)
        except TRANSPORT_ERRORS:
            raw = b""
        finally:
            response.release()
        return None, failure(response.status, raw, response.headers.get("retry-after"))
    return response, None


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise GatewayError("upstream_error", f"The upstream's answer is larger than {limit} bytes.")
    raw = await response.content.read(limit + 1)
    if len(raw) > limit:
        raise GatewayError("upstream_error", f"The upstream's answer is larger than {limit} bytes.")
    return raw


async def read_json(
    response: aiohttp.ClientResponse, timeout: float
) -> tuple[bytes | None, dict | None, Outcome | None]:
    try:
        raw = await _read(response, settings.GATEWAY_MAX_RESPONSE_BYTES)
    except GatewayError as exc:
        return None, None, Outcome(error=exc)
    except TRANSPORT_ERRORS as exc:
        return None, None, transport_failure(exc, timeout)
    finally:
        response.release()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return (
            None,
            None,
            Outcome(error=GatewayError("upstream_error", "The upstream's answer is not JSON."), retryable=True),
        )
    if type(body) is not dict:
        return None, None, Outcome(error=GatewayError("upstream_error", "The upstream's answer is not an object."))
    return raw, body, None


MAX_LINE_BYTES = 4 * 1024 * 1024


async def iter_lines(response: aiohttp.ClientResponse):
    """The answer's lines (``\n``-separated, ``\r`` stripped) as text, whatever the chunking."""
    pending = b""
    async for chunk in response.content.iter_any():
        pending += chunk
        if b"\n" not in pending:
            if len(pending) > MAX_LINE_BYTES:
                raise GatewayError("upstream_error", "The upstream sent a line longer than 4 MiB.")
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


def _usage(body: dict) -> tuple[int, int]:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return (prompt if type(prompt) is int and prompt >= 0 else 0), (
        completion if type(completion) is int and completion >= 0 else 0
    )


async def chat(upstream: Upstream, route: Any, body: dict[str, Any], timeout: float) -> Outcome:
    response, failed = await open_request(upstream, "/chat/completions", body, timeout, stream=False)
    if failed:
        return failed
    raw, parsed, failed = await read_json(response, timeout)
    if failed:
        return failed
    prompt, completion = _usage(parsed)
    return Outcome(body=raw, prompt_tokens=prompt, completion_tokens=completion, upstream_status=200)


async def embeddings(upstream: Upstream, route: Any, body: dict[str, Any], timeout: float) -> Outcome:
    response, failed = await open_request(upstream, "/embeddings", body, timeout, stream=False)
    if failed:
        return failed
    raw, parsed, failed = await read_json(response, timeout)
    if failed:
        return failed
    prompt, _ = _usage(parsed)
    return Outcome(body=raw, prompt_tokens=prompt, completion_tokens=0, upstream_status=200)


async def chat_stream(
    upstream: Upstream, route: Any, body: dict[str, Any], timeout: float, include_usage: bool
) -> Stream:
    response, failed = await open_request(upstream, "/chat/completions", body, timeout, stream=True)
    if failed:
        return Stream(error=failed.error, retryable=failed.retryable)
    stream = Stream()

    async def relay():
        try:
            async for line in iter_lines(response):
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    yield _DONE
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if type(chunk) is not dict:
                    continue
                usage_only = False
                if isinstance(chunk.get("usage"), dict):
                    stream.prompt_tokens, stream.completion_tokens = _usage(chunk)
                    usage_only = not chunk.get("choices")
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if isinstance(delta, dict) and delta.get("content"):
                        stream.content_chunks += 1
                if usage_only and not include_usage:
                    continue
                if not include_usage and "usage" in chunk:
                    chunk.pop("usage")
                    yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                else:
                    yield b"data: " + data.encode() + b"\n\n"
            yield _DONE
        except TimeoutError:
            stream.failure = GatewayError("upstream_timeout", f"The upstream stalled for more than {timeout:g} s.")
        except GatewayError as exc:
            stream.failure = exc
        except (aiohttp.ClientError, OSError) as exc:
            stream.failure = GatewayError("upstream_error", f"The upstream stream broke: {type(exc).__name__}.")

    async def close() -> None:
        response.close()  # mid-stream: drop the connection rather than read the rest

    stream._iterator = relay()
    stream._close = close
    return stream
