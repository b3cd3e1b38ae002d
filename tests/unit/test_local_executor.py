"""The local executor end to end: real child processes, real limits."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.local import BoundedCapture, LocalExecutor
from codeexec_lsp.results import RunResult


def request_for(code: str, tmp_path: Path, **settings: Any) -> RunRequest:
    path = tmp_path / "snippet.py"
    path.write_text(code)
    return build_request(snippet.whole_file(code, str(path)), Settings(**settings), tmp_path)


async def run(code: str, tmp_path: Path, **settings: Any) -> RunResult:
    return await LocalExecutor().run(request_for(code, tmp_path, **settings))


async def test_ok_output_and_value(tmp_path: Path) -> None:
    result = await run("print('out')\nimport sys\nprint('err', file=sys.stderr)\n6 * 7\n", tmp_path)
    assert (result.status, result.stdout, result.stderr, result.value) == (
        "ok",
        "out\n",
        "err\n",
        "42",
    )
    assert result.executor == "local" and result.interpreter and result.cwd == str(tmp_path)


async def test_infinite_loop_times_out_then_next_run_works(tmp_path: Path) -> None:
    result = await run("n = 0\nwhile True:\n    n += 1\n", tmp_path, timeout=2)
    assert result.status == "timeout"
    assert result.error is not None and result.error.line in (2, 3)  # where it was stopped
    assert "2 s" in result.message
    assert (await run("1 + 1\n", tmp_path)).value == "2"


async def test_sigint_ignoring_loop_is_killed(tmp_path: Path) -> None:
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = await run(code, tmp_path, timeout=1)
    assert result.status == "timeout"


async def test_hundred_megabytes_of_output_is_cut_quickly_without_memory_growth(
    tmp_path: Path,
) -> None:
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    code = (
        "import sys\nchunk = 'x' * 1_000_000\nfor _ in range(100):\n    sys.stdout.write(chunk)\n"
    )
    result = await run(code, tmp_path)
    assert result.truncated
    assert result.status == "limit" and "maxOutputBytes" in result.message
    assert len(result.stdout.encode()) < 1_100_000
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 20, f"peak RSS grew by {grown_mib:.1f} MiB"


async def test_output_over_the_limit_keeps_head_and_tail(tmp_path: Path) -> None:
    code = "for i in range(5000):\n    print(f'line {i:05d}')\n"
    result = await run(code, tmp_path, max_output_bytes=20_000)  # 55 kB printed
    assert result.truncated and result.status == "ok"
    assert result.stdout.startswith("line 00000\n")
    assert result.stdout.rstrip().endswith("line 04999")
    assert "omitted" in result.stdout


def test_bounded_capture_counts_everything() -> None:
    capture = BoundedCapture(10)
    for _ in range(100):
        capture.feed(b"abc")
    assert capture.total == 300 and capture.truncated
    assert capture.text().startswith("abcab") and capture.text().endswith("cabc")


async def test_secrets_never_reach_executed_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "sk-canary-7f3a9"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("MY_SERVICE_TOKEN", canary)
    monkeypatch.setenv("DB_PASSWORD", canary)
    monkeypatch.setenv("DATABASE_URL", "postgres://localhost/app")
    monkeypatch.setenv("HARMLESS", "visible")
    code = "import os\nprint(dict(os.environ))\n"
    result = await run(code, tmp_path, env_passthrough=("DATABASE_URL", "OPENAI_API_KEY"))
    assert result.status == "ok"
    assert canary not in result.stdout
    assert "postgres://localhost/app" in result.stdout and "visible" in result.stdout


async def test_memory_limit(tmp_path: Path) -> None:
    result = await run("block = bytearray(600 * 1024 * 1024)\n", tmp_path, memory_mb=256)
    assert result.status == "limit"
    assert "256 MB" in result.message and result.error is not None and result.error.line == 1


async def test_cpu_limit_shows_where_the_time_went(tmp_path: Path) -> None:
    result = await run("while True:\n    pass\n", tmp_path, timeout=20, cpu_seconds=1)
    assert result.status == "limit"
    assert result.error is not None and result.error.type == "CPUTimeLimitExceeded"


async def test_file_size_limit_is_a_clear_error(tmp_path: Path) -> None:
    code = "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (3 * 1024 * 1024))\n"
    result = await run(code, tmp_path, max_file_mb=1)
    assert result.status == "error"
    assert result.error is not None and "File too large" in result.error.message


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        ("import sys\nsys.exit(3)\n", "error", "SystemExit"),
        ("raise SystemExit\n", "ok", None),
        ("import os\nos._exit(0)\n", "ok", None),
        ("import os\nos._exit(4)\n", "error", "SystemExit"),
        ("raise KeyboardInterrupt\n", "error", "KeyboardInterrupt"),
        ("input('name? ')\n", "error", "EOFError"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "error", "Crash"),
        ("def f(n):\n    return f(n + 1)\nf(0)\n", "error", "RecursionError"),
        ("x = (\n", "error", "SyntaxError"),
        ("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok')\n", "ok", None),
    ],
)
async def test_statuses(tmp_path: Path, code: str, status: str, error_type: str | None) -> None:
    result = await run(code, tmp_path, timeout=10)
    assert result.status == status, result
    assert (result.error.type if result.error else None) == error_type


async def test_input_error_tells_the_user_why(tmp_path: Path) -> None:
    result = await run("input()\n", tmp_path)
    assert result.error is not None and "no standard input" in result.error.message


async def test_whole_process_group_dies_with_the_run(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
    )
    result = await run(code, tmp_path)
    assert result.status == "ok"
    pid = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"background child {pid} outlived the run")


async def test_cancel_stops_the_run_at_once(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    task = asyncio.ensure_future(
        LocalExecutor().run(request_for("import time\ntime.sleep(60)\n", tmp_path), cancel)
    )
    await asyncio.sleep(0.3)
    cancel.set()
    result = await asyncio.wait_for(task, timeout=5)
    assert result.status == "cancelled"


async def test_workspace_modules_are_importable_and_cwd_is_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("ANSWER = 42\n")
    result = await run("import os, helpers\n(helpers.ANSWER, os.getcwd())\n", tmp_path)
    assert result.value == repr((42, str(tmp_path)))


async def test_missing_interpreter_is_an_internal_error_that_names_the_setting(
    tmp_path: Path,
) -> None:
    result = await run("1\n", tmp_path, python=str(tmp_path / "nope" / "python"))
    assert result.status == "internal"
    assert "codeexec.python" in result.message


async def test_runs_under_another_interpreter_than_the_server(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venv", "--without-pip", str(venv)
    )
    assert await proc.wait() == 0
    result = await run("import sys\nsys.prefix\n", tmp_path)
    assert result.value == repr(str(venv))
    assert result.interpreter.startswith(str(venv))


async def test_a_fix_candidate_is_verified_in_the_strict_box(tmp_path: Path) -> None:
    """Code the user did not write (a model's fix) runs strict with no network, whatever
    the settings say: its workspace writes are thrown away."""
    from codeexec_lsp.actions.run import untrusted

    code = "open('from_the_model.txt', 'w').write('x')\nimport socket\nsocket.socket()\n"
    request = untrusted(request_for(code, tmp_path, network=True, sandbox="standard"))
    assert (request.sandbox, request.network_allowed) == ("strict", False)
    result = await LocalExecutor().run(request)
    assert result.extra["sandbox"]["profile"] == "strict", result
    if result.extra["sandbox"]["mounts"]["applied"]:
        assert not (tmp_path / "from_the_model.txt").exists()
    if result.extra["sandbox"]["network"]["applied"]:
        assert "network off" in result.extra["sandbox"]["summary"]
