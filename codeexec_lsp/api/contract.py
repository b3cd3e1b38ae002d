"""The /execute wire format: validating a request body, and turning a RunResult into the
response. No HTTP here: the app maps ApiError to status codes and JSON bodies."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from codeexec_lsp.api.settings import ApiSettings
from codeexec_lsp.execution.outcome import PROCESS_LIMIT_TYPE
from codeexec_lsp.results import ErrorInfo, RunResult

# The file name snippets run under: what `exec(code)` shows, so any client that maps
# `File "<string>", line N` back into its own file works with this server too.
SNIPPET_FILENAME = "<string>"
# Distribution or module names only: no version specifiers, URLs, paths or pip options,
# so a request can never make pip fetch from somewhere the operator did not choose.
LIBRARY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
LIBRARY_PATTERN = LIBRARY_NAME.pattern


@dataclass
class ApiError(Exception):
    """A request the server refuses. `code` is a stable machine-readable word."""

    status: int
    code: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.detail:
            body["detail"] = self.detail
        return body


@dataclass(frozen=True)
class ExecuteRequest:
    code: str
    libraries: tuple[str, ...]
    max_run_time: float


def _invalid(message: str, field_name: str, **detail: Any) -> ApiError:
    return ApiError(422, "invalid_request", message, {"field": field_name, **detail})


def _optional_object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"{name} must be an object", name)
    return value


def _libraries(environment: dict[str, Any], settings: ApiSettings) -> tuple[str, ...]:
    value = environment.get("libraries")
    if value is None:
        return ()
    where = "environment.libraries"
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{where} must be a list of strings", where)
    if len(value) > settings.max_libraries:
        raise _invalid(
            f"{where} names {len(value)} libraries; this server accepts at most "
            f"{settings.max_libraries}",
            where,
            max_items=settings.max_libraries,
        )
    for item in value:
        if not LIBRARY_NAME.match(item):
            raise _invalid(
                f"{where}: {item[:100]!r} is not a library name (letters, digits, '.', '_', "
                "'-'; no version specifiers)",
                where,
            )
    return tuple(dict.fromkeys(value))


def _max_run_time(options: dict[str, Any], settings: ApiSettings) -> float:
    where = "execution_options.max_run_time"
    value = options.get("max_run_time")
    if value is None:
        return settings.effective_default_run_time
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{where} must be a number of seconds", where)
    try:
        seconds = float(value)
    except OverflowError:  # an integer with hundreds of digits
        seconds = math.inf
    if math.isnan(seconds) or seconds <= 0:
        raise _invalid(f"{where} must be a positive number of seconds", where)
    if seconds > settings.max_run_time:
        # Refused rather than clamped: a client that asked for more would otherwise see a
        # "timeout" it could not explain.
        raise _invalid(
            f"{where} is {seconds:g} s, over this server's maximum of "
            f"{settings.max_run_time:g} s; ask for at most that",
            where,
            maximum=settings.max_run_time,
        )
    return seconds


def parse_request(raw: bytes, settings: ApiSettings) -> ExecuteRequest:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object", "")
    code = body.get("code")
    if not isinstance(code, str):
        raise _invalid("code must be a string", "code")
    language = body.get("language", "python")
    if not isinstance(language, str) or language.strip().lower() != "python":
        raise _invalid(
            f"language {str(language)[:40]!r} is not supported: this server runs python",
            "language",
            supported=["python"],
        )
    libraries = _libraries(_optional_object(body, "environment"), settings)
    max_run_time = _max_run_time(_optional_object(body, "execution_options"), settings)
    return ExecuteRequest(code=code, libraries=libraries, max_run_time=max_run_time)


# --- responses ------------------------------------------------------------------------------


def _joined(*parts: str) -> str:
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts if part)


def _limit_headline(result: RunResult, settings: ApiSettings) -> str:
    error_type = result.error.type if result.error else ""
    if error_type == "MemoryError":
        return (
            f"MemoryError: the code needed more than {settings.memory_mb} MB, this server's limit"
        )
    if error_type == "CPUTimeLimitExceeded":
        return "CPUTimeLimitExceeded: the code used more CPU time than max_run_time allows"
    if error_type == PROCESS_LIMIT_TYPE or result.message.startswith("Process limit"):
        return f"{PROCESS_LIMIT_TYPE}: {result.message.partition(': ')[2]}"
    if "printed more than" in result.message:
        return (
            f"OutputLimitExceeded: the code printed more than {10 * settings.max_output_bytes:,} "
            "bytes and was stopped"
        )
    return "LimitExceeded: the run was killed by a resource limit (CPU time or memory)"


def _relabelled(error: ErrorInfo | None, type_name: str, message: str) -> ErrorInfo | None:
    return None if error is None else replace(error, type=type_name, message=message)


def _error_json(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {**asdict(error), "frames": [asdict(frame) for frame in error.frames]}


def response_body(
    result: RunResult, request: ExecuteRequest, settings: ApiSettings
) -> dict[str, Any]:
    """The contract's three fields, plus structured extras that clients may ignore
    (`outputs`: the run's rich outputs, `[]` when there are none).

    `error` holds the program's stderr followed by the traceback, as a client that only
    reads the contract fields would want to show it; `stderr` and `error_info` keep them apart.
    """
    error = result.error
    traceback_text = error.traceback if error else ""
    if result.status == "ok":
        status, error_text, info = "success", result.stderr, None
    elif result.status == "timeout":
        headline = (
            f"TimeoutError: the code ran longer than max_run_time "
            f"({request.max_run_time:g} s) and was stopped"
        )
        stopped_at = f"It was stopped at line {error.line}." if error and error.line else ""
        status = "timeout"
        error_text = _joined(result.stderr, headline, stopped_at)
        info = _relabelled(error, "TimeoutError", headline.partition(": ")[2])
    elif result.status == "limit":
        headline = _limit_headline(result, settings)
        status = "error"
        error_text = _joined(result.stderr, traceback_text, headline)
        type_name, _, message = headline.partition(": ")
        info = _relabelled(error, type_name, message) or ErrorInfo(type=type_name, message=message)
    else:
        status = "error"
        error_text = _joined(result.stderr, traceback_text or (error.headline if error else ""))
        info = error
    return {
        "status": status,
        "output": result.stdout,
        "error": error_text,
        "stderr": result.stderr,
        "value": result.value,
        "error_info": _error_json(info),
        "run_status": result.status,
        "duration_ms": result.duration_ms,
        "truncated": result.truncated,
        "max_run_time": request.max_run_time,
        # Rich outputs (plots, HTML tables) in the RunResult shape, so the http executor
        # shows what session and local runs show. Bounded as every executor bounds them
        # (display.bounded_outputs, already applied to what the run sent back).
        "outputs": [dict(output) for output in result.outputs],
    }


def library_failure(message: str) -> RunResult:
    """A run that never started: its libraries are missing or failed to install.

    `message` reads `Type: text`, so clients show it like an exception the code raised."""
    type_name, _, text = message.partition(": ")
    return RunResult(status="error", error=ErrorInfo(type=type_name, message=text))
