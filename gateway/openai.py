"""OpenAI's wire format on the gateway routes: its error shape, and what a request may contain.

Errors are ``{"error": {"message", "type", "param", "code"}}`` - what the official SDKs parse - and
carry ``x-should-retry: false`` where retrying cannot help (the SDKs honour it), so a stopped
deployment is not retried twice by every client. The mapping from the hub's situations to
OpenAI's types and codes is :data:`ERRORS` (the README prints it).

A chat request is checked key by key: an unknown top-level key is refused (``unknown_parameter``)
rather than ignored; the sampling parameters are checked against their ranges, against the
deployment's model (``max_tokens`` within the model's, and - when the model declares
``supportedParameters`` - only the parameters it lists, within their ``min``/``max``), and the
deployment's ``parameters`` fill what the request leaves out.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

# situation -> (HTTP status, OpenAI error type, code, retry helps)
ERRORS: dict[str, tuple[int, str, str, bool]] = {
    "invalid_json": (400, "invalid_request_error", "invalid_json", False),
    "invalid_request": (400, "invalid_request_error", "invalid_request", False),
    "unknown_parameter": (400, "invalid_request_error", "unknown_parameter", False),
    "invalid_value": (400, "invalid_request_error", "invalid_value", False),
    "unsupported_parameter": (400, "invalid_request_error", "unsupported_parameter", False),
    "wrong_model_type": (400, "invalid_request_error", "model_not_supported", False),
    "missing_api_key": (401, "invalid_request_error", "missing_api_key", False),
    "invalid_api_key": (401, "invalid_request_error", "invalid_api_key", False),
    "forbidden": (403, "permission_error", "forbidden", False),
    "deployment_not_found": (404, "invalid_request_error", "deployment_not_found", False),
    "not_found": (404, "invalid_request_error", "not_found", False),
    "request_not_found": (404, "invalid_request_error", "request_not_found", False),
    "method_not_allowed": (405, "invalid_request_error", "method_not_allowed", False),
    "deployment_not_running": (409, "invalid_request_error", "deployment_not_running", False),
    "request_too_large": (413, "invalid_request_error", "request_too_large", False),
    "unsupported_media_type": (415, "invalid_request_error", "unsupported_media_type", False),
    "rate_limit_exceeded": (429, "rate_limit_error", "rate_limit_exceeded", True),
    "upstream_rate_limited": (429, "rate_limit_error", "upstream_rate_limited", True),
    "budget_exceeded": (429, "insufficient_quota", "budget_exceeded", False),
    "internal_error": (500, "api_error", "internal_error", True),
    "upstream_error": (502, "api_error", "upstream_error", True),
    "upstream_refused": (502, "api_error", "upstream_not_allowed", False),
    "provider_not_configured": (503, "api_error", "provider_not_configured", False),
    "service_unavailable": (503, "api_error", "service_unavailable", True),
    "upstream_timeout": (504, "api_error", "upstream_timeout", True),
}


class GatewayError(Exception):
    """An error answered in OpenAI's shape; ``situation`` is a key of :data:`ERRORS`."""

    def __init__(
        self, situation: str, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.situation = situation
        self.message = message
        self.param = param
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return ERRORS[self.situation][0]

    def body(self) -> bytes:
        status, kind, code, _ = ERRORS[self.situation]
        return orjson.dumps({"error": {"message": self.message, "type": kind, "param": self.param, "code": code}})

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if not ERRORS[self.situation][3]:
            headers["x-should-retry"] = "false"
        return headers


# --- chat completions ------------------------------------------------------------------------

# OpenAI request key -> the deployment parameter (``parameters`` section) it overrides.
SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "stop": "stopSequences",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
}
RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
# Passed through to an OpenAI-compatible upstream as they are (shape-checked lightly).
PASSTHROUGH = frozenset(
    {
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "metadata",
        "service_tier",
        "reasoning_effort",
        "modalities",
    }
)
CHAT_KEYS = frozenset({"model", "messages", "stream", "stream_options", "n", "user", *SAMPLING, *PASSTHROUGH})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_STOP = 16


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


@dataclass
class ChatRequest:
    body: dict[str, Any]  # what goes upstream (OpenAI shape, defaults filled, model not yet set)
    stream: bool
    include_usage: bool  # the client asked for the usage chunk
    user: str
    prompt_hash: str
    prompt_chars: int


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GatewayError("invalid_json", "The request body is not valid JSON.") from None
    if type(body) is not dict:
        raise GatewayError("invalid_request", "The request body must be a JSON object.")
    return body


def _messages(value: Any, max_messages: int) -> int:
    if type(value) is not list or not value:
        raise GatewayError("invalid_request", "'messages' must be a non-empty array.", param="messages")
    if len(value) > max_messages:
        raise GatewayError("invalid_value", f"At most {max_messages} messages.", param="messages")
    chars = 0
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if type(message) is not dict:
            raise GatewayError("invalid_request", f"'{where}' must be an object.", param=where)
        if message.get("role") not in ROLES:
            raise GatewayError(
                "invalid_value", f"'{where}.role' must be one of {', '.join(sorted(ROLES))}.", param=f"{where}.role"
            )
        content = message.get("content")
        if type(content) is str:
            chars += len(content)
        elif type(content) is list:
            for part in content:
                if type(part) is not dict or type(part.get("type")) is not str:
                    raise GatewayError(
                        "invalid_request", f"'{where}.content' parts must be objects with a type.", param=where
                    )
                if type(part.get("text")) is str:
                    chars += len(part["text"])
        elif content is not None or message["role"] not in ("assistant", "function", "tool"):
            raise GatewayError("invalid_request", f"'{where}.content' must be a string or an array.", param=where)
    return chars


def _check_sampling(key: str, value: Any, model_max_tokens: int) -> None:
    if key in RANGES:
        low, high = RANGES[key]
        if not _number(value) or not low <= value <= high:
            raise GatewayError("invalid_value", f"'{key}' must be a number from {low:g} to {high:g}.", param=key)
    elif key in ("max_tokens", "max_completion_tokens"):
        if type(value) is not int or not 1 <= value <= model_max_tokens:
            raise GatewayError(
                "invalid_value", f"'{key}' must be an integer from 1 to {model_max_tokens} (the model's).", param=key
            )
    elif key == "top_k":
        if type(value) is not int or not 1 <= value <= 100_000:
            raise GatewayError("invalid_value", "'top_k' must be an integer from 1 to 100000.", param=key)
    elif key == "stop":
        items = [value] if type(value) is str else value
        if type(items) is not list or len(items) > MAX_STOP or not all(type(s) is str and s for s in items):
            raise GatewayError("invalid_value", f"'stop' must be a string or up to {MAX_STOP} strings.", param=key)


def _check_supported(key: str, value: Any, supported: dict[str, Any]) -> None:
    """When the model lists ``supportedParameters``, only those may be set, within their min/max."""
    if not supported:
        return
    name = SAMPLING[key]
    spec = supported.get(name, supported.get(key))
    if spec is None or spec is False:
        raise GatewayError(
            "unsupported_parameter", f"The model does not support '{key}' (supportedParameters).", param=key
        )
    if isinstance(spec, dict) and _number(value):
        low, high = spec.get("min"), spec.get("max")
        if (_number(low) and value < low) or (_number(high) and value > high):
            raise GatewayError("invalid_value", f"'{key}' must be within [{low}, {high}] for this model.", param=key)


def prompt_hash(messages: list[dict[str, Any]]) -> str:
    """SHA-256 of the normalised prompt (roles and text, whitespace collapsed, case kept)."""
    parts = []
    for message in messages:
        content = message.get("content")
        if type(content) is list:
            content = " ".join(p.get("text", "") for p in content if type(p) is dict and type(p.get("text")) is str)
        parts.append([message.get("role"), " ".join(str(content or "").split())])
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


def chat_request(
    body: dict[str, Any],
    *,
    parameters: dict[str, Any],
    supported: dict[str, Any],
    model_max_tokens: int,
    max_messages: int,
) -> ChatRequest:
    unknown = sorted(body.keys() - CHAT_KEYS)
    if unknown:
        raise GatewayError("unknown_parameter", f"Unrecognized request argument: '{unknown[0]}'.", param=unknown[0])
    chars = _messages(body.get("messages"), max_messages)
    stream = body.get("stream", False)
    if type(stream) is not bool:
        raise GatewayError("invalid_value", "'stream' must be true or false.", param="stream")
    options = body.get("stream_options")
    if options is not None and (type(options) is not dict or not stream):
        raise GatewayError(
            "invalid_value", "'stream_options' is an object, only with stream: true.", param="stream_options"
        )
    include_usage = bool(options and options.get("include_usage") is True)
    if body.get("n", 1) != 1:
        raise GatewayError("invalid_value", "Only n = 1 is supported.", param="n")
    user = body.get("user", "")
    if type(user) is not str or len(user) > 255:
        raise GatewayError("invalid_value", "'user' must be a string of at most 255 characters.", param="user")
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise GatewayError("invalid_request", "Give max_tokens or max_completion_tokens, not both.", param="max_tokens")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in SAMPLING and value is not None:
            _check_sampling(key, value, model_max_tokens)
            _check_supported(key, value, supported)
        if value is not None and key not in ("model", "stream_options"):
            out[key] = value
    if "max_completion_tokens" in out:
        out["max_tokens"] = out.pop("max_completion_tokens")
    for key, name in SAMPLING.items():
        if key == "max_completion_tokens" or key in out or parameters.get(name) is None:
            continue
        out[key] = parameters[name]
    if stream:
        out["stream_options"] = {"include_usage": True}  # priced like a non-streaming call
    return ChatRequest(out, stream, include_usage, user, prompt_hash(out["messages"]), chars)


def embedding_request(body: dict[str, Any], *, max_inputs: int) -> tuple[dict[str, Any], int, str]:
    """The body to send upstream, the characters of input, and the end user."""
    allowed = {"model", "input", "encoding_format", "dimensions", "user"}
    unknown = sorted(body.keys() - allowed)
    if unknown:
        raise GatewayError("unknown_parameter", f"Unrecognized request argument: '{unknown[0]}'.", param=unknown[0])
    value = body.get("input")
    items = [value] if type(value) is str else value
    if type(items) is not list or not items:
        raise GatewayError("invalid_request", "'input' must be a string or a non-empty array.", param="input")
    if len(items) > max_inputs:
        raise GatewayError("invalid_value", f"At most {max_inputs} inputs.", param="input")
    chars = 0
    for item in items:
        if type(item) is str:
            chars += len(item)
        elif type(item) is list and all(type(t) is int for t in item):
            chars += 4 * len(item)
        else:
            raise GatewayError("invalid_value", "'input' items must be strings or arrays of token ids.", param="input")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise GatewayError("invalid_value", "'encoding_format' must be float or base64.", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or not 1 <= dimensions <= 65_536):
        raise GatewayError("invalid_value", "'dimensions' must be an integer from 1 to 65536.", param="dimensions")
    user = body.get("user", "")
    if type(user) is not str or len(user) > 255:
        raise GatewayError("invalid_value", "'user' must be a string of at most 255 characters.", param="user")
    out = {k: v for k, v in body.items() if k != "model" and v is not None}
    return out, chars, user


def estimate_tokens(chars: int) -> int:
    """Tokens from characters when a provider reports no usage (~4 characters per token)."""
    return max(1, math.ceil(chars / 4)) if chars else 0
