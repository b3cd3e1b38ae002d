"""What a run produced, as plain data that round-trips through JSON (the public RunResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

Status = Literal["ok", "error", "timeout", "limit", "cancelled", "internal"]
STATUSES: tuple[Status, ...] = ("ok", "error", "timeout", "limit", "cancelled", "internal")


@dataclass(frozen=True)
class Frame:
    """One traceback frame. `line` is 1-based; `column`/`end_*` are code-point offsets or None."""

    file: str
    line: int
    name: str
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None


@dataclass(frozen=True)
class ErrorInfo:
    """The exception a run ended with, located in the document (1-based line, 0-based column)."""

    type: str
    message: str
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None
    traceback: str = ""
    frames: tuple[Frame, ...] = ()

    @property
    def headline(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True)
class RunResult:
    status: Status
    stdout: str = ""
    stderr: str = ""
    value: str | None = None
    error: ErrorInfo | None = None
    duration_ms: float = 0.0
    truncated: bool = False
    executor: str = "local"
    # Rich outputs in the order they appeared, in nbformat's shape: {"output_type":
    # "display_data" | "execute_result", "data": {MIME: str}, "metadata": {}}; binary MIME
    # types as base64 text. Always present in the JSON (`[]` when nothing is rich).
    outputs: tuple[dict[str, Any], ...] = ()
    # Extensions beyond the public contract: why a limit/timeout/internal status happened,
    # and where the code ran (shown on hover and by `doctor`).
    message: str = ""
    interpreter: str = ""
    cwd: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape, built field by field: `asdict` deep-copies every value
        (each output's data, `extra`) through a generic walk, several times slower."""
        error = self.error
        return {
            "status": self.status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "value": self.value,
            "error": None if error is None else _error_json(error),
            "duration_ms": self.duration_ms,
            "truncated": self.truncated,
            "executor": self.executor,
            "outputs": [_copied(output) for output in self.outputs],
            "message": self.message,
            "interpreter": self.interpreter,
            "cwd": self.cwd,
            "extra": _copied(self.extra),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"unknown RunResult status {status!r}")
        error_data = data.get("error")
        error = None
        if error_data is not None:
            frames = tuple(Frame(**frame) for frame in error_data.get("frames", ()))
            error = ErrorInfo(**{**error_data, "frames": frames})
        known = {name for name in cls.__dataclass_fields__ if name not in ("status", "error")}
        values = {key: value for key, value in data.items() if key in known}
        if "outputs" in values:
            values["outputs"] = tuple(values["outputs"] or ())
        return cls(status=cast(Status, status), error=error, **values)


def _copied(value: Any) -> Any:
    """A copy of plain JSON data (dicts, lists, tuples as lists), so the caller may change
    what it got without changing the result it came from."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copied(item) for item in value]
    return value


def _error_json(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.type,
        "message": error.message,
        "line": error.line,
        "column": error.column,
        "end_line": error.end_line,
        "end_column": error.end_column,
        "traceback": error.traceback,
        "frames": [
            {
                "file": frame.file,
                "line": frame.line,
                "name": frame.name,
                "column": frame.column,
                "end_line": frame.end_line,
                "end_column": frame.end_column,
            }
            for frame in error.frames
        ],
    }


EXIT_CODES: dict[Status, int] = {
    "ok": 0,
    "error": 1,
    "timeout": 3,
    "limit": 3,
    "cancelled": 130,
    "internal": 4,
}
