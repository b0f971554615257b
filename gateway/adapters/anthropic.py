"""Anthropic's native Messages API behind the OpenAI surface: ``POST {base}/v1/messages``, both ways.

Request: ``system``/``developer`` messages become the top-level ``system``; ``max_tokens`` (required
by Anthropic) defaults to the deployment's ``maxTokens`` or the model's, capped at 4,096;
``stop`` becomes ``stop_sequences``; ``temperature``, ``top_p``, ``top_k`` pass; the
penalties do not exist there and are dropped. Answer: a ``chat.completion`` with the text blocks
joined and ``stop_reason`` mapped to ``finish_reason``; usage ``input_tokens``/``output_tokens``
become ``prompt_tokens``/``completion_tokens``. Streams: Anthropic's events become
``chat.completion.chunk`` lines.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from gateway.adapters import Outcome, Stream, Upstream
from gateway.adapters.openai_compat import iter_lines, open_request, read_json
from gateway.openai import GatewayError
from modelhub import upstreams

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _headers(upstream: Upstream, target: upstreams.Target) -> dict[str, str]:
    headers = {
        "host": target.host_header,
        "content-type": "application/json",
        "anthropic-version": VERSION,
    }
    if upstream.api_key:
        headers["x-api-key"] = upstream.api_key
    return headers


def _text(content: Any) -> str:
    if type(content) is str:
        return content
    if type(content) is list:
        return "".join(p.get("text", "") for p in content if type(p) is dict and type(p.get("text")) is str)
    return ""


def to_messages(body: dict[str, Any], route: Any) -> dict[str, Any]:
    system, messages = [], []
    for message in body["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role in ("user", "assistant"):
            messages.append({"role": role, "content": _text(message.get("content"))})
        else:  # tool results: as user text (no tool use through this adapter)
            messages.append({"role": "user", "content": _text(message.get("content"))})
    out: dict[str, Any] = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": body.get("max_tokens") or min(route.max_tokens, DEFAULT_MAX_TOKENS),
    }
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k"):
        if key in body:
            out[key] = body[key]
    if "stop" in body:
        out["stop_sequences"] = [body["stop"]] if type(body["stop"]) is str else body["stop"]
    if body.get("stream"):
        out["stream"] = True
    return out


async def chat(upstream: Upstream, route: Any, body: dict[str, Any], timeout: float) -> Outcome:
    response, failed = await open_request(
        upstream, "/v1/messages", to_messages(body, route), timeout, stream=False, headers=_headers
    )
    if failed:
        return failed
    _, parsed, failed = await read_json(response, timeout)
    if failed:
        return failed
    usage = parsed.get("usage") or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    text = "".join(b.get("text", "") for b in parsed.get("content") or () if isinstance(b, dict))
    answer = {
        "id": f"chatcmpl-{parsed.get('id', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": parsed.get("model", body["model"]),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": FINISH.get(parsed.get("stop_reason"), "stop"),
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
    return Outcome(body=orjson.dumps(answer), prompt_tokens=prompt, completion_tokens=completion, upstream_status=200)


async def embeddings(upstream: Upstream, route: Any, body: dict[str, Any], timeout: float) -> Outcome:
    return Outcome(error=GatewayError("wrong_model_type", "Anthropic offers no embeddings API."))


def _chunk(ident: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def chat_stream(
    upstream: Upstream, route: Any, body: dict[str, Any], timeout: float, include_usage: bool
) -> Stream:
    response, failed = await open_request(
        upstream, "/v1/messages", to_messages(body, route), timeout, stream=True, headers=_headers
    )
    if failed:
        return Stream(error=failed.error, retryable=failed.retryable)
    stream = Stream()
    model = body["model"]

    async def relay():
        ident = "chatcmpl-anthropic"
        finish = "stop"
        try:
            async for line in iter_lines(response):
                if not line.startswith("data:"):
                    continue
                try:
                    event = orjson.loads(line[5:].strip())
                except orjson.JSONDecodeError:
                    continue
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "message_start":
                    message = event.get("message") or {}
                    ident = f"chatcmpl-{message.get('id', '')}"
                    stream.prompt_tokens = int((message.get("usage") or {}).get("input_tokens") or 0)
                    yield _chunk(ident, model, {"role": "assistant", "content": ""})
                elif kind == "content_block_delta":
                    text = (event.get("delta") or {}).get("text")
                    if text:
                        stream.content_chunks += 1
                        yield _chunk(ident, model, {"content": text})
                elif kind == "message_delta":
                    finish = FINISH.get((event.get("delta") or {}).get("stop_reason"), "stop")
                    output = (event.get("usage") or {}).get("output_tokens")
                    if type(output) is int:
                        stream.completion_tokens = output
                elif kind == "message_stop":
                    break
                elif kind == "error":
                    stream.failure = GatewayError("upstream_error", str((event.get("error") or {}).get("message")))
                    return
            yield _chunk(ident, model, {}, finish)
            if include_usage:
                prompt, completion = stream.prompt_tokens or 0, stream.completion_tokens or 0
                usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                payload = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
                yield b"data: " + orjson.dumps({**payload, "choices": [], "usage": usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except TimeoutError:
            stream.failure = GatewayError("upstream_timeout", f"The upstream stalled for more than {timeout:g} s.")
        except GatewayError as exc:
            stream.failure = exc
        except (aiohttp.ClientError, OSError) as exc:
            stream.failure = GatewayError("upstream_error", f"The upstream stream broke: {type(exc).__name__}.")

    async def close() -> None:
        response.close()

    stream._iterator = relay()
    stream._close = close
    return stream
