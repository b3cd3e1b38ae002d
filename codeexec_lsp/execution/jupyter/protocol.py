"""The Jupyter messaging protocol as far as one run needs it: building requests, and turning
the messages a kernel sends back into what a RunResult is made of.

Why it is a module of its own (as jupyter_client keeps `session.py` apart from launching
and lifecycle): the same messages travel over ZMQ (a local kernel) and over a server's
websocket (JSON frames), and the same collector reads both. No third-party imports here.

A run is one `execute_request`. Its `metadata` carries our request (the servers pass it
through unchanged) for the kernel-side helper (helper.py), which answers with one
`display_data` of the custom MIME type REPORT_MIME. The run is over when both the
`execute_reply` and the iopub `status: idle` for its msg_id arrived: the reply can come
before the last output.
"""

from __future__ import annotations

import base64
import enum
import getpass
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from codeexec_lsp.execution.capture import BoundedCapture

PROTOCOL_VERSION = "5.3"
REPORT_MIME = "application/vnd.codeexec.report+json"
RICH_OUTPUT_TYPES = ("display_data", "execute_result")


class KernelState(enum.Enum):
    """Where a kernel connection stands; the executor reads it, tests and `doctor` show it."""

    NOT_STARTED = "not started"
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTING = "interrupting"
    RESTARTING = "restarting"
    DEAD = "dead"  # died or never started; the next run starts (or reconnects) anew
    CLOSED = "closed"  # shut down with the server: no more runs


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (a container's uid): any name will do
        return "codeexec"


USERNAME = _username()


def new_message(
    msg_type: str,
    content: dict[str, Any],
    session: str,
    *,
    channel: str = "shell",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete message as a server's websocket takes it (JSON frame with `channel`)."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": USERNAME,
            "session": session,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": metadata or {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


def execute_content(code: str, *, silent: bool = False) -> dict[str, Any]:
    """An execute_request's content: no history (our runs are not the user's cells) and no
    stdin (input() answers with our own message instead of waiting forever)."""
    return {
        "code": code,
        "silent": silent,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": False,
    }


def parent_id(message: dict[str, Any]) -> str | None:
    parent = message.get("parent_header") or {}
    value = parent.get("msg_id")
    return value if isinstance(value, str) else None


def msg_type(message: dict[str, Any]) -> str:
    header = message.get("header") or {}
    value = header.get("msg_type", message.get("msg_type", ""))
    return value if isinstance(value, str) else ""


def unparented_status(message: dict[str, Any]) -> str | None:
    """`restarting` / `dead` sent by a server for no request: the kernel process died."""
    if msg_type(message) != "status" or parent_id(message):
        return None
    state = (message.get("content") or {}).get("execution_state")
    return state if state in ("restarting", "dead") else None


def _text(value: Any) -> str:
    """nbformat allows a MIME value as a list of lines; the contract wants one string."""
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value  # type: ignore[no-any-return]  # JSON MIME types keep their structure


@dataclass
class RunCollector:
    """Everything one execute_request produced, bounded like every executor's output.

    `feed` takes every message of the kernel (other clients' too: every websocket on a
    kernel receives all of its iopub output) and keeps those of our request.
    """

    msg_id: str
    max_output_bytes: int
    stdout: BoundedCapture = field(init=False)
    stderr: BoundedCapture = field(init=False)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    kernel_error: dict[str, Any] | None = None  # the `error` iopub message's content
    idle: bool = False
    busy: bool = False
    rich_bytes: int = 0
    dropped_rich: bool = False
    # A trailing value IPython showed as text only: not a rich output (other executors
    # give it as `value`), kept for kernels without our helper, which report no repr.
    plain_value: str | None = None

    def __post_init__(self) -> None:
        self.stdout = BoundedCapture(self.max_output_bytes)
        self.stderr = BoundedCapture(self.max_output_bytes)

    @property
    def done(self) -> bool:
        return self.reply is not None and self.idle

    @property
    def output_total(self) -> int:
        """Bytes of output so far: text streams and rich outputs alike (a kernel has no cap
        of its own, so this is what the run is stopped on)."""
        return self.stdout.total + self.stderr.total + self.rich_bytes

    @property
    def truncated(self) -> bool:
        return self.stdout.truncated or self.stderr.truncated

    def feed(self, message: dict[str, Any]) -> bool:
        """Take `message` if it belongs to this run; True if it did."""
        if parent_id(message) != self.msg_id:
            return False
        kind = msg_type(message)
        content = message.get("content") or {}
        if kind.endswith("_reply"):
            self.reply = content
        elif kind == "status":
            state = content.get("execution_state")
            if state == "busy":
                self.busy = True
            elif state == "idle":
                self.idle = True
        elif kind == "stream":
            text = str(content.get("text", "")).encode("utf-8", "replace")
            target = self.stderr if content.get("name") == "stderr" else self.stdout
            target.feed(text)
        elif kind in RICH_OUTPUT_TYPES:
            self._rich(kind, content)
        elif kind == "error":
            self.kernel_error = content
        return True

    def _rich(self, kind: str, content: dict[str, Any]) -> None:
        data = content.get("data") or {}
        if not isinstance(data, dict):
            return
        if REPORT_MIME in data:
            report = data[REPORT_MIME]
            if isinstance(report, dict):
                self.report = report
            return
        bundle = {str(mime): _text(value) for mime, value in data.items()}
        if kind == "execute_result" and set(bundle) <= {"text/plain"}:
            self.plain_value = str(bundle.get("text/plain", ""))
            return
        size = sum(len(value) if isinstance(value, str) else 0 for value in bundle.values())
        self.rich_bytes += size
        if self.rich_bytes > self.max_output_bytes:
            # Rich outputs cannot be cut in half; past the limit they are dropped, said once.
            if not self.dropped_rich:
                self.dropped_rich = True
                self.stderr.feed(b"\n[rich outputs past maxOutputBytes were dropped]\n")
            return
        metadata = content.get("metadata") or {}
        self.outputs.append(
            {
                "output_type": kind,
                "data": bundle,
                "metadata": metadata if isinstance(metadata, dict) else {},
            }
        )

    def error_from_kernel(self) -> dict[str, Any] | None:
        """The error as a non-IPython kernel gives it (name and message, no file mapping),
        in the RunResult error shape; None if the kernel reported none."""
        error = self.kernel_error
        if error is None and self.reply is not None and self.reply.get("status") == "error":
            error = self.reply
        if error is None:
            return None
        traceback = error.get("traceback") or []
        return {
            "type": str(error.get("ename", "Error")),
            "message": str(error.get("evalue", "")),
            "line": None,
            "column": None,
            "traceback": _strip_ansi("\n".join(str(line) for line in traceback)),
            "frames": [],
        }


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
