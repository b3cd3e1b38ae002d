"""HTTP machinery the OpenAI-compatible and Anthropic clients share: SSE parsing, retries,
timeouts, and mapping HTTP failures to errors that say what to do."""

from __future__ import annotations

import abc
import asyncio
import email.utils
import functools
import json
import logging
import math
import os
import random
import re
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from codeexec_lsp.llm.base import (
    ChatMessage,
    LlmAnswerTooLong,
    LlmAnswerTruncated,
    LlmAuthError,
    LlmBadAnswer,
    LlmBadRequest,
    LlmContextTooLong,
    LlmError,
    LlmNotConfigured,
    LlmNotFound,
    LlmQuotaExceeded,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
)
from codeexec_lsp.llm.errors import (
    ErrorKind,
    ServerError,
    classify,
    read_error,
    retry_after_in_message,
)

log = logging.getLogger("codeexec_lsp.llm")

# A misrouted baseUrl can answer with a whole web page; the error message needs only its start.
_ERROR_BODY_LIMIT = 64 * 1024
# A model that never stops, or a server that streams without end, must not fill the memory.
# The answer's text is capped well above what max_tokens allows (4096 tokens are ~16,000
# characters) and above answers.MAX_ANSWER_CHARS, which explains a merely long answer; the
# response is capped too, for its JSON and SSE framing (a few hundred characters per delta)
# and for lines that never end.
MAX_ANSWER_TEXT_CHARS = 400_000
MAX_RESPONSE_CHARS = 32 * 1024 * 1024
_LINE_END = re.compile(r"\r\n|\r|\n")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def is_local_url(url: str) -> bool:
    """True for loopback hosts: local model servers need no key and never go through a proxy."""
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


@dataclass(frozen=True)
class RetryPolicy:
    """How 429, 5xx and connection failures are retried. Timeouts are never retried, so a
    user waits about `llm.timeout`, not a multiple of it."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A longer Retry-After is reported to the user instead of silently waited for.
    max_retry_after: float = 30.0

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        # Jitter keeps several clients that share a rate limit from retrying in lockstep.
        return min(self.max_delay, self.base_delay * 2.0 ** (retry - 1)) * random.uniform(0.5, 1.0)


# Gateways rename the provider's header when they pass it on (LiteLLM: llm_provider-*).
_RETRY_AFTER_HEADERS = (
    ("retry-after-ms", 0.001),
    ("llm_provider-retry-after-ms", 0.001),
    ("retry-after", 1.0),
    ("llm_provider-retry-after", 1.0),
)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date), or
    from the same headers as a gateway renames them (`llm_provider-retry-after[-ms]`)."""
    for name, scale in _RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            seconds = when.timestamp() - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event. `event` is "" when the server sent no `event:` field."""

    event: str
    data: str


class SseParser:
    """Incremental text/event-stream parser (WHATWG rules), fed one line at a time.

    Why not httpx-sse: its `aiter_sse()` reads lines from the response itself, so the
    characters of a line that never ends cannot be counted against MAX_RESPONSE_CHARS before
    it has filled the memory (here LineSplitter counts every chunk as it arrives); its
    EventSource raises SSEError, a subclass of httpx.TransportError, for any other content
    type, which would read as "cut short" where a JSON answer (servers that ignore `stream`,
    as LiteLLM's /v1/messages does for mock models) or an HTML page needs its own handling;
    and what is left to share is this class, forty lines with its tests.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.events = 0
        self.junk_lines = 0

    def feed(self, line: str) -> SseEvent | None:
        """Take one line without its line ending; return the event a blank line completes."""
        if not line:
            data, event = self._data, self._event
            self._data, self._event = [], ""
            if not data:
                return None
            self.events += 1
            return SseEvent(event, "\n".join(data))
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name not in ("id", "retry"):
            # Counted so an HTML error page served as text/event-stream can be told apart
            # from a stream that was merely cut short.
            self.junk_lines += 1
        return None


class LineSplitter:
    """Streamed text to lines (``\\r\\n``, ``\\r`` or ``\\n`` end one), as they complete.

    A partial line is kept as pieces and joined once, when it ends: a server that sends a
    long line a byte at a time costs linear time, not quadratic.
    """

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the second half of a \r\n split between two chunks
        if not text:
            return []
        self._after_cr = text.endswith("\r")
        *ended, rest = _LINE_END.split(text)
        lines: list[str] = []
        for piece in ended:
            self._partial.append(piece)
            lines.append("".join(self._partial))
            self._partial = []
        if rest:
            self._partial.append(rest)
        return lines

    def close(self) -> list[str]:
        rest, self._partial = "".join(self._partial), []
        return [rest] if rest else []


@dataclass
class AnswerState:
    """What a decoder learned about the answer besides its text."""

    finished: bool = False
    truncated: bool = False
    not_an_event_stream: bool = False


@dataclass(frozen=True)
class _Retryable:
    kind: type[LlmError]
    what: str
    advice: str
    retry_after: float | None


class _StreamFailure(Exception):
    """A retryable error event inside a 200 stream: retried like an HTTP failure while no
    text has reached the caller yet, reported otherwise."""

    def __init__(self, retryable: _Retryable) -> None:
        super().__init__(retryable.what)
        self.retryable = retryable


@functools.cache
def ssl_context(trust_env: bool) -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds; a client per request would pay it
    # every time. SSL_CERT_FILE / SSL_CERT_DIR are therefore read once, on first use.
    return httpx.create_ssl_context(trust_env=trust_env)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _describe_transport_error(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpChatModel(abc.ABC):
    """A ChatModel over HTTP with SSE streaming. Subclasses supply the wire format.

    The API key is read from the environment for every request, never stored, and never part
    of a message or repr. `stream()` is an async generator: a consumer that stops early should
    close it (`contextlib.aclosing`) or cancel its task; either closes the HTTP connection.
    """

    provider = ""
    default_key_env = ""
    official_hosts: frozenset[str] = frozenset()
    max_answer_chars = MAX_ANSWER_TEXT_CHARS
    max_response_chars = MAX_RESPONSE_CHARS

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key_env: str,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r}, timeout={self.timeout!r})"
        )

    # --- what subclasses define -----------------------------------------------------------

    @property
    @abc.abstractmethod
    def endpoint(self) -> str:
        """The URL requests are POSTed to."""

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """How messages name the server, e.g. "OpenAI-compatible server"."""

    @abc.abstractmethod
    def missing_key_message(self) -> str:
        """What to set when the server needs a key and none is set."""

    @abc.abstractmethod
    def _headers(self, api_key: str) -> dict[str, str]: ...

    @abc.abstractmethod
    def _body(self, messages: Sequence[ChatMessage], max_tokens: int) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _decode_events(
        self, events: AsyncIterator[SseEvent], state: AnswerState
    ) -> AsyncIterator[str]:
        """Yield text deltas from a streamed answer; set `state.finished` at its proper end."""

    @abc.abstractmethod
    def _decode_json(self, payload: Any, state: AnswerState) -> str:
        """The text of a non-streamed answer (a server may ignore `stream: true`)."""

    def _not_found_advice(self) -> str:
        return "Check codeexec.llm.model and codeexec.llm.baseUrl."

    # --- the ChatModel interface ----------------------------------------------------------

    @property
    def name(self) -> str:
        if self.is_official:
            return f"{self.provider}:{self.model}"
        return f"{self.provider}:{self.model}@{self.base_url}"

    @property
    def is_official(self) -> bool:
        return (urlsplit(self.base_url).hostname or "").lower() in self.official_hosts

    def api_key(self) -> str:
        """The key, read from the environment now; "" if unset and the server needs none."""
        key = os.environ.get(self.api_key_env, "").strip()
        if not key and self.is_official:
            raise LlmNotConfigured(self.missing_key_message())
        return key

    def key_advice(self) -> str:
        if self.api_key_env == self.default_key_env:
            return f"Set {self.api_key_env} (or the variable named by codeexec.llm.apiKeyEnv)"
        return f"Set {self.api_key_env} (the variable named by codeexec.llm.apiKeyEnv)"

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048
    ) -> AsyncGenerator[str, None]:
        api_key = self.api_key()
        headers = self._headers(api_key)
        body = self._body(messages, max_tokens)
        trust_env = not is_local_url(self.base_url)
        async with httpx.AsyncClient(
            timeout=self._timeouts(), trust_env=trust_env, verify=ssl_context(trust_env)
        ) as client:
            attempt = 0
            while True:
                response, attempt = await self._send(client, headers, body, api_key, attempt)
                state = AnswerState()
                received = 0
                answered = False
                try:
                    async for text in self._read(response, state):
                        received += len(text)
                        if received > self.max_answer_chars:
                            raise self._too_long("answer", self.max_answer_chars)
                        answered = answered or bool(text.strip())
                        yield text
                except _StreamFailure as failure:
                    retryable = failure.retryable
                    if received:
                        # The caller has shown part of the answer; a second answer would not
                        # continue it, so the error is reported rather than retried.
                        raise retryable.kind(
                            f"{_sentence(self._where)} {retryable.what} after part of the "
                            f"answer had arrived. {retryable.advice}"
                        ) from None
                    await self._wait_before_retry(retryable, attempt)
                    continue
                finally:
                    # Also when the cap is hit: closing is what stops the model's server sending.
                    await response.aclose()
                break
        self._check_complete(state, answered=answered, max_tokens=max_tokens)

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        parts: list[str] = []
        try:
            async for text in self.stream(messages, max_tokens=max_tokens):
                parts.append(text)
        except LlmAnswerTruncated as exc:
            raise LlmAnswerTruncated(str(exc), "".join(parts)) from None
        return "".join(parts)

    # --- transport --------------------------------------------------------------------------

    def _timeouts(self) -> httpx.Timeout:
        # `read` bounds the wait for each chunk, so a long answer that keeps streaming is
        # fine while a server that goes silent for `timeout` seconds is not.
        return httpx.Timeout(
            connect=min(self.timeout, 10.0),
            read=self.timeout,
            write=self.timeout,
            pool=self.timeout,
        )

    @property
    def _where(self) -> str:
        return f"the {self.label} at {self.endpoint}"

    def _timeout_error(self) -> LlmTimeout:
        return LlmTimeout(
            f"No answer from {self._where} within {self.timeout:g} s (model '{self.model}'). "
            "Increase codeexec.llm.timeout, or check that the server is up and not overloaded "
            "(a local model may still be loading)."
        )

    async def _send(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        body: dict[str, Any],
        key: str,
        attempt: int,
    ) -> tuple[httpx.Response, int]:
        """The first successful response, and the number of attempts made so far in all."""
        while True:
            attempt += 1
            log.debug("POST %s (model %s, attempt %d)", self.endpoint, self.model, attempt)
            request = client.build_request("POST", self.endpoint, headers=headers, json=body)
            try:
                response = await client.send(request, stream=True)
            except httpx.TimeoutException:
                raise self._timeout_error() from None
            except httpx.UnsupportedProtocol:
                raise LlmNotConfigured(
                    f"codeexec.llm.baseUrl {self.base_url!r} is not an http(s) URL. "
                    "Set it to the server's API root, e.g. http://localhost:11434/v1."
                ) from None
            except httpx.TransportError as exc:
                retryable = _Retryable(
                    LlmUnavailable,
                    f"could not be reached ({_describe_transport_error(exc)})",
                    "Check that the server is running and that codeexec.llm.baseUrl is right.",
                    None,
                )
            else:
                if response.is_success:
                    return response, attempt
                retryable = await self._failure(response, key)
            await self._wait_before_retry(retryable, attempt)

    async def _wait_before_retry(self, retryable: _Retryable, attempt: int) -> None:
        """Sleep before the next attempt as the server asked (or with backoff); raise the
        error instead when no retries are left or the server asks for too long a wait."""
        if attempt > self.retry.max_retries:
            raise retryable.kind(
                f"{_sentence(self._where)} {retryable.what}; gave up after {attempt} "
                f"attempt{'s' if attempt != 1 else ''}. {retryable.advice}"
            )
        wait = retryable.retry_after
        if wait is None:
            wait = self.retry.backoff(attempt)
        elif wait > self.retry.max_retry_after:
            raise retryable.kind(
                f"{_sentence(self._where)} {retryable.what} and asked to retry after "
                f"{wait:.0f} s. {retryable.advice}"
            )
        log.info(
            "%s %s; retrying in %.2f s (retry %d of %d)",
            self.endpoint,
            retryable.what,
            wait,
            attempt,
            self.retry.max_retries,
        )
        await asyncio.sleep(wait)

    async def _failure(self, response: httpx.Response, key: str) -> _Retryable:
        """Raise the error for a status that retrying cannot help; describe a retryable one."""
        try:
            raw = await self._read_error_body(response)
        finally:
            await response.aclose()
        status = response.status_code
        error = self._read_error_body_text(raw, key)
        detail = f"HTTP {status}: {error.message}" if error.message else f"HTTP {status}"
        kind = classify(status, error)
        if kind.retryable:
            return self._retryable(kind, detail, parse_retry_after(response.headers))
        raise self._error(kind, detail, error, key, response.headers.get("location"))

    async def _read_error_body(self, response: httpx.Response) -> bytes:
        raw = b""
        try:
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) >= _ERROR_BODY_LIMIT:
                    break
        except httpx.TimeoutException:
            raise self._timeout_error() from None
        except httpx.TransportError:
            pass  # The status alone still tells the user what went wrong.
        return raw

    def _read_error_body_text(self, raw: bytes, key: str) -> ServerError:
        text = raw.decode("utf-8", "replace")
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = None
        return read_error(payload, text, secrets=self._secrets(key))

    @staticmethod
    def _secrets(key: str) -> tuple[str, ...]:
        # Some servers echo the key they rejected; the message ends up in the editor.
        return (key,) if key and len(key) >= 4 else ()

    def _retryable(self, kind: ErrorKind, detail: str, retry_after: float | None) -> _Retryable:
        if kind is ErrorKind.RATE_LIMIT:
            return _Retryable(
                LlmRateLimited,
                f"is rate-limiting requests ({detail})",
                "Wait a minute and try again, or check the rate limits of your plan.",
                retry_after,
            )
        if kind is ErrorKind.OVERLOADED:
            return _Retryable(
                LlmUnavailable, f"is overloaded ({detail})", "Try again in a moment.", retry_after
            )
        return _Retryable(
            LlmUnavailable,
            f"failed ({detail})",
            "Try again later; if the server is your own, check its log.",
            retry_after,
        )

    def _error(
        self,
        kind: ErrorKind,
        detail: str,
        error: ServerError,
        key: str,
        location: str | None = None,
    ) -> LlmError:
        """The error for a failure that retrying cannot help, saying what to do about it."""
        where = _sentence(self._where)
        upstream = (
            " If the key is right, the gateway's own key for its upstream provider may be the "
            "one refused: check the gateway's configuration."
            if error.from_gateway_upstream
            else ""
        )
        if kind is ErrorKind.QUOTA:
            whose = f"the key in {self.api_key_env}"
            if upstream:
                whose += " (or of the gateway's account upstream)"
            return LlmQuotaExceeded(
                f"Your account's quota is used up: {self._where} refused the request ({detail}). "
                f"Check the plan and billing of {whose}; retrying will not help until it is "
                "topped up."
            )
        if kind is ErrorKind.AUTH:
            if not key:
                return LlmAuthError(
                    f"{where} needs an API key ({detail}), and none was sent because "
                    f"{self.api_key_env} is not set. {self.key_advice()} to your key."
                )
            return LlmAuthError(
                f"{where} rejected the API key from {self.api_key_env} ({detail}). "
                f"{self.key_advice()} to a valid key.{upstream}"
            )
        if kind is ErrorKind.MODEL:
            return LlmNotFound(
                f"Model '{self.model}' was not found at {self.endpoint} ({detail}). "
                f"{self._not_found_advice()}"
            )
        if kind is ErrorKind.ROUTE:
            return LlmNotFound(
                f"There is no {self.label} API at {self.endpoint} ({detail}), so model "
                f"'{self.model}' cannot be asked there. Check codeexec.llm.baseUrl: it should be "
                f"the API root{self._api_root_hint()}."
            )
        if kind is ErrorKind.CONTEXT:
            return self._context_error(detail)
        if kind is ErrorKind.REDIRECT:
            return LlmBadRequest(
                f"{where} redirected the request to {location or 'another address'} ({detail}). "
                "Set codeexec.llm.baseUrl to the address the server redirects to."
            )
        if kind is ErrorKind.BAD_REQUEST:
            return LlmBadRequest(
                f"{where} refused the request ({detail}). "
                "Check codeexec.llm.model and codeexec.llm.baseUrl."
            )
        if kind.retryable:
            retryable = self._retryable(kind, detail, None)
            return retryable.kind(f"{where} {retryable.what}. {retryable.advice}")
        return LlmBadAnswer(f"{where} reported an error while answering ({detail}). Try again.")

    def _api_root_hint(self) -> str:
        return ""

    def _context_error(self, detail: str) -> LlmContextTooLong:
        return LlmContextTooLong(
            f"The request is too long for model '{self.model}' ({detail}). Select fewer lines, "
            "or choose a model with a larger context window in codeexec.llm.model."
        )

    # --- answers -------------------------------------------------------------------------------

    async def _read(self, response: httpx.Response, state: AnswerState) -> AsyncIterator[str]:
        content_type = response.headers.get("content-type", "").lower()
        try:
            if content_type.startswith("text/event-stream"):
                parser = SseParser()
                async for text in self._decode_events(self._events(response, parser), state):
                    yield text
                state.not_an_event_stream = parser.events == 0 and parser.junk_lines > 0
            elif "json" in content_type:
                yield self._decode_json(self._parse_json(await self._whole_body(response)), state)
            else:
                raise LlmBadAnswer(
                    f"{_sentence(self._where)} answered with "
                    f"{content_type or 'no content type'} instead of an event stream. Check that "
                    "codeexec.llm.baseUrl points at the API, not at a web page."
                )
        except httpx.TimeoutException:
            raise self._timeout_error() from None
        except httpx.TransportError as exc:
            if not state.finished:
                raise LlmBadAnswer(
                    f"The answer from {self._where} was cut short "
                    f"({_describe_transport_error(exc)}). Try again."
                ) from None

    async def _events(self, response: httpx.Response, parser: SseParser) -> AsyncIterator[SseEvent]:
        splitter = LineSplitter()
        received = 0
        async for text in response.aiter_text():
            received += len(text)
            if received > self.max_response_chars:
                raise self._too_long("response", self.max_response_chars)
            for line in splitter.feed(text):
                event = parser.feed(line)
                if event is not None:
                    yield event
        for line in splitter.close():  # as the spec says, an event without its blank line is lost
            parser.feed(line)

    async def _whole_body(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self.max_response_chars:
                raise self._too_long("response", self.max_response_chars)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_long(self, what: str, limit: int) -> LlmAnswerTooLong:
        return LlmAnswerTooLong(
            f"The {what} from {self._where} (model '{self.model}') went past {limit:,} "
            "characters without ending, so it was cut off and not used. Try again, or choose "
            "another model in codeexec.llm.model."
        )

    def _check_complete(self, state: AnswerState, *, answered: bool, max_tokens: int) -> None:
        if state.not_an_event_stream:
            raise LlmBadAnswer(
                f"{_sentence(self._where)} sent something that is not an event stream. Check "
                "that codeexec.llm.baseUrl points at the API (for OpenAI-compatible servers it "
                "usually ends in /v1)."
            )
        if not state.finished:
            raise LlmBadAnswer(
                f"The answer from {self._where} was cut short: the stream ended before the "
                "model finished. Try again."
            )
        if state.truncated:
            raise LlmAnswerTruncated(
                f"The answer from model '{self.model}' stopped at the limit of {max_tokens} "
                "tokens before it was complete. Select less code, or ask again."
            )
        if not answered:
            raise LlmBadAnswer(
                f"Model '{self.model}' at {self.endpoint} returned an empty answer. Try again, "
                "or choose another model in codeexec.llm.model."
            )

    def _parse_json(self, data: str | bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            raise self._malformed("invalid JSON") from None

    def _malformed(self, what: str) -> LlmBadAnswer:
        return LlmBadAnswer(
            f"{_sentence(self._where)} sent a malformed answer ({what}). Try again; if it keeps "
            f"happening, check that codeexec.llm.baseUrl points at an {self.label}."
        )

    def _stream_error(self, payload: Any) -> Exception:
        """The error for an error event (or error body) that arrived inside a 200 response.
        A retryable one becomes a _StreamFailure, which `stream()` retries or reports."""
        error = read_error(payload, secrets=self._secrets(self._current_key()))
        kind = classify(None, error)
        status = error.body_status
        message = error.message or "no details"
        detail = f"error {status}: {message}" if status else message
        if kind.retryable:
            retryable = self._retryable(kind, detail, retry_after_in_message(error.message))
            if kind is ErrorKind.UNAVAILABLE:
                retryable = _Retryable(
                    retryable.kind,
                    f"failed while answering ({detail})",
                    "Try again in a moment.",
                    retryable.retry_after,
                )
            return _StreamFailure(retryable)
        return self._error(kind, detail, error, self._current_key())

    def _current_key(self) -> str:
        return os.environ.get(self.api_key_env, "").strip()
