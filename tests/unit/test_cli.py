"""The CLI as a user runs it: a real subprocess, output and exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import FakeLlmServer

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.py"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_run_json_maps_error_inside_indented_selection_to_the_file_line() -> None:
    lines = DEMO.read_text().splitlines()
    cell = next(i for i, line in enumerate(lines, 1) if "Price ratios" in line)
    raising = next(i for i, line in enumerate(lines, 1) if "price / cheapest" in line)
    proc = cli("run", str(DEMO), "--lines", f"{cell}-{len(lines)}", "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert result["status"] == "error" and result["error"]["type"] == "ZeroDivisionError"
    assert result["error"]["line"] == raising
    assert result["error"]["column"] == lines[raising - 1].index("price / cheapest")
    assert result["stdout"] == "[1.0, 2.0]\n"
    assert result["error"]["frames"][0]["line"] == len(lines)  # the indented call site


def test_run_prints_output_value_and_compiler_style_location(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('hi')\nx = 2\nx * 21\nfor i in range(2):\n    1 / (i - 1 + 0)\n")
    ok = cli("run", str(script), "--lines", "1-3")
    assert (ok.returncode, ok.stdout) == (0, "hi\n42\n")
    failing = cli("run", str(script), "--lines", "4-5")
    assert failing.returncode == 1
    assert failing.stdout.strip() == f"{script}:5:5: ZeroDivisionError: division by zero"


def test_timeout_exit_code_and_usage_errors(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text("while True:\n    pass\n")
    proc = cli("run", str(script), "--timeout", "1")
    assert proc.returncode == 3 and "TimeoutError" in proc.stdout
    assert cli("run", str(script), "--lines", "9-3").returncode == 2
    assert cli("run", str(script), "--lines", "40-41").returncode == 2
    assert cli("run", str(tmp_path / "missing.py")).returncode == 2


@pytest.mark.parametrize(
    ("secret_name", "provider"), [("OPENAI_API_KEY", "openai"), ("ANTHROPIC_API_KEY", "anthropic")]
)
def test_doctor_reports_without_leaking_secrets(
    tmp_path: Path, secret_name: str, provider: str, fake_llm: FakeLlmServer
) -> None:
    canary = "sk-doctor-canary-1234567890"
    fake_llm.require_key = canary
    base = fake_llm.openai_base_url if provider == "openai" else fake_llm.anthropic_base_url
    settings = {"llm": {"provider": provider, "baseUrl": base, "model": "fake-model"}}
    proc = cli(
        "doctor", str(tmp_path), "--settings", json.dumps(settings), env={secret_name: canary}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert canary not in proc.stdout + proc.stderr
    assert "test run of 1+1 (session): ok, value 2" in proc.stdout
    assert "interpreter:" in proc.stdout and secret_name in proc.stdout
    # The model was checked with the key, for free: a model list, no chat request.
    assert f"key     accepted ({secret_name}, value hidden)" in proc.stdout
    assert "model   'fake-model' is available" in proc.stdout
    assert fake_llm.requests and fake_llm.model_requests == []


def test_doctor_fails_before_first_use_on_a_refused_key_or_unknown_model(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    fake_llm.require_key = "sk-the-right-one-123456"
    settings = json.dumps({"llm": {"baseUrl": fake_llm.openai_base_url, "model": "gpt-nope"}})
    wrong_key = cli(
        "doctor", str(tmp_path), "--settings", settings, env={"OPENAI_API_KEY": "x" * 20}
    )
    assert wrong_key.returncode == 1, wrong_key.stdout
    key_line = next(line for line in wrong_key.stdout.splitlines() if "key     " in line)
    assert "OPENAI_API_KEY" in key_line and "accepted" not in key_line
    assert wrong_key.stdout.splitlines()[-1].startswith("doctor: 1 problem(s): the LLM check")
    unknown = cli(
        "doctor",
        str(tmp_path),
        "--settings",
        settings,
        env={"OPENAI_API_KEY": fake_llm.require_key},
    )
    assert unknown.returncode == 1, unknown.stdout
    assert "gpt-nope" in next(line for line in unknown.stdout.splitlines() if "model   " in line)


def test_demo_drives_the_real_server_and_shows_diagnostic_hover_and_hint() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    lines = DEMO.read_text().splitlines()
    raising = next(i for i, line in enumerate(lines, 1) if "price / cheapest" in line)
    column = lines[raising - 1].index("price / cheapest") + 1
    assert f"diagnostic at line {raising}, column {column} [codeexec/ZeroDivisionError]" in (
        proc.stdout
    )
    assert "hover over the run lines" in proc.stdout and "[1.0, 2.0]" in proc.stdout
    assert "inlay hint after line" in proc.stdout
    # The README shows this output: its header, numbered listing and diagnostic must be
    # what the demo really prints.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- demo-command -->", 1)[1].split("```text\n", 1)[1]
    shown = shown.split("```", 1)[0]

    def essentials(text: str) -> list[str]:
        keep = ("$ editor:", "result:", "diagnostic at", "inlay hint")
        return [
            line.rstrip()
            for line in text.splitlines()
            if line.startswith(keep) or re.match(r"^ +\d+ \|", line)
        ]

    assert essentials(shown) == essentials(proc.stdout)


def assert_one_line_usage_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_settings_file_that_does_not_exist_is_named_as_missing(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('ran')\n")
    proc = cli("run", str(script), "--settings", str(tmp_path / "missing.json"))
    assert_one_line_usage_error(proc, "missing.json", "no such file")
    assert "not valid JSON" not in proc.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{timeout: 1}")
    proc = cli("run", str(script), "--settings", str(broken))
    assert_one_line_usage_error(proc, "broken.json", "not valid JSON")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "soon"], "--timeout"),
        (["--executor", "docker"], "docker"),
        (["--settings", '{"timeout": -5}'], "codeexec.timeout"),
        (["--settings", '{"executor": "docker"}'], "codeexec.executor"),
        (["--settings", "[1, 2]"], "--settings"),
        (["--lines", "ten"], "--lines"),
    ],
)
def test_invalid_values_are_one_line_usage_errors_and_nothing_runs(
    tmp_path: Path, options: list[str], needle: str
) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "s.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    proc = cli("run", str(script), *options)
    assert_one_line_usage_error(proc, needle)
    assert "warning" not in proc.stderr
    assert not marker.exists()


def test_doctor_passes_and_says_so_on_a_working_machine(tmp_path: Path) -> None:
    proc = cli("doctor", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "doctor: every check passed"
    assert "FAILED" not in proc.stdout


def test_doctor_exits_non_zero_and_never_says_ok_when_the_interpreter_cannot_run(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'this interpreter is broken' >&2\nexit 1\n")
    broken.chmod(0o755)
    settings = json.dumps({"python": str(broken)})
    proc = cli("doctor", str(tmp_path), "--settings", settings)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    output = proc.stdout.splitlines()
    test_run = next(line for line in output if line.startswith("test run of 1+1"))
    assert ": ok" not in test_run and "FAILED" in test_run
    assert "FAILED: the standard sandbox probe failed" in proc.stdout
    assert "FAILED: the strict sandbox probe failed" in proc.stdout
    assert "this interpreter is broken" in proc.stdout
    assert output[-1].startswith("doctor: ") and "problem" in output[-1]
    assert "every check passed" not in proc.stdout


def closed_pipe_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with stdout a real pipe whose reader has already gone: every write fails
    with EPIPE, deterministically."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "codeexec_lsp", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


def head_one_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`codeexec-lsp ARGS | head -1` in bash: the CLI's exit status, what head printed, and
    the CLI's stderr."""
    command = " ".join(shlex.quote(part) for part in [sys.executable, "-m", "codeexec_lsp", *args])
    proc = subprocess.run(
        ["bash", "-c", f'{command} 2>"$ERR" | head -1; exit "${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ERR": os.devnull, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_run_and_doctor_stop_quietly_on_a_closed_pipe(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text("for i in range(50_000):\n    print('line', i)\n")
    for args in (["run", str(script)], ["run", str(script), "--json"], ["doctor", str(tmp_path)]):
        status, stderr = closed_pipe_run(*args)
        assert status == 141, (args, stderr)
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_run_piped_into_head_exits_without_a_traceback(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text("for i in range(50_000):\n    print('line', i)\n")
    err = tmp_path / "err.txt"
    status, first, _ = head_one_run("run", str(script), env={"ERR": str(err)})
    assert first == "line 0\n"
    assert status in (0, 141)
    assert "Traceback" not in err.read_text() and "BrokenPipe" not in err.read_text()


def lsp_message(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"processId": None, "rootUri": None, "capabilities": {}},
}


def read_lsp_message(stream: socket.socket) -> dict[str, object]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = stream.recv(4096)
        assert chunk, "connection closed mid-message"
        body += chunk
    answer: dict[str, object] = json.loads(body[:length])
    return answer


def test_bare_command_in_a_terminal_says_it_is_a_language_server() -> None:
    controller, terminal = pty.openpty()
    server = subprocess.Popen(
        [sys.executable, "-m", "codeexec_lsp"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    try:
        assert server.stderr is not None
        hint = server.stderr.readline().decode()
        assert "language server" in hint and "codeexec-lsp demo" in hint
        assert server.poll() is None  # and it goes on serving
    finally:
        server.kill()
        server.wait()
        os.close(controller)


def test_bare_command_started_by_an_editor_prints_no_hint() -> None:
    exit_now = lsp_message({"jsonrpc": "2.0", "method": "exit"})
    done = subprocess.run(
        [sys.executable, "-m", "codeexec_lsp"],
        input=lsp_message(INITIALIZE) + exit_now,
        capture_output=True,
        timeout=60,
    )
    assert b'"id": 1' in done.stdout or b'"id":1' in done.stdout
    assert b"language server" not in done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening_addresses(port: int) -> list[str]:
    """Local addresses in LISTEN state for `port`, from /proc/net/tcp (hex, as the kernel
    writes them: 0100007F is 127.0.0.1, 00000000 is every interface)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp (Linux)")
def test_serve_tcp_listens_on_loopback_only_and_warns() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "codeexec_lsp", "serve", "--tcp", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        warning = server.stderr.readline()
        assert f"127.0.0.1:{port}" in warning and "anyone who can connect" in warning
        connection = None
        for _ in range(600):  # the warning comes just before the socket is bound
            assert server.poll() is None, server.stderr.read()
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        assert connection is not None, "the server never accepted a connection"
        with connection:
            connection.sendall(lsp_message(INITIALIZE))
            answer = read_lsp_message(connection)
            # While connected: pygls stops listening once its one client hangs up.
            listening = listening_addresses(port)
        assert answer.get("id") == 1 and "capabilities" in str(answer.get("result"))
        assert listening == ["0100007F"]
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("address", ["0.0.0.0:{port}", "[::]:{port}", "example.com:{port}"])
def test_serve_tcp_refuses_a_non_loopback_host_without_allow_remote(address: str) -> None:
    proc = cli("serve", "--tcp", address.format(port=free_port()))
    assert_one_line_usage_error(proc, "--allow-remote", "not a loopback address")


def test_demo_works_outside_the_clone_and_its_bundled_copy_matches_examples(
    tmp_path: Path,
) -> None:
    from codeexec_lsp.demo import DEMO_SOURCE

    assert DEMO.read_text(encoding="utf-8") == DEMO_SOURCE
    proc = subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[codeexec/ZeroDivisionError]" in proc.stdout


def _lsp_message(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_serve_ends_cleanly_on_shutdown_and_exit() -> None:
    # An editor restarting the server sends shutdown then exit; the old server must end with
    # status 0 and nothing on stderr (pygls closes stdout on exit: no flush traceback).
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "codeexec_lsp"],
        input=b"".join(_lsp_message(message) for message in messages),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
