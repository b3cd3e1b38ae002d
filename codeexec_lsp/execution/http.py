"""The remote backend: a client of any server that speaks the /execute contract (DESIGN.md).

Only the selection's code is sent, so the server numbers its lines from 1. Errors are moved
back into the file here: from the structured `error_info` our own server adds, else from
the Python traceback in the `error` text, whatever file name the server ran the code under.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.display import bounded_outputs
from codeexec_lsp.execution.outcome import relabel
from codeexec_lsp.execution.runner import (
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_TRACEBACK_CHARS,
    clip,
    clip_frames,
)
from codeexec_lsp.lines import split_lines
from codeexec_lsp.results import ErrorInfo, Frame, RunResult, Status
from codeexec_lsp.snippet import Snippet

DEFAULT_TOKEN_ENV = "CODEEXEC_API_TOKEN"
CONNECT_TIMEOUT_S = 10.0
# Beyond max_run_time: process start-up, a library check, the trip itself.
READ_MARGIN_S = 15.0
# A busy server asking for a longer wait is reported rather than waited for in silence.
MAX_RETRY_AFTER_S = 10.0
DEFAULT_RETRY_WAIT_S = 1.0
MESSAGE_CHARS = 300
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


# --- moving a remote traceback into the file ------------------------------------------------

_FILE_LINE = re.compile(
    r'^(?P<indent>[ \t]*)File "(?P<file>[^"\n]+)", line (?P<line>\d+)(?P<rest>[^\n]*)$',
    re.MULTILINE,
)
# What exec() and friends name code that has no file: <string>, <stdin>, <exec>... but not
# "<frozen importlib._bootstrap>" or other names with spaces, which are the interpreter's.
_PSEUDO_FILE = re.compile(r"<[\w.-]+>")
_EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::[ \t]?(?P<message>.*))?$")
# Without a traceback, only a name that looks like an exception is taken for one, so a
# stderr line such as "Note: ..." is not.
_EXCEPTION_NAME = re.compile(r"(Error|Exception|Exit|Interrupt|Warning|Exceeded|Iteration)$")
_CARETS = re.compile(r"^[ \t]*[\^~]+[ \t]*$")
_TRACEBACK_HEADER = "Traceback (most recent call last):"


@dataclass(frozen=True)
class Placement:
    """Where the submitted code stands in the file: code line n is file line n + offset."""

    path: str
    line_offset: int
    column: int
    code_lines: tuple[str, ...]

    @classmethod
    def of(cls, snippet: Snippet) -> Placement:
        return cls(
            snippet.path, snippet.first_line, snippet.column, tuple(split_lines(snippet.code))
        )

    def code_line(self, number: int) -> str | None:
        return self.code_lines[number - 1] if 1 <= number <= len(self.code_lines) else None


def snippet_files(text: str, place: Placement) -> set[str]:
    """The file names under which `text` shows the submitted code.

    A pseudo-file name (`<string>`) counts when its line number fits the code; a real path
    counts when the source line shown under it is the code's line of that number.
    """
    lines = split_lines(text)
    files: set[str] = set()
    for index, line in enumerate(lines):
        match = _FILE_LINE.match(line)
        if match is None:
            continue
        code_line = place.code_line(int(match["line"]))
        if code_line is None:
            continue
        if _PSEUDO_FILE.fullmatch(match["file"]):
            files.add(match["file"])
            continue
        shown = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if shown and shown == code_line.strip():
            files.add(match["file"])
    return files


def remap_traceback(text: str, files: set[str], place: Placement) -> str:
    def moved(match: re.Match[str]) -> str:
        if match["file"] not in files:
            return match[0]
        line = int(match["line"]) + place.line_offset
        return f'{match["indent"]}File "{place.path}", line {line}{match["rest"]}'

    return _FILE_LINE.sub(moved, text)


def _frame_name(rest: str) -> str:
    match = re.match(r", in (.+)$", rest)
    return match[1].strip() if match else "<module>"


def _column(block: list[str], index: int, number: int, place: Placement) -> int | None:
    """The column in the file from the caret line under the shown source, else the line's
    first code character."""
    code_line = place.code_line(number)
    if code_line is None:
        return None
    indent = len(code_line) - len(code_line.lstrip())
    column = indent
    if index + 2 < len(block) and block[index + 1].strip() and _CARETS.match(block[index + 2]):
        source, carets = block[index + 1], block[index + 2]
        # Tracebacks show the source line stripped and re-indented; carets follow that.
        shown_indent = len(source) - len(source.lstrip())
        first_caret = len(carets) - len(carets.lstrip())
        column = indent + max(0, first_caret - shown_indent)
    return column + place.column


def _exception_line(block: list[str], after: int | None) -> re.Match[str] | None:
    candidates = block[after + 1 :] if after is not None else block
    found: re.Match[str] | None = None
    for line in candidates:
        if not line.strip() or line[0] in " \t":
            continue
        match = _EXCEPTION_LINE.match(line.rstrip())
        if after is not None:
            return match  # the first unindented line after the frames
        if match and _EXCEPTION_NAME.search(match["type"]):
            found = match  # the last one: warnings may come first
    return found


def parse_traceback(text: str, files: set[str], place: Placement) -> ErrorInfo | None:
    """The exception a Python traceback (or a bare `Type: message` line) describes, located
    in the file when a frame of the submitted code is found."""
    lines = split_lines(text)
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK_HEADER]
    block = lines[starts[-1] :] if starts else lines  # the last of a chain is what was raised
    frames: list[Frame] = []
    here: Frame | None = None
    last_frame: int | None = None
    for index, line in enumerate(block):
        match = _FILE_LINE.match(line)
        if match is None:
            continue
        last_frame = index
        number, name = int(match["line"]), _frame_name(match["rest"])
        if match["file"] in files:
            here = Frame(
                place.path,
                number + place.line_offset,
                name,
                column=_column(block, index, number, place),
            )
            frames.append(here)
        else:
            frames.append(Frame(match["file"], number, name))
    exception = _exception_line(block, last_frame)
    if exception is None and here is None:
        return None
    return ErrorInfo(
        type=exception["type"] if exception else "Error",
        message=(exception["message"] or "") if exception else "",
        line=here.line if here else None,
        column=here.column if here else None,
        traceback=remap_traceback(text, files, place),
        frames=tuple(frames),
    )


def _bounded(error: ErrorInfo | None) -> ErrorInfo | None:
    """The remote error clipped as runner.py clips a local one: the service's answer is
    text chosen by the code it ran, and an 8 MB message must not become an 8 MB diagnostic."""
    if error is None:
        return None
    frames = clip_frames([dataclasses.asdict(frame) for frame in error.frames])
    return dataclasses.replace(
        error,
        type=clip(error.type, MAX_NAME_CHARS),
        message=clip(error.message, MAX_MESSAGE_CHARS),
        traceback=clip(error.traceback, MAX_TRACEBACK_CHARS),
        frames=tuple(
            Frame(
                **{
                    **frame,
                    "file": clip(frame["file"], MAX_NAME_CHARS),
                    "name": clip(frame["name"], MAX_NAME_CHARS),
                }
            )
            for frame in frames
        ),
    )


def split_stderr(text: str) -> tuple[str, str]:
    """(what the program printed, the traceback) from an `error` text that holds both."""
    lines = split_lines(text, keepends=True)
    for index, line in enumerate(lines):
        if line.strip() == _TRACEBACK_HEADER:
            return "".join(lines[:index]), "".join(lines[index:])
    return text, ""


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def _shifted(value: Any, by: int) -> int | None:
    number = _optional_int(value)
    return None if number is None else number + by


def structured_error(data: Mapping[str, Any], place: Placement) -> ErrorInfo | None:
    """Our server's `error_info`, moved into the file; None if it is not in that shape."""
    try:
        traceback_text = str(data.get("traceback") or "")
        files = snippet_files(traceback_text, place)
        frames = []
        for raw in data.get("frames") or ():
            file = str(raw["file"])
            line = _optional_int(raw["line"]) or 0
            if file in files or (_PSEUDO_FILE.fullmatch(file) and place.code_line(line)):
                files.add(file)
                frames.append(
                    Frame(
                        place.path,
                        line + place.line_offset,
                        str(raw.get("name", "")),
                        column=_shifted(raw.get("column"), place.column),
                        end_line=_shifted(raw.get("end_line"), place.line_offset),
                        end_column=_shifted(raw.get("end_column"), place.column),
                    )
                )
            else:
                frames.append(Frame(file, line, str(raw.get("name", ""))))
        return ErrorInfo(
            type=str(data["type"]),
            message=str(data.get("message") or ""),
            line=_shifted(data.get("line"), place.line_offset),
            column=_shifted(data.get("column"), place.column),
            end_line=_shifted(data.get("end_line"), place.line_offset),
            end_column=_shifted(data.get("end_column"), place.column),
            traceback=remap_traceback(traceback_text, files, place),
            frames=tuple(frames),
        )
    except (KeyError, TypeError, AttributeError):
        return None


# --- HTTP ---------------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _Failure(Exception):
    """Ends a run with status "internal" and a message the user can act on."""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _located_error(
    data: Mapping[str, Any], raw_error: str, files: set[str], place: Placement
) -> ErrorInfo | None:
    """Our server's structured error if it sent one, else what the traceback text says."""
    info = data.get("error_info")
    structured = structured_error(info, place) if isinstance(info, dict) else None
    return structured if structured is not None else parse_traceback(raw_error, files, place)


class HttpExecutor:
    """Runs each request on a remote /execute service.

    The token is read from the variable `token_env` at each run, and sent only in the
    Authorization header of requests to `url`; redirects are not followed.
    """

    name = "http"

    def __init__(
        self,
        url: str | None,
        token_env: str = DEFAULT_TOKEN_ENV,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        libraries: Sequence[str] = (),
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_margin: float = READ_MARGIN_S,
        max_retry_after: float = MAX_RETRY_AFTER_S,
    ) -> None:
        self.url = (url or "").strip()
        self.token_env = token_env
        self.libraries = tuple(libraries)
        self.connect_timeout = connect_timeout
        self.read_margin = read_margin
        self.max_retry_after = max_retry_after
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"HttpExecutor(url={self.url!r}, token_env={self.token_env!r})"

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/execute") else base + "/execute"

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def run(self, request: RunRequest, cancel: asyncio.Event | None = None) -> RunResult:
        started = time.perf_counter()
        work = asyncio.create_task(self._run(request, started))
        stopper = asyncio.create_task(cancel.wait()) if cancel is not None else None
        try:
            await asyncio.wait(
                {work} if stopper is None else {work, stopper},
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if stopper is not None:
                stopper.cancel()
            if not work.done():
                # Closing the connection is how the server learns to stop the run.
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if work.cancelled():
            return self._result(
                "cancelled", started, message="Cancelled: the request to the service was dropped."
            )
        return work.result()

    # --- one run ---------------------------------------------------------------------------

    async def _run(self, request: RunRequest, started: float) -> RunResult:
        try:
            if not self.url:
                raise _Failure(
                    "No execution service is set: set codeexec.http.url to its address "
                    "(e.g. http://127.0.0.1:8000), or choose another codeexec.executor."
                )
            token = os.environ.get(self.token_env, "").strip()
            if not token.isascii() or not token.isprintable():
                raise _Failure(
                    f"The token in {self.token_env} has characters an HTTP header cannot "
                    "carry; set it to the service's token."
                )
            response = await self._post(request, token)
            data = self._answer(response, token)
            return self._from_answer(data, request, started, response.status_code)
        except _Failure as failure:
            return self._result("internal", started, message=str(failure))

    def _client_for_now(self) -> httpx.AsyncClient:
        """One client per event loop: it keeps the connection open between runs."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client_loop = loop
            host = (urlsplit(self.url).hostname or "").lower()
            self._client = httpx.AsyncClient(
                transport=self._transport,
                # A proxy must not see a loopback service's token, nor be asked for it.
                trust_env=host not in _LOOPBACK_HOSTS and not host.startswith("127."),
                follow_redirects=False,
            )
        return self._client

    async def _post(self, request: RunRequest, token: str) -> httpx.Response:
        max_run_time = request.limits.timeout_s
        body = {
            "code": request.snippet.code,
            "language": "python",
            "environment": {"libraries": list(self.libraries)},
            "execution_options": {"max_run_time": max_run_time},
        }
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        read = max_run_time + self.read_margin
        timeout = httpx.Timeout(
            connect=self.connect_timeout, read=read, write=read, pool=self.connect_timeout
        )
        client = self._client_for_now()
        for attempt in (1, 2):
            try:
                response = await client.post(
                    self.endpoint, json=body, headers=headers, timeout=timeout
                )
            except httpx.TimeoutException as exc:
                raise self._timeout_failure(exc, read) from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL):
                raise _Failure(
                    f"codeexec.http.url {self.url!r} is not an http(s) URL. Set it to the "
                    "service's address, e.g. http://127.0.0.1:8000."
                ) from None
            except httpx.TransportError as exc:
                raise self._transport_failure(exc) from None
            except httpx.HTTPError as exc:
                raise _Failure(
                    f"The answer from the execution service at {self.endpoint} could not be "
                    f"read ({type(exc).__name__}: {exc})."
                ) from None
            if response.status_code not in (429, 503) or attempt == 2:
                return response
            wait = parse_retry_after(response.headers)
            if wait is None:
                wait = DEFAULT_RETRY_WAIT_S
            if wait > self.max_retry_after:
                return response
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _timeout_failure(self, exc: httpx.TimeoutException, read: float) -> _Failure:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return _Failure(
                f"Could not connect to the execution service at {self.endpoint} within "
                f"{self.connect_timeout:g} s. Check that it is running and that "
                "codeexec.http.url is right."
            )
        return _Failure(
            f"No answer from the execution service at {self.endpoint} within {read:g} s "
            "(the timeout plus a margin). It may be overloaded or installing libraries; try "
            "again, or check its log."
        )

    def _transport_failure(self, exc: httpx.TransportError) -> _Failure:
        detail = str(exc).strip() or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return _Failure(
                f"Could not reach the execution service at {self.endpoint} ({detail}). Check "
                "that it is running and that codeexec.http.url is right."
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return _Failure(
                f"The execution service at {self.endpoint} closed the connection without an "
                f"answer ({detail}). It may have crashed or restarted: try again, and check "
                "its log if it keeps happening."
            )
        return _Failure(
            f"The request to the execution service at {self.endpoint} failed ({detail})."
        )

    # --- reading the answer --------------------------------------------------------------------

    def _server_message(self, response: httpx.Response, token: str) -> str:
        text = response.text
        with contextlib.suppress(ValueError):
            data = json.loads(text)
            if isinstance(data, dict):
                for key in ("error", "detail", "message"):
                    if isinstance(data.get(key), str) and data[key].strip():
                        text = data[key]
                        break
        text = " ".join(text.split()).rstrip(".")
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 3] + "..."
        if len(token) >= 4:
            text = text.replace(token, "[REDACTED]")  # some servers echo what they rejected
        status = f"HTTP {response.status_code}"
        return f"{status}: {text}" if text else status

    def _answer(self, response: httpx.Response, token: str) -> dict[str, Any]:
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("status") in ("success", "error", "timeout"):
                return data
            raise _Failure(
                f"The execution service at {self.endpoint} sent a malformed answer (not a JSON "
                'object with "status" success, error or timeout). Check that codeexec.http.url '
                "points at an /execute service."
            )
        detail = self._server_message(response, token)
        where = f"the execution service at {self.endpoint}"
        if status in (401, 403):
            setting = f"{self.token_env} (the variable named by codeexec.http.tokenEnv)"
            if not token:
                raise _Failure(
                    f"The execution service at {self.endpoint} needs a token ({detail}) and "
                    f"none was sent because {setting} is not set. Set it to the service's token."
                )
            raise _Failure(
                f"The execution service at {self.endpoint} rejected the token from {setting} "
                f"({detail}). Set it to the service's token."
            )
        if status == 413:
            raise _Failure(
                f"The selection is too large for {where} ({detail}). Run a smaller selection, "
                "or ask the operator to raise the service's body limit."
            )
        if status in (429, 503):
            wait = parse_retry_after(response.headers)
            after = f" It asked to retry after {wait:g} s." if wait is not None else ""
            raise _Failure(
                f"The execution service at {self.endpoint} is busy ({detail}).{after} Try "
                "again shortly, or ask the operator for more capacity."
            )
        if status in (400, 422):
            raise _Failure(
                f"The execution service at {self.endpoint} refused the request ({detail}). "
                "If it names max_run_time, lower codeexec.timeout to the service's maximum."
            )
        if 300 <= status < 400:
            location = response.headers.get("location", "another address")
            raise _Failure(
                f"The execution service at {self.endpoint} redirected to {location} ({detail}). "
                "Set codeexec.http.url to the address it redirects to."
            )
        if status == 404:
            raise _Failure(
                f"There is no /execute endpoint at {self.endpoint} ({detail}). Check "
                "codeexec.http.url: it is the service's root address."
            )
        if status >= 500:
            raise _Failure(
                f"The execution service at {self.endpoint} failed ({detail}). Try again; if it "
                "keeps failing, check the service's log."
            )
        raise _Failure(f"Unexpected answer from {where} ({detail}).")

    def _from_answer(
        self, data: dict[str, Any], request: RunRequest, started: float, http_status: int
    ) -> RunResult:
        place = Placement.of(request.snippet)
        raw_error = _text(data, "error")
        files = snippet_files(raw_error, place)
        error_text = remap_traceback(raw_error, files, place)
        # Our server sends the program's stderr apart from the traceback; others mix them.
        sent = data.get("stderr")
        server_stderr = sent if isinstance(sent, str) else None
        common: dict[str, Any] = {
            "stdout": _text(data, "output"),
            "duration_ms": _number(data.get("duration_ms")),
            "truncated": data.get("truncated") is True,
            # Our server adds the run's rich outputs; other servers do not: none then.
            # Bounded as a child's are: the answer comes from code that ran elsewhere.
            "outputs": tuple(bounded_outputs(data.get("outputs"))),
            "extra": {"http_status": http_status},
        }
        if data["status"] == "success":
            value = data.get("value")
            return self._result(
                "ok",
                started,
                stderr=error_text if server_stderr is None else server_stderr,
                value=value if isinstance(value, str) else None,
                **common,
            )
        stderr = split_stderr(error_text)[0] if server_stderr is None else server_stderr
        error = _located_error(data, raw_error, files, place)
        if data["status"] == "timeout":
            message = (
                f"Stopped by the execution service after {request.limits.timeout_s:g} s (the "
                "codeexec.timeout setting). Raise the timeout if the code needs longer."
            )
            error = relabel(error, "TimeoutError", message)
            return self._result(
                "timeout", started, stderr=stderr, error=error, message=message, **common
            )
        if error is None:
            headline = next((ln for ln in reversed(error_text.splitlines()) if ln.strip()), "")
            error = ErrorInfo(
                type="Error",
                message=headline.strip() or "the execution service reported an error",
                traceback=error_text,
            )
        if data.get("run_status") == "limit":
            message = f"{error.headline} (a limit of the execution service)"
            return self._result(
                "limit", started, stderr=stderr, error=error, message=message, **common
            )
        return self._result("error", started, stderr=stderr, error=error, **common)

    def _result(
        self,
        status: Status,
        started: float,
        *,
        message: str = "",
        stdout: str = "",
        stderr: str = "",
        value: str | None = None,
        error: ErrorInfo | None = None,
        duration_ms: float | None = None,
        truncated: bool = False,
        outputs: tuple[dict[str, Any], ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> RunResult:
        round_trip_ms = (time.perf_counter() - started) * 1000
        return RunResult(
            status=status,
            stdout=stdout,
            stderr=stderr,
            value=value,
            error=_bounded(error),
            duration_ms=duration_ms if duration_ms is not None else round_trip_ms,
            truncated=truncated,
            outputs=outputs,
            executor=self.name,
            message=message,
            interpreter=self.endpoint if self.url else "",
            extra={"url": self.endpoint if self.url else "", "round_trip_ms": round_trip_ms}
            | (extra or {}),
        )
