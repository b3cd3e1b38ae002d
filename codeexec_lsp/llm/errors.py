"""What an error from a model server means, whoever wrapped it.

Servers disagree on error shapes: OpenAI and llama.cpp send `{"error": {"message", "type",
"code"}}`, Anthropic `{"type": "error", "error": {"type", "message"}}`, vLLM a flat `{"object":
"error", ...}`, older Ollama `{"error": "..."}`, FastAPI-based servers `{"detail": ...}`, and
gateways such as LiteLLM's proxy put the HTTP status in `code` as text (`"code": "429"`) and
wrap the upstream provider's message in their own prefixes, fallbacks report and sometimes a
traceback. So an error is read in one generic way, whatever the provider, and classified by
its HTTP status first (or the status the body carries), then by the names and phrases that
tell the cases apart that the status alone cannot: a used-up quota among 429s, an unknown
model or a refused key among 400s, an overload among 500s.
"""

from __future__ import annotations

import ast
import enum
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The part of a server's message worth quoting to the user; clipped after cleaning.
MESSAGE_LIMIT = 300

_CONTEXT_NAMES = ("context_length_exceeded", "exceed_context_size", "request_too_large")
_CONTEXT_PHRASES = (
    "context length",
    "context_length",
    "context window",
    "contextwindowexceeded",
    "context size",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "reduce the length",
)
_QUOTA_NAMES = (
    "insufficient_quota",
    "quota_exceeded",
    "billing_hard_limit",
    "billing_not_active",
    "budget_exceeded",  # LiteLLM's per-key/team budgets
)
_QUOTA_PHRASES = (
    "exceeded your current quota",
    "insufficient_quota",
    "insufficient quota",
    "credit balance is too low",
    "quota exceeded",
    "out of credits",
    "insufficient credits",  # OpenRouter's 402
    "budget has been exceeded",
)
_RATE_NAMES = ("rate_limit", "ratelimit", "throttl", "too_many_requests")
_AUTH_NAMES = (
    "invalid_api_key",
    "incorrect_api_key",
    "authentication",
    "auth_error",
    "no_db_connection",
    "unauthorized",
    "permission",
    "invalid_key",
)
_AUTH_PHRASES = (
    "invalid api key",
    "incorrect api key",
    "invalid x-api-key",
    "api key not valid",
    "no api key",
    "authentication error",
    "invalid proxy server token",
    "unauthorized",
)
_MODEL_NAMES = ("model_not_found", "invalid_model", "unknown_model")
_MODEL_PHRASES = (
    "invalid model name",
    "model not found",
    "model_not_found",
    "unknown model",
    "no such model",
    "not a valid model",
)
_OVERLOAD_PHRASES = ("overloaded", "overload")
_SERVER_NAMES = ("server_error", "api_error", "internal", "service_unavailable", "unavailable")
# LiteLLM names the exception it raised first, often twice: "litellm.RateLimitError:
# RateLimitError: OpenAIException - ...". The name is a clue; the prefix is noise to a user.
_GATEWAY_PREFIX = re.compile(r"^\s*(?:litellm\.(?:[a-z_]+\.)*)?([A-Za-z]+(?:Error|Exception)):\s*")
_HANDLE_WITH = re.compile(r"\.?\s*Handle with `litellm\.\w+`\.?")
# "AnthropicException - {"type":"error",...}" (or "AnthropicError - b'{...}'"): the upstream
# body, quoted whole, sometimes as a Python bytes literal.
_QUOTED_BODY = re.compile(r"(\b[A-Za-z]+(?:Exception|Error) - )b?'?(\{.*\})'?", re.DOTALL)
# "OpenAIException - Incorrect API key" is how a gateway quotes its upstream provider.
_UPSTREAM_MARK = re.compile(r"\b[A-Za-z]+(?:Exception|Error) - |\bupstream\b", re.IGNORECASE)
# What LiteLLM appends to the upstream's message: on a line of its own after a blank line
# in 1.108, right after a newline in older versions.
_BLANK_LINE = re.compile(
    r"\n[ \t]*\n|\n(?=Received Model Group=|Available Model Group Fallbacks=|LiteLLM Retried:)"
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|(?m:^\s*Traceback\b)")
_TRY_AGAIN = re.compile(
    r"(?:try again|retry) (?:in|after) (\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?)\b",
    re.IGNORECASE,
)


class ErrorKind(enum.Enum):
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    CONTEXT = "context"
    AUTH = "auth"
    MODEL = "model"
    ROUTE = "route"  # nothing at that URL: the base URL is wrong, not the model
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    REDIRECT = "redirect"
    BAD_REQUEST = "bad_request"
    OTHER = "other"  # an error event inside a stream that names nothing we know

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED, ErrorKind.UNAVAILABLE)


@dataclass(frozen=True)
class ServerError:
    """An error body, read: the cleaned message, the names it carries, the status it states."""

    message: str  # cleaned and clipped, safe to show
    names: tuple[str, ...]  # lower-case type/code/status names, and a gateway's exception name
    body_status: int | None  # a three-digit status in `code` (or `status`), as gateways send
    from_gateway_upstream: bool  # the gateway quotes its upstream provider's error

    def search_text(self) -> str:
        return self.message.lower()


def read_error(payload: Any, raw_text: str = "", *, secrets: Iterable[str] = ()) -> ServerError:
    """Read an error body in any of the shapes servers send. `payload` is the parsed JSON (or
    None when the body is not JSON, in which case `raw_text` is the message). Each of
    `secrets` is replaced by [REDACTED] before anything is clipped, so no part of one shows."""
    message, names, status = _fields(payload) if payload is not None else (raw_text, [], None)
    for secret in secrets:
        message = message.replace(secret, "[REDACTED]")
    essential = _essential(_unwrap_repr(message))
    text, prefix_names = _strip_gateway_prefixes(essential)
    text, quoted_names = _unquote_upstream_body(text)
    names.extend(prefix_names + quoted_names)
    upstream = bool(_UPSTREAM_MARK.search(text))
    return ServerError(_one_line(text), tuple(names), status, upstream)


def _fields(payload: Any) -> tuple[str, list[str], int | None]:
    if isinstance(payload, str):
        return payload, [], None
    if not isinstance(payload, dict):
        return "", [], None
    error: Any = payload.get("error", payload)
    if isinstance(error, str):
        return error, [], _status_of(payload.get("code"))
    if not isinstance(error, dict):
        return "", [], None
    message = error.get("message")
    if not isinstance(message, str):
        message = _detail_text(error.get("detail", payload.get("detail")))
    names: list[str] = []
    status: int | None = None
    for field_name in ("type", "code", "status"):
        value = error.get(field_name)
        as_status = _status_of(value)
        if as_status is not None:
            status = status or as_status
        elif isinstance(value, str) and value and value.lower() not in ("none", "null"):
            names.append(value.lower())
    return message, names, status


def _detail_text(detail: Any) -> str:
    """FastAPI's `detail`: a string, or for a 422 a list of `{"loc": [...], "msg": ...}`."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                parts.append(f"{where}: {item['msg']}" if where else item["msg"])
        return "; ".join(parts)
    return ""


def _status_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and re.fullmatch(r"[1-5]\d\d", value.strip()):
        return int(value)
    return None


def _unwrap_repr(message: str) -> str:
    """LiteLLM sometimes sends a Python dict's repr as the message: `{'error': '...'}`."""
    text = message.strip()
    if not (text.startswith("{") and text.endswith("}")) or len(text) > 20_000:
        return message
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return message
    if isinstance(value, dict):
        inner = value.get("error", value.get("message"))
        if isinstance(inner, dict):
            inner = inner.get("message")
        if isinstance(inner, str):
            return inner
    return message


def clean_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """The part of a server's message a user should read, on one line, at most `limit` long.

    Kept: the text before the first blank line or traceback (what follows is a gateway's
    fallback report or its stack); dropped: a gateway's repeated `litellm.XError: XError:`
    prefixes. A message that is nothing but a traceback becomes its last line, the exception.
    """
    text, _ = _strip_gateway_prefixes(_essential(text))
    text, _ = _unquote_upstream_body(text)
    return _one_line(text, limit)


def _essential(text: str) -> str:
    tb = _TRACEBACK.search(text)
    if tb is not None:
        before = text[: tb.start()]
        if before.strip():
            text = before
        else:
            lines = [line.strip() for line in text[tb.start() :].splitlines() if line.strip()]
            text = lines[-1] if len(lines) > 1 else ""
    return _BLANK_LINE.split(text.strip(), maxsplit=1)[0]


def _strip_gateway_prefixes(text: str) -> tuple[str, list[str]]:
    """The text without `litellm.XError: XError: ` prefixes, and the exception names in them."""
    names: list[str] = []
    while True:
        match = _GATEWAY_PREFIX.match(text)
        if match is None:
            break
        names.append(match.group(1).lower())
        text = text[match.end() :]
    return _HANDLE_WITH.sub("", text), names


def _unquote_upstream_body(text: str) -> tuple[str, list[str]]:
    """`XException - {"error": {...}}` becomes `XException - <its message>`, with its names."""
    match = _QUOTED_BODY.search(text)
    if match is None:
        return text, []
    try:
        body = json.loads(match.group(2))
    except ValueError:
        return text, []
    message, names, _ = _fields(body)
    if not message:
        return text, []
    return text[: match.start()] + match.group(1) + message, names


def _one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    # Trailing periods would clash with the sentence the message is quoted in.
    text = " ".join(text.split()).rstrip(".").strip()
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


def retry_after_in_message(message: str) -> float | None:
    """Seconds from "Please try again in 20s" / "retry after 1.5 seconds" / "in 120ms", which
    is all a client gets when an error arrives inside a stream that already said 200."""
    match = _TRY_AGAIN.search(message)
    if match is None:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower().startswith("m") else value


def _any(names: Iterable[str], fragments: Iterable[str]) -> bool:
    fragments = tuple(fragments)
    return any(fragment in name for name in names for fragment in fragments)


def _says(text: str, phrases: Iterable[str]) -> bool:
    return any(phrase in text for phrase in phrases)


def effective_status(http_status: int | None, error: ServerError) -> int | None:
    """The status to classify by: the HTTP status, unless it says nothing specific (a 200
    stream that carried an error, or a gateway's blanket 500) and the body states another."""
    if error.body_status is not None and http_status in (None, 200, 500):
        return error.body_status
    return http_status


def is_context_error(error: ServerError) -> bool:
    return _any(error.names, _CONTEXT_NAMES) or _says(error.search_text(), _CONTEXT_PHRASES)


def classify(http_status: int | None, error: ServerError) -> ErrorKind:
    """What went wrong. `http_status` is None (or 200) for an error event inside a stream."""
    status = effective_status(http_status, error)
    names, text = error.names, error.search_text()
    # A used-up quota is reported as a 429 by OpenAI, a 400 by Anthropic ("credit balance"),
    # anything by gateways; whatever the status, retrying cannot help.
    if status == 402 or _any(names, _QUOTA_NAMES) or _says(text, _QUOTA_PHRASES):
        return ErrorKind.QUOTA
    rate_named = _any(names, _RATE_NAMES)
    overloaded = _any(names, _OVERLOAD_PHRASES) or _says(text, _OVERLOAD_PHRASES)
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status in (401, 403):
        return ErrorKind.AUTH
    if status is not None and 300 <= status < 400:
        return ErrorKind.REDIRECT
    if status == 404:
        model_named = (
            _any(names, _MODEL_NAMES)
            or _says(text, _MODEL_PHRASES)
            or "model" in text
            or _any(names, ("not_found_error",))
        )
        return ErrorKind.MODEL if model_named else ErrorKind.ROUTE
    if status is not None and (status >= 500 or status in (408, 409)):
        if status == 529 or overloaded:
            return ErrorKind.OVERLOADED
        return ErrorKind.RATE_LIMIT if rate_named else ErrorKind.UNAVAILABLE
    # A 4xx other than the above, or an error event in a stream: the names decide.
    if is_context_error(error):
        return ErrorKind.CONTEXT
    if rate_named:
        return ErrorKind.RATE_LIMIT
    if _any(names, _AUTH_NAMES) or _says(text, _AUTH_PHRASES):
        return ErrorKind.AUTH
    if _any(names, _MODEL_NAMES) or _says(text, _MODEL_PHRASES):
        return ErrorKind.MODEL
    if overloaded:
        return ErrorKind.OVERLOADED
    if status is None or status == 200:
        return ErrorKind.UNAVAILABLE if _any(names, _SERVER_NAMES) else ErrorKind.OTHER
    return ErrorKind.BAD_REQUEST
