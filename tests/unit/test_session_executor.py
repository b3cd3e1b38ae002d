"""The session executor end to end: real worker processes that keep state between runs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.capture import BoundedCapture, DelimitedStream
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult

SIGINT_IGNORING_LOOP = (
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
)


def request_for(code: str, tmp_path: Path, **settings: Any) -> RunRequest:
    path = tmp_path / "snippet.py"
    path.write_text(code)
    return build_request(snippet.whole_file(code, str(path)), Settings(**settings), tmp_path)


@pytest.fixture(autouse=True)
def interruptible_children() -> Iterator[None]:
    """Local's children inherit this process's SIGINT disposition, and in-process runner
    tests leave it ignored (run_request ends by ignoring interrupts); the comparisons here
    are about the executors, not about what an earlier test left behind."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
async def session() -> AsyncIterator[SessionExecutor]:
    executor = SessionExecutor()
    try:
        yield executor
    finally:
        await executor.close()


async def run(
    executor: SessionExecutor, code: str, tmp_path: Path, **settings: object
) -> RunResult:
    return await executor.run(request_for(code, tmp_path, **settings))


def worker_pid(result: RunResult) -> int:
    return int(result.extra["session"]["pid"])


async def assert_gone(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"process {pid} is still alive")


# --- state -------------------------------------------------------------------------------


async def test_state_survives_runs(session: SessionExecutor, tmp_path: Path) -> None:
    first = await run(session, "import math\nx = 41\nprint('set')\n", tmp_path)
    second = await run(session, "x + 1\n", tmp_path)
    third = await run(session, "math.floor(2.5)\n", tmp_path)
    assert (first.status, first.stdout, first.value) == ("ok", "set\n", None)
    assert (second.status, second.value, third.value) == ("ok", "42", "2")
    assert second.executor == "session" and second.cwd == str(tmp_path)
    assert worker_pid(first) == worker_pid(second) == worker_pid(third)


async def test_restart_clears_state(session: SessionExecutor, tmp_path: Path) -> None:
    before = await run(session, "x = 1\n", tmp_path)
    assert await session.restart() == 1
    after = await run(session, "x\n", tmp_path)
    assert after.status == "error" and after.error is not None
    assert after.error.type == "NameError"
    assert worker_pid(after) != worker_pid(before)
    await assert_gone(worker_pid(before))


async def test_restart_during_a_run_cancels_it(session: SessionExecutor, tmp_path: Path) -> None:
    task = asyncio.ensure_future(
        session.run(request_for("import time\ntime.sleep(60)\n", tmp_path))
    )
    await asyncio.sleep(0.3)
    assert await session.restart() == 1
    result = await asyncio.wait_for(task, timeout=5)
    assert result.status == "cancelled" and "restarted" in result.message
    assert (await run(session, "1 + 1\n", tmp_path)).value == "2"


async def test_warm_starts_the_worker_the_first_run_uses(
    session: SessionExecutor, tmp_path: Path
) -> None:
    request = request_for("import os\nos.getpid()\n", tmp_path)
    assert await session.warm(
        request.python, request.cwd, request.env, request.limits, request.sys_path
    )
    pids = session.pids()
    assert list(pids) == [(request.cwd, "standard")]
    result = await session.run(request)
    assert result.value == str(pids[(request.cwd, "standard")])


async def test_a_change_of_start_settings_restarts_and_says_so(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "x = 1\n", tmp_path)
    result = await run(session, "1\n", tmp_path, memory_mb=900)
    assert result.status == "ok"
    assert "memoryMb" in result.message and "lost" in result.message


# --- stopping runs -----------------------------------------------------------------------


async def test_timeout_reports_where_the_code_was_and_keeps_state(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "kept = 'yes'\n", tmp_path)
    result = await run(session, "import time\n\ntime.sleep(30)\n", tmp_path, timeout=1)
    assert result.status == "timeout" and "1 s" in result.message
    assert result.error is not None and result.error.type == "TimeoutError"
    assert (result.error.line, result.error.column) == (3, 0)
    assert "lost" not in result.message
    assert (await run(session, "kept\n", tmp_path)).value == "'yes'"


async def test_interrupt_ignoring_loop_is_killed_and_the_session_restarted(
    session: SessionExecutor, tmp_path: Path
) -> None:
    before = await run(session, "x = 1\n", tmp_path)
    result = await run(session, SIGINT_IGNORING_LOOP, tmp_path, timeout=1)
    assert result.status == "timeout"
    assert "state" in result.message and "was lost" in result.message
    assert result.extra["session"]["state_lost"] is True
    await assert_gone(worker_pid(before))
    after = await run(session, "x\n", tmp_path)
    assert after.error is not None and after.error.type == "NameError"
    assert after.message.startswith("New session") and "lost" in after.message
    assert (await run(session, "1 + 1\n", tmp_path)).value == "2"


async def test_cancel_interrupts_the_run_and_keeps_state(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "kept = 7\n", tmp_path)
    cancel = asyncio.Event()
    task = asyncio.ensure_future(
        session.run(request_for("import time\ntime.sleep(60)\n", tmp_path), cancel)
    )
    await asyncio.sleep(0.3)
    cancel.set()
    result = await asyncio.wait_for(task, timeout=5)
    assert result.status == "cancelled"
    assert (await run(session, "kept\n", tmp_path)).value == "7"


async def test_cancel_of_a_queued_run_never_runs_it(
    session: SessionExecutor, tmp_path: Path
) -> None:
    busy = asyncio.ensure_future(
        session.run(request_for("import time\ntime.sleep(0.5)\nflag = 'first'\n", tmp_path))
    )
    await asyncio.sleep(0.1)
    cancel = asyncio.Event()
    queued = asyncio.ensure_future(
        session.run(request_for("flag = 'queued ran'\n", tmp_path), cancel)
    )
    await asyncio.sleep(0.05)
    cancel.set()
    assert (await queued).status == "cancelled"
    assert (await busy).status == "ok"
    assert (await run(session, "flag\n", tmp_path)).value == "'first'"


async def test_concurrent_runs_are_queued_in_order(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "import time\norder = []\n", tmp_path)
    runs = [
        session.run(
            request_for(f"time.sleep(0.02)\norder.append({i})\nprint({i})\nlen(order)\n", tmp_path)
        )
        for i in range(6)
    ]
    results = await asyncio.gather(*runs)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]
    assert [r.value for r in results] == [str(i + 1) for i in range(6)]
    assert (await run(session, "order\n", tmp_path)).value == "[0, 1, 2, 3, 4, 5]"


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        ("import os\nos._exit(0)\n", "ok", None),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "error", "Crash"),
    ],
)
async def test_a_crash_loses_state_and_the_next_run_starts_a_new_session(
    session: SessionExecutor, tmp_path: Path, code: str, status: str, error_type: str | None
) -> None:
    before = await run(session, "x = 1\n", tmp_path)
    crashed = await run(session, code, tmp_path)
    assert crashed.status == status
    assert (crashed.error.type if crashed.error else None) == error_type
    assert "was lost" in crashed.message
    after = await run(session, "y = 2\ny\n", tmp_path)
    assert (after.status, after.value) == ("ok", "2")
    assert after.message.startswith("New session") and "lost" in after.message
    assert worker_pid(after) != worker_pid(before)
    again = await run(session, "y\n", tmp_path)
    assert (again.value, again.message) == ("2", "")


async def test_sys_exit_does_not_end_the_session(session: SessionExecutor, tmp_path: Path) -> None:
    first = await run(session, "x = 5\n", tmp_path)
    exited = await run(session, "import sys\nsys.exit(3)\n", tmp_path)
    assert exited.status == "error" and exited.error is not None
    assert exited.error.type == "SystemExit"
    assert (await run(session, "raise SystemExit\n", tmp_path)).status == "ok"
    after = await run(session, "x\n", tmp_path)
    assert after.value == "5" and worker_pid(after) == worker_pid(first)


# --- output ------------------------------------------------------------------------------


async def test_output_over_the_limit_keeps_head_and_tail(
    session: SessionExecutor, tmp_path: Path
) -> None:
    code = "for i in range(5000):\n    print(f'line {i:05d}')\n"
    result = await run(session, code, tmp_path, max_output_bytes=20_000)
    assert result.truncated and result.status == "ok"
    assert result.stdout.startswith("line 00000\n")
    assert result.stdout.rstrip().endswith("line 04999")
    assert "omitted" in result.stdout
    assert (await run(session, "print('next')\n", tmp_path, max_output_bytes=20_000)).stdout == (
        "next\n"
    )


async def test_a_flood_is_stopped_and_the_session_survives(
    session: SessionExecutor, tmp_path: Path
) -> None:
    settings = {"max_output_bytes": 100_000}
    await run(session, "kept = 1\n", tmp_path, **settings)
    flood = "import sys\nwhile True:\n    sys.stdout.write('x' * 10000)\n"
    result = await run(session, flood, tmp_path, **settings)
    assert result.status == "limit" and "maxOutputBytes" in result.message
    assert result.truncated and len(result.stdout) < 120_000
    after = await run(session, "print('clean')\nkept\n", tmp_path, **settings)
    assert (after.stdout, after.value) == ("clean\n", "1")


def test_end_markers_are_found_across_chunk_boundaries() -> None:
    stream = DelimitedStream()
    capture = BoundedCapture(1000)
    marker = b"\x00end:abc\x00"
    stream.begin(marker, capture)
    data = b"out\x00put" + marker + b"later"
    completed = [stream.feed(data[i : i + 1]) for i in range(len(data))]
    assert completed.count(True) == 1
    assert capture.text() == "out\x00put"
    assert stream.idle.text() == "later"


# --- what the code can see ---------------------------------------------------------------


async def test_secrets_never_reach_the_session(
    session: SessionExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "sk-canary-5e1b2"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("DB_PASSWORD", canary)
    monkeypatch.setenv("HARMLESS", "visible")
    result = await run(session, "import os\nprint(dict(os.environ))\n", tmp_path)
    assert result.status == "ok"
    assert canary not in result.stdout and "visible" in result.stdout


async def test_our_modules_are_not_importable_and_stdin_is_closed(
    session: SessionExecutor, tmp_path: Path
) -> None:
    result = await run(session, "import worker\n", tmp_path)
    assert result.error is not None and result.error.type == "ModuleNotFoundError"
    result = await run(session, "input()\n", tmp_path)
    assert result.error is not None and "no standard input" in result.error.message


async def test_line_mapping_is_the_same_as_local(tmp_path: Path) -> None:
    document = "\n" * 40 + "def f():\n    a = 'é'\n    if a:\n        b = a + [0][2]\n\nf()\n"
    path = tmp_path / "far.py"
    path.write_text(document)
    body = build_request(snippet.for_lines(document, str(path), 41, 43), Settings(), tmp_path)
    define = build_request(snippet.for_lines(document, str(path), 40, 43), Settings(), tmp_path)
    call = build_request(snippet.for_lines(document, str(path), 45, 45), Settings(), tmp_path)
    session = SessionExecutor()
    try:
        local_error = (await LocalExecutor().run(body)).error
        session_error = (await session.run(body)).error
        await session.run(define)
        later_call = (await session.run(call)).error
    finally:
        await session.close()
    assert session_error is not None and session_error == local_error
    assert (session_error.line, session_error.column) == (44, 16)
    # A function defined by an earlier run still points into the file when it fails later.
    assert later_call is not None and later_call.type == "IndexError"
    assert [(frame.line, frame.name) for frame in later_call.frames] == [
        (46, "<module>"),
        (44, "f"),
    ]
    assert (later_call.line, later_call.column) == (44, 16)
    assert "b = a + [0][2]" in later_call.traceback


# --- local and session agree -------------------------------------------------------------

SAME_AS_LOCAL: list[tuple[str, dict[str, object]]] = [
    ("print('out')\nimport sys\nprint('err', file=sys.stderr)\n6 * 7\n", {}),
    ("    x = 1\n    y = x +\n", {}),
    ("def f():\n    return 1 / 0\n\nf()\n", {}),
    ("import sys\nsys.exit(3)\n", {}),
    ("raise SystemExit\n", {}),
    ("import os\nos._exit(0)\n", {}),
    ("import os\nos._exit(4)\n", {}),
    ("raise KeyboardInterrupt\n", {}),
    ("input('name? ')\n", {}),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", {}),
    ("def f(n):\n    return f(n + 1)\nf(0)\n", {}),
    ("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok')\n", {}),
    ("import subprocess\nsubprocess.run(['echo', 'from a child'])\n", {}),
    ("import ctypes\nctypes.CDLL(None).printf(b'from C\\n')\n", {}),
    ("import asyncio\nawait asyncio.sleep(0)\n'awaited'\n", {}),
    ("for i in range(3000):\n    print(f'line {i:05d}')\n", {"max_output_bytes": 10_000}),
    ("block = bytearray(600 * 1024 * 1024)\n", {"memory_mb": 256}),
    (
        "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (3 * 1024 * 1024))\n",
        {"max_file_mb": 1},
    ),
    ("while True: pass\n", {"cpu_seconds": 1, "timeout": 20}),
    ("import time\ntime.sleep(30)\n", {"timeout": 1}),
    # Sleeping, not spinning: a spinning loop may hit the CPU limit (timeout + 1 s) during
    # the interrupt grace, which makes even local's outcome depend on timing.
    (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "while True:\n    time.sleep(0.01)\n",
        {"timeout": 1},
    ),
]


def comparable(result: RunResult) -> tuple[object, ...]:
    error = result.error
    return (
        result.status,
        result.stdout,
        result.stderr,
        result.value,
        (error.type, error.line, error.column) if error else None,
        result.truncated,
    )


@pytest.mark.parametrize(("code", "settings"), SAME_AS_LOCAL)
async def test_local_and_session_give_the_same_result(
    tmp_path: Path, code: str, settings: dict[str, object]
) -> None:
    request = request_for(code, tmp_path, **settings)
    local = await LocalExecutor().run(request)
    session = SessionExecutor()
    try:
        await session.run(request_for("earlier = 1\n", tmp_path, **settings))  # a used session
        result = await session.run(request)
    finally:
        await session.close()
    assert comparable(result) == comparable(local), (result, local)
    assert result.executor == "session"


# --- processes ---------------------------------------------------------------------------


async def test_close_leaves_no_process_behind(tmp_path: Path) -> None:
    session = SessionExecutor()
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "child.pid\n"
    )
    first = await run(session, code, tmp_path)
    other_cwd = tmp_path / "other"
    other_cwd.mkdir()
    second = await run(session, "1\n", other_cwd)
    assert first.value is not None and second.status == "ok"
    pids = [worker_pid(first), worker_pid(second), int(first.value)]
    for pid in pids:
        os.kill(pid, 0)  # the background child lives on between runs, as in a REPL
    await session.close()
    for pid in pids:
        await assert_gone(pid)
    assert session.pids() == {}


async def test_runs_still_queued_at_close_are_cancelled(tmp_path: Path) -> None:
    session = SessionExecutor()
    busy = asyncio.ensure_future(
        session.run(request_for("import time\ntime.sleep(30)\n", tmp_path))
    )
    await asyncio.sleep(0.3)
    queued = asyncio.ensure_future(session.run(request_for("1\n", tmp_path)))
    await asyncio.sleep(0.05)
    await session.close()
    results = await asyncio.wait_for(asyncio.gather(busy, queued), timeout=5)
    assert [r.status for r in results] == ["cancelled", "cancelled"]
    assert all("closed" in r.message for r in results)
    assert session.pids() == {}


async def test_missing_interpreter_is_an_internal_error_that_names_the_setting(
    session: SessionExecutor, tmp_path: Path
) -> None:
    result = await run(session, "1\n", tmp_path, python=str(tmp_path / "nope" / "python"))
    assert result.status == "internal" and "codeexec.python" in result.message


async def test_an_interpreter_that_cannot_run_the_worker_is_reported(
    session: SessionExecutor, tmp_path: Path
) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'this is not python' >&2\nexit 7\n")
    fake.chmod(0o755)
    result = await run(session, "1\n", tmp_path, python=str(fake))
    assert result.status == "internal"
    assert "exit status 7" in result.message and "this is not python" in result.message
