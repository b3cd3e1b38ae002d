"""A fake OpenAI- and Anthropic-compatible model server: real HTTP on 127.0.0.1, real wire format.

Each test scripts the replies it needs, in order; requests past the script get `default`:

    server.script(rate_limited(retry_after="0"), Answer("fixed code"))

Replies: `Answer` (streamed as SSE when the request asks for `stream: true`, else JSON),
`Status` (an HTTP error in the provider's real error-body shape; see the helpers
`unauthorized`, `not_found`, `rate_limited`, `server_error`, `overloaded`, `context_too_long`),
`Delay`, `Malformed`, `CutShort`, `StreamError`, and `empty()`.

Real servers differ from the reference shapes, and the fake can speak as they do:
`gateway_answer()` streams as gateways and newer servers do (role merged into the first
chunk, no `finish_reason`/`logprobs` keys until the end, a usage-only last chunk, no `ping`),
and the gateway error helpers (`gateway_rate_limited`, `quota_exceeded`,
`gateway_quota_exceeded`, `gateway_unknown_model`, `gateway_no_db_auth`,
`gateway_upstream_auth`, `openai_shaped_auth_error`, `route_not_found`,
`plain_text_server_error`, `overloaded_wrapped_in_500`) send LiteLLM-style bodies: the status
as text in `code`, wrapped messages with a fallback report and a traceback appended.

Every request is recorded (`server.requests`), and a client that hangs up before its reply is
complete is noticed (`server.wait_for_disconnect()`), which is how tests see cancellation.
The server runs in a background thread, so in-process async tests and a language-server
subprocess can both use it: it is only a URL.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import re
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

Provider = Literal["openai", "anthropic"]
DEFAULT_ANSWER = "This is the fake model's default answer."

# --- replies a test can script ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A successful answer. `chunks` splits the streamed text (default: word by word)."""

    text: str = DEFAULT_ANSWER
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    # Ends with finish_reason "length" / stop_reason "max_tokens".
    truncated: bool = False
    # "auto" follows the request's `stream` flag; "json"/"sse" ignore it, as some servers do.
    format: Literal["auto", "json", "sse"] = "auto"
    # Streaming pauses after the first text chunk until this is set: lets a test see a delta
    # arrive while the rest of the answer has provably not been sent yet.
    gate: threading.Event | None = None
    # Write the stream in pieces of at most this many bytes, to split lines and events.
    fragment: int | None = None
    # How real servers differ from the reference shape (see `gateway_answer()`):
    # OpenAI-compatible: the role in the first content chunk instead of a chunk of its own;
    # chunks that leave out `finish_reason`/`logprobs` until the last; a usage-only last
    # chunk, as OpenAI sends it (`choices: []`) or as LiteLLM does (`choices: [{"index": 0,
    # "delta": {}}]`); no closing `data: [DONE]`. Anthropic: no `ping` event.
    role_in_first_chunk: bool = False
    sparse_chunks: bool = False
    usage_chunk: Literal["openai", "litellm"] | None = None
    done_marker: bool = True
    ping: bool = True

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\S+\s*|\s+", self.text)


@dataclass(frozen=True)
class Status:
    """An HTTP error. Without `body`, the body is the provider's real error JSON for `kind`
    (derived from the status when None) and `message` (a typical one when None)."""

    status: int
    message: str | None = None
    retry_after: str | None = None
    kind: str | None = None
    body: str | bytes | Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Wait `seconds` (ending early if the client hangs up), then send `then` (else default)."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class Malformed:
    """A 200 whose body is broken: "json" (a broken JSON event inside an otherwise proper
    stream, or a broken JSON body if the request did not ask for a stream), "json_body" (a
    broken JSON body whatever was asked), "sse" (an HTML page served as text/event-stream), or
    "html" (an HTML page served as text/html, as a proxy's login page would be)."""

    kind: Literal["json", "json_body", "sse", "html"] = "json"


@dataclass(frozen=True)
class CutShort:
    """Start the answer, send `text`, then stop before the end. By default the connection is
    dropped mid-body (as when a server dies); `clean=True` ends the HTTP body properly but
    without the final [DONE] / message_stop."""

    text: str = "The answer starts and then"
    clean: bool = False


@dataclass(frozen=True)
class StreamError:
    """A 200 stream that carries `text`, then an error event (e.g. Anthropic's overloaded), then
    a clean end of the HTTP body without `[DONE]` / `message_stop`, as servers do.

    OpenAI-compatible servers send `data: {"error": {...}}`, with `code` (a gateway puts the
    HTTP status there as text, e.g. "429"); Anthropic sends `event: error` unless `payload`
    gives the exact JSON to send instead."""

    text: str = ""
    message: str = "Overloaded"
    error_type: str = "overloaded_error"
    code: str | None = None
    payload: Mapping[str, Any] | None = None
    ping: bool = True


Reply = Answer | Status | Delay | Malformed | CutShort | StreamError


def empty() -> Answer:
    return Answer("")


def unauthorized() -> Status:
    return Status(401)


def not_found() -> Status:
    return Status(404)


def rate_limited(retry_after: str | None = "0") -> Status:
    return Status(429, retry_after=retry_after)


def server_error(status: int = 500) -> Status:
    return Status(status)


def overloaded() -> Status:
    """Anthropic's 529 (an OpenAI-shaped body says "server_error")."""
    return Status(529)


def context_too_long() -> Status:
    return Status(400, kind="context")


# What gateways and other real servers send (LiteLLM's proxy, FastAPI-based servers, proxies
# with plain-text error pages). Each is modelled on a body seen from the real server.

LITELLM_FALLBACK_REPORT = (
    "\n\nLiteLLM: model group 'm' failed for this request. Received Model Group=m\n"
    "Available Model Group Fallbacks=None. No fallback was attempted."
)
SERVER_TRACEBACK = (
    "\nTraceback (most recent call last):\n"
    '  File "/usr/lib/python3.12/site-packages/litellm/proxy/proxy_server.py", line 4123, in '
    "chat_completion\n    response = await llm_call\n"
    "litellm.exceptions.RateLimitError: litellm.RateLimitError: upstream said no\n"
)


def gateway_error_body(status: int, message: str, kind: str | None) -> dict[str, Any]:
    """LiteLLM's error body: OpenAI's shape with the HTTP status as text in `code`."""
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def gateway_rate_limited(retry_after: str | None = "0", *, header: str = "retry-after") -> Status:
    """A 429 as LiteLLM's proxy passes one on: wrapped message, fallback report, traceback,
    and the provider's Retry-After renamed (`llm_provider-retry-after`, or `-ms`)."""
    message = (
        "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for "
        "requests. Please try again in 20s." + LITELLM_FALLBACK_REPORT + SERVER_TRACEBACK
    )
    headers = {header: retry_after} if retry_after is not None else {}
    return Status(429, body=gateway_error_body(429, message, "throttling_error"), headers=headers)


def quota_exceeded() -> Status:
    """OpenAI's 429 for an account without credit: retrying cannot help."""
    return Status(
        429,
        body={
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing "
                "details. For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        },
    )


def gateway_quota_exceeded() -> Status:
    """An upstream insufficient_quota as LiteLLM reports it: a 429 named like a rate limit."""
    message = (
        "litellm.RateLimitError: RateLimitError: OpenAIException - You exceeded your current "
        "quota, please check your plan and billing details." + LITELLM_FALLBACK_REPORT
    )
    return Status(429, body=gateway_error_body(429, message, "throttling_error"))


def gateway_unknown_model(model: str = "no-such-model", *, as_repr: bool = False) -> Status:
    """LiteLLM's answer for a model it does not route: a 400, not a 404 (1.108's body; older
    versions sent the message as a Python dict's repr, `as_repr`)."""
    message = (
        f"/chat/completions: Invalid model name passed in model={model}. Call `/v1/models` to "
        "view available models for your key."
    )
    if as_repr:
        return Status(400, body=gateway_error_body(400, repr({"error": message}), "None"))
    body = gateway_error_body(400, message, "invalid_request_error")
    body["error"]["provider_specific_fields"] = {"error": message}
    return Status(400, body=body)


def gateway_no_db_auth() -> Status:
    """A key the proxy does not know, when the proxy has no database: a 400, not a 401
    (LiteLLM 1.108's exact body)."""
    return Status(
        400,
        body={
            "error": {
                "message": "No connected db.",
                "type": "no_db_connection",
                "param": None,
                "code": "400",
            }
        },
    )


def gateway_upstream_auth(provider: Provider = "openai") -> Status:
    """The gateway's own key for its upstream provider was refused (not the user's key), as
    LiteLLM 1.108 reports it on /v1/chat/completions ("openai") or /v1/messages."""
    if provider == "anthropic":
        upstream = json.dumps(error_body("anthropic", Status(401), "m"))
        message = f"litellm.AuthenticationError: AnthropicException - {upstream}"
        return Status(
            401,
            body={
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": message + LITELLM_FALLBACK_REPORT,
                },
            },
        )
    message = (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key "
        "provided. You can find your API key at https://platform.openai.com/account/api-keys."
        + LITELLM_FALLBACK_REPORT
    )
    return Status(401, body=gateway_error_body(401, message, "authentication_error"))


def openai_shaped_auth_error() -> Status:
    """What a gateway sends on /v1/messages for a bad key: OpenAI's shape, not Anthropic's."""
    message = "Authentication Error, Invalid proxy server token passed. Received API Key = sk-...x"
    return Status(401, body=gateway_error_body(401, message, "auth_error"))


def route_not_found() -> Status:
    """FastAPI's 404 for a path it has no route for: the base URL is wrong, not the model."""
    return Status(404, body={"detail": "Not Found"})


def plain_text_server_error() -> Status:
    """A 500 whose body is a plain-text page (a proxy's, or a server's default)."""
    return Status(500, body="Internal Server Error")


def overloaded_wrapped_in_500(provider: Provider = "openai") -> Status:
    """Anthropic's 529 as LiteLLM 1.108 passes it on: a 500 quoting the upstream body, as a
    bytes literal on /v1/chat/completions ("openai") or as JSON text on /v1/messages."""
    upstream = json.dumps(error_body("anthropic", Status(529), "m"))
    if provider == "anthropic":
        message = f"litellm.InternalServerError: AnthropicError - {upstream}"
        return Status(
            500,
            body={
                "type": "error",
                "error": {"type": "api_error", "message": message + LITELLM_FALLBACK_REPORT},
            },
        )
    message = f"litellm.InternalServerError: AnthropicError - b'{upstream}'"
    return Status(
        500,
        body=gateway_error_body(500, message + LITELLM_FALLBACK_REPORT, "internal_server_error"),
    )


def gateway_answer(text: str = DEFAULT_ANSWER, **options: Any) -> Answer:
    """An answer in the shape gateways and newer servers stream it (see Answer's fields)."""
    shape: dict[str, Any] = {
        "role_in_first_chunk": True,
        "sparse_chunks": True,
        "usage_chunk": "litellm",
        "done_marker": True,
        "ping": False,
    }
    shape.update(options)
    return Answer(text, **shape)


# --- what is recorded -----------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body, or None
    provider: Provider | None
    reply: Reply | None = None
    # The client hung up before the reply was complete.
    disconnected: bool = False

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True


# --- the server ---------------------------------------------------------------------------


class FakeLlmServer:
    """Start with `with FakeLlmServer() as server:` (or the `fake_llm` pytest fixture)."""

    def __init__(self, *, default: Reply | None = None, require_key: str | None = None) -> None:
        self.default: Reply | None = default if default is not None else Answer()
        # When set, requests without this key (Bearer or x-api-key) get the provider's 401.
        self.require_key = require_key
        # What GET /v1/models lists and GET /v1/models/{name} knows, and who "owns" them
        # (llama.cpp's server says "llamacpp" and answers whatever model is asked for).
        self.models: list[str] = ["fake-model"]
        self.models_owned_by = "fake"
        self._script: collections.deque[Reply] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._disconnects = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeLlmServer:
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-llm-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._changed:
            connections = list(self._connections)
        for conn in connections:
            # Unblocks handler threads waiting on an idle keep-alive connection.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, the Anthropic base URL."""
        if self._httpd is None:
            raise RuntimeError("the fake LLM server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    # scripting

    def script(self, *replies: Reply) -> None:
        """Append replies; each model request takes the next one."""
        with self._changed:
            self._script.extend(replies)

    def clear_script(self) -> None:
        """Drop the replies not used yet (a server shared by several tests)."""
        with self._changed:
            self._script.clear()

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._changed:
            return len(self._script)

    # what happened

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """Requests to /chat/completions or /v1/messages (not /v1/models or unknown paths)."""
        return [r for r in self.requests if r.method == "POST" and r.provider is not None]

    @property
    def disconnects(self) -> int:
        with self._changed:
            return self._disconnects

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= count, timeout)

    def wait_for_disconnect(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until `count` clients in all have hung up before their reply was complete."""
        with self._changed:
            return self._changed.wait_for(lambda: self._disconnects >= count, timeout)

    # used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _next_reply(self) -> Reply:
        with self._changed:
            if self._script:
                return self._script.popleft()
        if self.default is not None:
            return self.default
        return Status(500, message="fake LLM server: no scripted reply left", kind="server")

    def _note_disconnect(self, request: RecordedRequest) -> None:
        with self._changed:
            if not request.disconnected:
                request.disconnected = True
                self._disconnects += 1
                self._changed.notify_all()

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._changed:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeLlmServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Disconnected(Exception):
    """The client hung up; nothing more can be sent."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked streams and keep-alive, like real servers
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, alive=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, alive=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Tests read `requests`; access lines would only clutter their output.

    def do_GET(self) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path.rstrip("/")
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake._record(RecordedRequest("GET", path, headers, None, None))
        provider: Provider = "anthropic" if "anthropic-version" in headers else "openai"
        listing = path in ("/v1/models", "/models")
        one = re.fullmatch(r"(?:/v1)?/models/(.+)", path)
        if not listing and one is None:
            self._send_raw(404, b"404 page not found", "text/plain; charset=utf-8")
        elif fake.require_key is not None and _sent_key(headers) != fake.require_key:
            self._send_json(401, error_body(provider, Status(401), "fake-model"))
        elif listing:
            data = [_model_object(name, fake.models_owned_by) for name in fake.models]
            self._send_json(200, {"object": "list", "data": data, "has_more": False})
        else:
            assert one is not None
            name = unquote(one.group(1))
            if name in fake.models:
                self._send_json(200, _model_object(name, fake.models_owned_by))
            else:
                self._send_json(404, error_body(provider, Status(404), name))

    def do_POST(self) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        provider: Provider | None = None
        if path in ("/v1/chat/completions", "/chat/completions"):
            provider = "openai"
        elif path == "/v1/messages":
            provider = "anthropic"
        record = RecordedRequest("POST", path, headers, body, provider)
        fake._record(record)
        if provider is None:
            self._send_raw(404, b"404 page not found", "text/plain; charset=utf-8")
            return
        responder = _Responder(self, provider, body if isinstance(body, dict) else {}, record)
        try:
            problem = _request_problem(provider, headers, body)
            if problem is not None:
                responder.send(Status(400, message=problem, kind="bad_request"))
            elif fake.require_key is not None and _sent_key(headers) != fake.require_key:
                responder.send(Status(401))
            else:
                record.reply = fake._next_reply()
                responder.send(record.reply)
        except (_Disconnected, OSError):
            fake._note_disconnect(record)
            self.close_connection = True

    def _send_json(self, status: int, payload: Any, extra: Mapping[str, str] = {}) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", extra)

    def _send_raw(
        self, status: int, data: bytes, content_type: str, extra: Mapping[str, str] = {}
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _model_object(name: str, owner: str = "fake") -> dict[str, Any]:
    return {"id": name, "object": "model", "type": "model", "owned_by": owner}


def _sent_key(headers: Mapping[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


def _request_problem(provider: Provider, headers: Mapping[str, str], body: Any) -> str | None:
    """What the real API would reject the request for (a subset), or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    if provider == "anthropic":
        if "anthropic-version" not in headers:
            return "anthropic-version: header is required"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        for message in messages:
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                return (
                    f'messages: Unexpected role "{role}". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
    return None


# (OpenAI type, OpenAI code, OpenAI message, Anthropic type, Anthropic message) by kind.
_ERRORS: dict[str, tuple[str, str | None, str, str, str]] = {
    "auth": (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "authentication_error",
        "invalid x-api-key",
    ),
    "permission": (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    "not_found": (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
        "not_found_error",
        "model: {model}",
    ),
    "rate_limit": (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit.",
    ),
    "context": (
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "prompt is too long: 210000 tokens > 200000 maximum",
    ),
    "overloaded": (
        "server_error",
        None,
        "The engine is currently overloaded, please try again later.",
        "overloaded_error",
        "Overloaded",
    ),
    "server": (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
        "api_error",
        "Internal server error",
    ),
    "bad_request": (
        "invalid_request_error",
        None,
        "Invalid request.",
        "invalid_request_error",
        "Invalid request.",
    ),
}


def _kind_for(status: int) -> str:
    return {401: "auth", 403: "permission", 404: "not_found", 429: "rate_limit"}.get(
        status,
        "overloaded" if status in (503, 529) else "server" if status >= 500 else "bad_request",
    )


def error_body(provider: Provider, status: Status, model: str) -> dict[str, Any]:
    """The JSON error body the real provider sends for `status`."""
    openai_type, code, openai_message, anthropic_type, anthropic_message = _ERRORS[
        status.kind or _kind_for(status.status)
    ]
    if provider == "anthropic":
        return {
            "type": "error",
            "error": {
                "type": anthropic_type,
                "message": status.message or anthropic_message.format(model=model),
            },
            "request_id": "req_fake",
        }
    return {
        "error": {
            "message": status.message or openai_message.format(model=model),
            "type": openai_type,
            "param": "messages" if code == "context_length_exceeded" else None,
            "code": code,
        }
    }


class _Responder:
    """Sends one scripted reply in one provider's wire format."""

    def __init__(
        self, handler: _Handler, provider: Provider, body: dict[str, Any], record: RecordedRequest
    ) -> None:
        self.h = handler
        self.provider = provider
        self.body = body
        self.record = record
        self.model = str(body.get("model") or "fake-model")
        self.fragment: int | None = None

    def send(self, reply: Reply) -> None:
        if isinstance(reply, Answer):
            self._answer(reply)
        elif isinstance(reply, Status):
            self._status(reply)
        elif isinstance(reply, Delay):
            self._wait(reply.seconds)
            self.send(reply.then or self.h.server.fake.default or Answer())
        elif isinstance(reply, Malformed):
            self._malformed(reply)
        elif isinstance(reply, CutShort):
            self._cut_short(reply)
        else:
            self._stream_error(reply)

    # plain answers

    def _answer(self, answer: Answer) -> None:
        as_stream = answer.format == "sse" or (answer.format == "auto" and self.record.stream)
        if not as_stream:
            self._json(200, self._whole_answer(answer.text, answer.truncated))
            return
        self.fragment = answer.fragment
        self._start_stream()
        for event in self._opening(answer):
            self._event(event)
        for index, piece in enumerate(answer.pieces()):
            role = answer.role_in_first_chunk and index == 0
            self._event(self._text_event(piece, role=role, sparse=answer.sparse_chunks))
            if index == 0 and answer.gate is not None:
                self._wait(None, until=answer.gate)
            if answer.chunk_delay:
                self._wait(answer.chunk_delay)
        for event in self._closing(answer.truncated, answer):
            self._event(event)
        self._end_stream()

    def _whole_answer(self, text: str, truncated: bool) -> dict[str, Any]:
        if self.provider == "anthropic":
            return {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [{"type": "text", "text": text}] if text else [],
                "stop_reason": "max_tokens" if truncated else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": len(text.split())},
            }
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())},
        }

    # SSE events, as (event name or None, JSON payload or raw data)

    def _opening(self, shape: Answer | None = None) -> list[tuple[str | None, Any]]:
        shape = shape or Answer()
        if self.provider == "anthropic":
            message: dict[str, Any] = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": self.model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 1},
            }
            return [
                ("message_start", {"type": "message_start", "message": message}),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                *([("ping", {"type": "ping"})] if shape.ping else []),
            ]
        if shape.role_in_first_chunk:
            return []
        return [(None, self._openai_chunk({"role": "assistant", "content": ""}))]

    def _text_event(
        self, text: str, *, role: bool = False, sparse: bool = False
    ) -> tuple[str | None, Any]:
        if self.provider == "anthropic":
            delta = {"type": "text_delta", "text": text}
            return (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": delta},
            )
        content: dict[str, Any] = {"role": "assistant", "content": text} if role else {}
        content["content"] = text
        return (None, self._openai_chunk(content, sparse=sparse))

    def _closing(
        self, truncated: bool, shape: Answer | None = None
    ) -> list[tuple[str | None, Any]]:
        shape = shape or Answer()
        if self.provider == "anthropic":
            stop = "max_tokens" if truncated else "end_turn"
            return [
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": 15},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        finish = "length" if truncated else "stop"
        events: list[tuple[str | None, Any]] = [
            (None, self._openai_chunk({}, finish, sparse=shape.sparse_chunks))
        ]
        if shape.usage_chunk is not None:
            usage = self._openai_chunk({}, sparse=True)
            usage["choices"] = [] if shape.usage_chunk == "openai" else [{"index": 0, "delta": {}}]
            usage["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            events.append((None, usage))
        if shape.done_marker:
            events.append((None, "[DONE]"))
        return events

    def _openai_chunk(
        self, delta: dict[str, Any], finish: str | None = None, *, sparse: bool = False
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if not sparse or finish is not None:
            choice["finish_reason"] = finish
        if not sparse:
            choice["logprobs"] = None
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [choice],
        }

    # failures

    def _status(self, status: Status) -> None:
        headers = dict(status.headers)
        if status.retry_after is not None:
            headers["Retry-After"] = status.retry_after
        headers["request-id" if self.provider == "anthropic" else "x-request-id"] = "req_fake"
        if status.body is None:
            self._json(status.status, error_body(self.provider, status, self.model), headers)
        elif isinstance(status.body, Mapping):
            self._json(status.status, dict(status.body), headers)
        else:
            data = status.body.encode() if isinstance(status.body, str) else status.body
            content_type = "application/json" if data[:1] in (b"{", b"[") else "text/plain"
            self._raw(status.status, data, content_type, headers)

    def _malformed(self, malformed: Malformed) -> None:
        page = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>\n"
        if malformed.kind == "html":
            self._raw(200, page, "text/html; charset=utf-8")
        elif malformed.kind == "sse":
            self._start_stream()
            self._chunk(page)
            self._end_stream()
        elif malformed.kind == "json_body" or not self.record.stream:
            self._raw(
                200,
                b'{"id": "chatcmpl-fake", "choices": [{"message": {"content": "Hel',
                "application/json",
            )
        else:
            self._start_stream()
            for event in self._opening():
                self._event(event)
            self._event(self._text_event("Hel"))
            broken = (
                b"event: content_block_delta\n"
                b'data: {"type": "content_block_delta", "delta": {"te\n\n'
                if self.provider == "anthropic"
                else b'data: {"choices": [{"index": 0, "delta": {"content": "lo\n\n'
            )
            self._chunk(broken)
            for event in self._closing(False):
                self._event(event)
            self._end_stream()

    def _cut_short(self, cut: CutShort) -> None:
        if not self.record.stream:
            data = json.dumps(self._whole_answer(cut.text, False)).encode()
            self.h.send_response(200)
            self.h.send_header("Content-Type", "application/json")
            self.h.send_header("Content-Length", str(len(data)))
            self.h.end_headers()
            self._write(data[: len(data) // 2])
            self.h.close_connection = True
            return
        self._start_stream()
        for event in self._opening():
            self._event(event)
        for piece in Answer(cut.text).pieces():
            self._event(self._text_event(piece))
        if cut.clean:
            self._end_stream()
        else:
            # Closing without the terminating zero-length chunk, as a crashing server does.
            self.h.close_connection = True

    def _stream_error(self, error: StreamError) -> None:
        self._start_stream()
        for event in self._opening(Answer(ping=error.ping)):
            self._event(event)
        for piece in Answer(error.text).pieces():
            self._event(self._text_event(piece))
        if error.payload is not None:
            name = "error" if self.provider == "anthropic" and "type" in error.payload else None
            self._event((name, dict(error.payload)))
        elif self.provider == "anthropic":
            payload = {
                "type": "error",
                "error": {"type": error.error_type, "message": error.message},
            }
            self._event(("error", payload))
        else:
            body = {"message": error.message, "type": error.error_type, "code": error.code}
            self._event((None, {"error": {**body, "param": None}}))
        self._end_stream()

    # bytes on the wire

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _raw(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] = {}
    ) -> None:
        self.h.send_response(status)
        self.h.send_header("Content-Type", content_type)
        self.h.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.h.send_header(name, value)
        self.h.end_headers()
        self._write(data)

    def _start_stream(self) -> None:
        self.h.send_response(200)
        self.h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.h.send_header("Cache-Control", "no-cache")
        self.h.send_header("Transfer-Encoding", "chunked")
        try:
            self.h.end_headers()
        except OSError as exc:
            raise _Disconnected from exc

    def _event(self, event: tuple[str | None, Any]) -> None:
        name, payload = event
        data = payload if isinstance(payload, str) else json.dumps(payload)
        text = (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
        self._chunk(text.encode())

    def _chunk(self, data: bytes) -> None:
        size = self.fragment or len(data)
        for start in range(0, len(data), size):
            piece = data[start : start + size]
            self._write(b"%x\r\n%s\r\n" % (len(piece), piece))

    def _end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        try:
            self.h.wfile.write(data)
            self.h.wfile.flush()
        except OSError as exc:
            raise _Disconnected from exc

    def _wait(self, seconds: float | None, until: threading.Event | None = None) -> None:
        """Sleep `seconds` (or until `until` is set), noticing at once if the client hangs up."""
        fake = self.h.server.fake
        deadline = None if seconds is None else time.monotonic() + seconds
        conn = self.h.connection
        while until is None or not until.is_set():
            remaining = 0.05 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            if fake._stopping.is_set():
                raise _Disconnected
            readable, _, _ = select.select([conn], [], [], min(remaining, 0.05))
            if readable:
                try:
                    peeked = conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    raise _Disconnected
                time.sleep(min(remaining, 0.05))  # The client sent more; it is still there.


def main() -> None:
    """Serve until interrupted, answering every request with one text (for manual tries)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--answer", default=DEFAULT_ANSWER)
    args = parser.parse_args()
    with FakeLlmServer(default=Answer(args.answer)) as server:
        print(f"OpenAI base URL: {server.openai_base_url}   Anthropic: {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
