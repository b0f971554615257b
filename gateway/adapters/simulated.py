"""The built-in **simulated provider**: answers without any network, for the embedded default and tests.

Deterministic: the same prompt to the same model gives the same completion (words drawn from a
fixed vocabulary by a hash of model and prompt). Drawn from the model's baseline metrics:

* latency - lognormal around ``baselineMetrics.avgLatency`` (sigma 0.35), scaled by
  ``GATEWAY_SIMULATED_LATENCY_SCALE`` (0 in tests), streamed evenly over the chunks;
* completion length - around a quarter of ``avgTokensPerRequest`` (at least 8, within ``max_tokens``);
* failures - a call fails with HTTP 503 with probability ``1 - successRate`` (a fresh draw per call,
  so retries and fallbacks behave as they would against a flaky provider).

Prompt tokens are counted as a tokenizer would roughly (characters / 4).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from typing import Any

import orjson
from django.conf import settings

from gateway.adapters import Outcome, Stream, Upstream
from gateway.openai import GatewayError, estimate_tokens

WORDS = [
    "the",
    "model",
    "answers",
    "with",
    "a",
    "concise",
    "summary",
    "of",
    "the",
    "request",
    "and",
    "notes",
    "that",
    "latency",
    "cost",
    "and",
    "quality",
    "were",
    "measured",
    "by",
    "the",
    "hub",
    "so",
    "teams",
    "can",
    "compare",
    "deployments",
    "fairly",
    "before",
    "promoting",
    "a",
    "variant",
]
_rng = random.SystemRandom()


def _seed(route: Any, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{route.model_id}:{text}".encode()).digest()[:8], "big")


def _prompt_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages") or ():
        content = message.get("content")
        if type(content) is list:
            content = " ".join(p.get("text", "") for p in content if type(p) is dict and type(p.get("text")) is str)
        parts.append(str(content or ""))
    return "\n".join(parts)


def _latency_seconds(route: Any) -> float:
    scale = settings.GATEWAY_SIMULATED_LATENCY_SCALE
    if scale <= 0 or route.baseline_latency_ms <= 0:
        return 0.0
    median = route.baseline_latency_ms / 1000 * scale
    return median * math.exp(_rng.gauss(0, 0.35))


def _fails(route: Any) -> bool:
    return _rng.random() >= route.baseline_success_rate


def _failure() -> Outcome:
    return Outcome(
        error=GatewayError("upstream_error", "The simulated provider failed this call (503), as its successRate says."),
        retryable=True,
        upstream_status=503,
    )


def completion_words(route: Any, body: dict[str, Any]) -> list[str]:
    prompt = _prompt_text(body)
    generator = random.Random(_seed(route, prompt))  # noqa: S311 - deterministic on purpose
    length = max(8, route.baseline_tokens // 4 if route.baseline_tokens else 24)
    length = generator.randint(max(1, length // 2), length + length // 2)
    if body.get("max_tokens"):
        length = min(length, int(body["max_tokens"]))
    return [generator.choice(WORDS) for _ in range(length)]


async def chat(upstream: Upstream, route: Any, body: dict[str, Any], timeout: float) -> Outcome:
    delay = _latency_seconds(route)
    if delay > timeout:
        await asyncio.sleep(timeout)
        return Outcome(error=GatewayError("upstream_timeout", f"No answer within {timeout:g} s."), retryable=True)
    if delay:
        await asyncio.sleep(delay)
    if _fails(route):
        return _failure()
    words = completion_words(route, body)
    prompt = estimate_tokens(len(_prompt_text(body)))
    finish = "length" if body.get("max_tokens") and len(words) >= int(body["max_tokens"]) else "stop"
    answer = {
        "id": f"chatcmpl-sim-{_rng.getrandbits(48):012x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "modelhub-simulated",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)},
    }
    return Outcome(body=orjson.dumps(answer), prompt_tokens=prompt, completion_tokens=len(words), upstream_status=200)


async def embeddings(upstream: Upstream, route: Any, body: dict[str, Any], timeout: float) -> Outcome:
    delay = _latency_seconds(route)
    if delay:
        await asyncio.sleep(min(delay, timeout))
    if _fails(route):
        return _failure()
    items = [body["input"]] if type(body["input"]) is str else body["input"]
    dimensions = int(body.get("dimensions") or 16)
    data = []
    chars = 0
    for index, item in enumerate(items):
        text = item if type(item) is str else " ".join(map(str, item))
        chars += len(text)
        generator = random.Random(_seed(route, text))  # noqa: S311 - deterministic on purpose
        vector = [generator.uniform(-1, 1) for _ in range(dimensions)]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        data.append({"object": "embedding", "index": index, "embedding": [v / norm for v in vector]})
    prompt = estimate_tokens(chars)
    answer = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }
    return Outcome(body=orjson.dumps(answer), prompt_tokens=prompt, upstream_status=200)


async def chat_stream(
    upstream: Upstream, route: Any, body: dict[str, Any], timeout: float, include_usage: bool
) -> Stream:
    if _fails(route):
        failed = _failure()
        return Stream(error=failed.error, retryable=True)
    words = completion_words(route, body)
    prompt = estimate_tokens(len(_prompt_text(body)))
    delay = _latency_seconds(route)
    step = delay / (len(words) + 1) if delay else 0.0
    ident = f"chatcmpl-sim-{_rng.getrandbits(48):012x}"
    stream = Stream(prompt_tokens=prompt)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    async def relay():
        if step:
            await asyncio.sleep(step)
        yield chunk({"role": "assistant", "content": ""})
        for index, word in enumerate(words):
            if step:
                await asyncio.sleep(step)
            stream.content_chunks += 1
            yield chunk({"content": word if index == 0 else f" {word}"})
        stream.completion_tokens = len(words)
        yield chunk({}, "stop")
        if include_usage:
            usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
            payload = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body["model"],
            }
            yield b"data: " + orjson.dumps({**payload, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    stream._iterator = relay()
    return stream
