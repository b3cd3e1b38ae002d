"""The sandbox layers, one mechanism at a time: process bound, network off, write limits,
and what `doctor` and the hover say about them. Real child processes throughout; the
fallbacks are forced by shortening the server's list of mechanisms."""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeexec_lsp import cli, snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.settings import ApiSettings
from codeexec_lsp.config import Settings, parse_settings
from codeexec_lsp.execution import sandbox
from codeexec_lsp.execution.base import Executor, RunRequest
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.sandbox import Layer, ProcessGuard, ProcessPlan, SandboxReport
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.present import hover_markdown
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import RunRecord
from tests.fakes.api_harness import ThreadedApi
from tests.pythons import python_another_user_can_run

REPO = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
PLAN = sandbox.process_plan()
needs_linux = pytest.mark.skipif(not LINUX, reason="these layers are Linux kernel features")
needs_root = pytest.mark.skipif(not ROOT, reason="switching to another uid needs a root server")

FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"
# For the supervisor fallback as root: nothing in the kernel bounds root's processes
# there, so a real fork bomb could swamp the machine between two counts. This one grows
# one process at a time, well past the limit.
FORK_LOOP = (
    "import os, time\n"
    "for _ in range(2000):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(60)\n"
    "        os._exit(0)\n"
    "    time.sleep(0.001)\n"
)
# The child leaves the run's session and process group, forks, and its child sleeps on
# after the run: only a cgroup or a subreaper finds it afterwards.
SETSID_ESCAPE = (
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open('escaped.pid', 'w').write(str(os.getpid()))\n"
    "        time.sleep(300)\n"
    "    os._exit(0)\n"
    "while not os.path.exists('escaped.pid'):\n"
    "    time.sleep(0.01)\n"
    "'parent done'\n"
)


def request_for(
    code: str, workspace: Path, python: str | None = None, **fields: object
) -> RunRequest:
    path = workspace / "snippet.py"
    path.write_text(code)
    settings = Settings(timeout=10, python=python)
    request = build_request(snippet.whole_file(code, str(path)), settings, workspace)
    return replace(request, **fields)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "session"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    chosen: Executor = LocalExecutor() if request.param == "local" else SessionExecutor()
    try:
        yield chosen
    finally:
        await chosen.close()


async def run(executor: Executor, code: str, workspace: Path, **fields: Any) -> RunResult:
    return await asyncio.wait_for(executor.run(request_for(code, workspace, **fields)), 60)


def processes_in(folder: Path) -> set[int]:
    """Live processes whose working directory is `folder`: what a run left behind."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/cwd") == str(folder):
                    found.add(int(name))
            except OSError:
                continue
    return found


def session_pids(executor: Executor) -> set[int]:
    return set(executor.pids().values()) if isinstance(executor, SessionExecutor) else set()


async def assert_nothing_left(folder: Path, keep: set[int] | None = None) -> None:
    for _ in range(100):
        left = processes_in(folder) - (keep or set())
        if not left:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"processes left behind: {sorted(left)}")


def alive(pid: int) -> bool:
    """Running, or stopped: a zombie is dead, only not yet reaped by its new parent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            state = stat_file.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


async def assert_gone(pid: int) -> None:
    for _ in range(100):
        if not alive(pid):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"process {pid} outlived the run")


@pytest.fixture
def forced_plan(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """For replacing sandbox.process_plan (which guards call at each start)."""
    yield monkeypatch


def skip_unless_applied(result: RunResult, layer: str) -> None:
    """Only for a mechanism this machine cannot have (an old kernel, a host that refuses
    user namespaces): the run then says why, and that is what the report tests check."""
    applied = result.extra["sandbox"][layer]
    if not applied["applied"]:
        pytest.skip(f"no {layer} confinement on this machine: {applied['detail']}")


# --- processes ---------------------------------------------------------------------------


async def check_fork_bomb(
    executor: Executor, workspace: Path, code: str = FORK_BOMB, **fields: object
) -> RunResult:
    """The bomb ends as a process-limit result within seconds, nothing of it is left, and
    the next run can fork again. Returns that next run."""
    await run(executor, "kept = 'yes'\n", workspace, **fields)
    result = await run(executor, code, workspace, **fields)
    assert result.status == "limit", result
    assert "Process limit" in result.message and "256" in result.message
    await assert_nothing_left(workspace, keep=session_pids(executor))
    after = await run(
        executor, "import subprocess\nsubprocess.run(['true']).returncode\n", workspace, **fields
    )
    assert (after.status, after.value) == ("ok", "0"), after  # forks work again
    await executor.close()
    await assert_nothing_left(workspace)
    return after


@needs_linux
@pytest.mark.timeout(90)
async def test_fork_bomb_is_stopped_in_seconds_and_leaves_nothing(
    executor: Executor, tmp_path: Path
) -> None:
    if PLAN.mechanism == "group":
        pytest.skip(f"no process bound can be made here: {PLAN.missing}")
    if PLAN.mechanism == "supervisor" and ROOT:
        pytest.skip("as root without a pids cgroup, a real fork bomb could swamp the machine")
    after = await check_fork_bomb(executor, tmp_path)
    if PLAN.mechanism == "cgroup" and isinstance(executor, SessionExecutor):
        assert not after.message  # the worker and its state were kept


@needs_linux
@pytest.mark.timeout(90)
async def test_fork_bomb_under_the_supervisor_fallback(
    executor: Executor, tmp_path: Path, forced_plan: pytest.MonkeyPatch
) -> None:
    forced_plan.setattr(sandbox, "process_plan", lambda: ProcessPlan("supervisor"))
    after = await check_fork_bomb(executor, tmp_path, FORK_LOOP)
    if isinstance(executor, SessionExecutor):
        # Without a cgroup a session's worker cannot be kept: the next run says so.
        assert "killed by the process limit" in after.message


def open_to_all(folder: Path) -> None:
    folder.chmod(0o777)


def remove_leaks(paths: Iterable[str]) -> list[str]:
    leaked = [path for path in paths if os.path.exists(path)]
    for path in leaked:
        os.unlink(path)
    return leaked


@needs_linux
@needs_root
@pytest.mark.timeout(90)
async def test_fork_bomb_under_a_separate_uid(
    tmp_path: Path, forced_plan: pytest.MonkeyPatch
) -> None:
    python = python_another_user_can_run()
    if python is None:
        pytest.skip("no interpreter here that an unprivileged uid can run")
    forced_plan.setattr(sandbox, "process_plan", lambda: ProcessPlan("uid", run_as=(65534, 65534)))
    open_to_all(tmp_path)  # the uid must be able to write its workspace
    for executor in (LocalExecutor(), SessionExecutor()):
        whoami = await run(executor, "import os\nos.getuid()\n", tmp_path, python=python)
        assert whoami.value == "65534", whoami
        assert "separate uid" in whoami.extra["sandbox"]["processes"]["mechanism"]
        await check_fork_bomb(executor, tmp_path, python=python)


@needs_linux
@pytest.mark.timeout(60)
@pytest.mark.parametrize("plan", ["best", "supervisor"])
async def test_a_child_that_escapes_with_setsid_is_killed(
    executor: Executor, tmp_path: Path, forced_plan: pytest.MonkeyPatch, plan: str
) -> None:
    if plan == "supervisor":
        forced_plan.setattr(sandbox, "process_plan", lambda: ProcessPlan("supervisor"))
    elif PLAN.mechanism == "group":
        pytest.skip(f"no process bound can be made here: {PLAN.missing}")
    result = await run(executor, SETSID_ESCAPE, tmp_path)
    assert (result.status, result.value) == ("ok", "'parent done'"), result
    escaped = int((tmp_path / "escaped.pid").read_text())
    if isinstance(executor, SessionExecutor):
        assert alive(escaped)  # a session's background processes live on between runs...
        await executor.close()  # ...until it closes
    await assert_gone(escaped)
    await assert_nothing_left(tmp_path)


@needs_linux
async def test_each_local_run_gets_a_cgroup_that_is_removed(tmp_path: Path) -> None:
    if PLAN.mechanism != "cgroup" or PLAN.cgroup_parent is None:
        pytest.skip(f"no pids cgroup here: {PLAN.missing}")
    mine = f"{os.getpid()}-"
    before = {p.name for p in PLAN.cgroup_parent.iterdir() if p.name.startswith(mine)}
    executor = LocalExecutor(prestart=True)
    try:
        for _ in range(3):
            result = await run(executor, "import os\nopen('/proc/self/cgroup').read()\n", tmp_path)
            assert "codeexec" in str(result.value)
    finally:
        await executor.close()
    after = {p.name for p in PLAN.cgroup_parent.iterdir() if p.name.startswith(mine)}
    assert after <= before


# --- network -----------------------------------------------------------------------------


@pytest.fixture
async def loopback_server() -> AsyncIterator[int]:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello from the test")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def connect_code(port: int) -> str:
    return (
        "import socket\n"
        f"with socket.create_connection(('127.0.0.1', {port}), timeout=5) as s:\n"
        "    data = s.recv(100)\n"
        "data\n"
    )


@needs_linux
async def test_strict_runs_have_no_network(
    executor: Executor, tmp_path: Path, loopback_server: int
) -> None:
    result = await run(executor, connect_code(loopback_server), tmp_path, sandbox="strict")
    skip_unless_applied(result, "network")
    assert result.status == "error" and result.error is not None
    assert result.error.type in ("OSError", "PermissionError")
    assert "Network is unreachable" in result.error.message or "denied" in result.error.message
    resolved = await run(
        executor,
        "import socket\nsocket.getaddrinfo('example.com', 443)\n",
        tmp_path,
        sandbox="strict",
    )
    assert resolved.error is not None and resolved.error.type == "socket.gaierror"
    assert result.extra["sandbox"]["network"]["applied"]
    assert "network off" in result.extra["sandbox"]["summary"]


@needs_linux
async def test_standard_runs_reach_the_loopback_with_urllib(
    executor: Executor, tmp_path: Path
) -> None:
    """The user's own code runs as in their terminal: an HTTP server on 127.0.0.1 answers."""
    import http.server
    import threading

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello over http")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code = (
            "import urllib.request\n"
            f"urllib.request.urlopen('http://127.0.0.1:{server.server_port}/', timeout=10).read()\n"
        )
        result = await run(executor, code, tmp_path)
        strict = await run(executor, code, tmp_path, sandbox="strict")
    finally:
        server.shutdown()
        server.server_close()
    assert (result.status, result.value) == ("ok", "b'hello over http'"), result
    assert result.extra["sandbox"]["summary"].startswith("standard · network on")
    assert strict.status == "error", strict


@needs_linux
async def test_network_true_overrides_the_strict_profile(
    executor: Executor, tmp_path: Path, loopback_server: int
) -> None:
    code = connect_code(loopback_server)
    result = await run(executor, code, tmp_path, sandbox="strict", network=True)
    assert (result.status, result.value) == ("ok", "b'hello from the test'"), result
    assert result.extra["sandbox"]["summary"].startswith("strict · network on")
    # Off again for the next run: a pre-started child or a worker is never shared.
    off = await run(executor, code, tmp_path, sandbox="strict")
    assert off.status == "error"
    off = await run(executor, code, tmp_path, network=False)
    assert off.status == "error"


def test_network_and_sandbox_settings_are_validated() -> None:
    assert parse_settings({"network": True})[0].network is True
    assert parse_settings({})[0].network is None
    assert parse_settings({"sandbox": "strict"})[0].sandbox == "strict"
    settings, warnings = parse_settings({"network": "yes", "sandbox": "loose"})
    assert settings.network is None and settings.sandbox == "standard"
    assert warnings == [
        'codeexec.sandbox: expected one of "standard", "strict", got \'loose\'; '
        "using the default ('standard')",
        "codeexec.network: expected true or false, got 'yes'; using the default (None)",
    ]


@needs_linux
@pytest.mark.parametrize(
    ("method", "message"),
    [("userns", "Network is unreachable"), ("seccomp", "Permission denied")],
)
async def test_network_fallbacks(
    tmp_path: Path,
    loopback_server: int,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    message: str,
) -> None:
    monkeypatch.setattr(sandbox, "NETWORK_METHODS", (method,))
    code = connect_code(loopback_server).replace("s.recv(100)", "0")
    result = await run(LocalExecutor(), code, tmp_path, sandbox="strict")
    skip_unless_applied(result, "network")
    assert result.error is not None and message in result.error.message, result
    assert result.extra["sandbox"]["network"]["mechanism"] == sandbox.NETWORK_NAMES[method]
    # Local sockets still work: multiprocessing and asyncio need them.
    pair = await run(
        LocalExecutor(), "import socket\nlen(socket.socketpair())\n", tmp_path, sandbox="strict"
    )
    assert pair.value == "2"


# --- file system -------------------------------------------------------------------------

WRITES = """\
import os, tempfile
def attempt(path):
    try:
        with open(path, 'w') as f:
            f.write('x')
        return 'written'
    except OSError as exc:
        return type(exc).__name__ + ': ' + exc.strerror
handle, temp = tempfile.mkstemp()
os.close(handle)
os.makedirs('sub/dir', exist_ok=True)
os.rename('sub/dir', 'sub/moved')
({name: attempt(path) for name, path in TARGETS.items()}, attempt(temp), attempt('sub/moved/f'))
"""


@needs_linux
@pytest.mark.parametrize("method", ["landlock", "mountns"])
async def test_strict_writes_are_refused_or_thrown_away(
    executor: Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Strict: /etc and home are read-only; /tmp (and anything under it) is a private
    tmpfs; the workspace is a copy-on-write view: every write is gone after the run."""
    if method == "mountns" and not ROOT:
        pytest.skip("the mount-namespace fallback is tested as root only")
    monkeypatch.setattr(sandbox, "FILESYSTEM_METHODS", (method,))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "kept.txt").write_text("original")
    token = uuid.uuid4().hex
    refused_targets = {"etc": f"/etc/codeexec-{token}", "opt": f"/opt/codeexec-{token}"}
    home = Path.home()
    if not (home.is_relative_to("/tmp") or home.is_relative_to(tmp_path)):
        refused_targets["home"] = str(home / f"codeexec-outside-{token}.txt")
    private_targets = {
        "tmp": f"/tmp/codeexec-outside-{token}",
        "parent": str(tmp_path / f"outside-{token}"),
    }
    targets = {**refused_targets, **private_targets}
    code = f"TARGETS = {targets!r}\n" + WRITES + "\nopen('kept.txt', 'w').write('changed')\n"
    request = replace(request_for(code, workspace), sandbox="strict")
    try:
        result = await asyncio.wait_for(executor.run(request), 60)
        skip_unless_applied(result, "mounts")
        assert (result.status, result.value) == ("ok", "7"), result
        assert (workspace / "kept.txt").read_text() == "original"
        assert not (workspace / "sub").exists()
        if isinstance(executor, SessionExecutor):
            # A strict session's copy of the workspace lives as long as the session.
            assert await executor.restart() == 1
        shown = await asyncio.wait_for(
            executor.run(
                replace(
                    request_for(f"TARGETS = {targets!r}\n" + WRITES, workspace), sandbox="strict"
                )
            ),
            60,
        )
        outcome, temp, moved = ast.literal_eval(str(shown.value))
        assert (temp, moved) == ("written", "written")
        for name in refused_targets:
            assert outcome[name] in (
                "PermissionError: Permission denied",
                "OSError: Read-only file system",
            ), outcome
        for name in private_targets:
            assert outcome[name] == "written", outcome  # in the run's own /tmp
        assert shown.extra["sandbox"]["mounts"]["applied"]
        assert "overlay" in shown.extra["sandbox"]["summary"]
    finally:
        leaked = remove_leaks(targets.values())
        assert not leaked, f"writes outside the workspace got through: {leaked}"


@needs_linux
async def test_standard_runs_write_wherever_the_user_may(
    executor: Executor, tmp_path: Path
) -> None:
    """The user's own code writes ~/.cache (a temporary HOME here) and outside the
    workspace, as `python file.py` would."""
    workspace, home = tmp_path / "ws", tmp_path / "home"
    workspace.mkdir()
    home.mkdir()
    outside = tmp_path / f"outside-{uuid.uuid4().hex}.txt"
    code = (
        "import os, pathlib\n"
        "cache = pathlib.Path(os.path.expanduser('~/.cache/x'))\n"
        "cache.parent.mkdir(parents=True, exist_ok=True)\n"
        "cache.write_text('cached')\n"
        f"open({str(outside)!r}, 'w').write('outside')\n"
    )
    request = request_for(code, workspace)
    request = replace(request, env={**request.env, "HOME": str(home)})
    result = await asyncio.wait_for(executor.run(request), 60)
    assert result.status == "ok", result
    assert (home / ".cache" / "x").read_text() == "cached"
    assert outside.read_text() == "outside"


@needs_linux
def test_the_api_server_runs_code_without_network_or_writes_outside(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODEEXEC_API_TOKEN", "sandbox-test-token-0123456789")
    token = uuid.uuid4().hex
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
            "    net = 'connected'\n"
            "except OSError as exc:\n"
            "    net = exc.strerror\n"
            "try:\n"
            f"    open('/etc/codeexec-api-{token}', 'w')\n"
            "    fs = 'written'\n"
            "except OSError as exc:\n"
            "    fs = exc.strerror\n"
            "print(net, '|', fs)\n"
        )
        settings = ApiSettings(max_run_time=10, cache_dir=tmp_path / "envs")
        with ThreadedApi(create_app(settings)) as api:
            response = httpx.post(
                f"{api.url}/execute",
                json={"code": code},
                headers={"Authorization": "Bearer sandbox-test-token-0123456789"},
                timeout=30,
            )
    assert response.status_code == 200
    output = response.json()["output"]
    leaked = remove_leaks([f"/etc/codeexec-api-{token}"])
    assert not leaked and "connected" not in output and "written" not in output, output


# --- what is said about it ---------------------------------------------------------------


async def test_a_run_reports_its_layers_and_the_hover_shows_them(tmp_path: Path) -> None:
    result = await run(LocalExecutor(), "1\n", tmp_path)
    applied = result.extra["sandbox"]
    assert set(applied) >= {"processes", "network", "filesystem", "summary"}
    markdown = hover_markdown(RunRecord(0, 0, result, "line 1", str(tmp_path / "snippet.py")))
    assert applied["summary"] in markdown.replace("\\", "")  # hover may escape Markdown
    if LINUX and PLAN.mechanism == "cgroup":
        assert applied["summary"].startswith(
            "standard · network on · server out of reach · processes ≤ 256 (pids cgroup)"
        )


async def test_missing_mechanisms_are_said_plainly(
    tmp_path: Path, forced_plan: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    forced_plan.setattr(sandbox, "NETWORK_METHODS", ())
    forced_plan.setattr(sandbox, "FILESYSTEM_METHODS", ())
    missing = ("pids cgroup: simulated", "supervisor: needs /proc (Linux)")
    forced_plan.setattr(sandbox, "process_plan", lambda: ProcessPlan("group", missing=missing))
    forced_plan.setattr(sandbox, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="codeexec_lsp.sandbox"):
        first = await run(LocalExecutor(), "1 + 1\n", tmp_path, sandbox="strict")
        second = await run(LocalExecutor(), "1 + 1\n", tmp_path, sandbox="strict")
    assert (first.status, first.value, second.value) == ("ok", "2", "2")
    summary = first.extra["sandbox"]["summary"]
    assert summary.startswith("strict · ⚠ network NOT blocked · "), summary
    assert summary.endswith(" · ⚠ processes NOT bounded"), summary
    assert "workspace" in summary  # the mount namespace does not depend on these lists
    warnings = [r.getMessage() for r in caplog.records if "NOT confined" in r.getMessage()]
    assert len(warnings) == 3  # once per layer, not once per run
    assert first.extra["sandbox"]["processes"]["missing"] == list(missing)


def test_report_lines_name_each_layer_and_why_better_ones_are_missing() -> None:
    guard = ProcessGuard(64, ProcessPlan("supervisor", missing=("pids cgroup: no write access",)))
    child = {
        "subreaper": True,
        "nproc": {"ok": True, "detail": "RLIMIT_NPROC 300"},
        "network": {
            "allowed": False,
            "mechanism": "seccomp",
            "missing": ["network namespace: unshare: Operation not permitted"],
        },
        "filesystem": {
            "mechanism": None,
            "detail": "Landlock is not in this kernel (needs Linux 5.13+); mount namespace: "
            "unshare: Operation not permitted",
        },
    }
    report = sandbox.build_report(guard, child, network_allowed=False)
    text = "\n".join(report.lines())
    assert "processes ≤ 64, counted every 20 ms; RLIMIT_NPROC 300 (supervisor)" in text
    assert "not used: pids cgroup: no write access" in text
    assert "off (seccomp filter refusing inet sockets)" in text
    assert "not used: network namespace: unshare: Operation not permitted" in text
    assert "filesystem  NOT applied: Landlock is not in this kernel" in text
    assert report.summary() == (
        "standard · network off · ⚠ server's processes NOT out of reach · "
        "processes ≤ 64 (supervisor)"
    )
    assert "without Landlock, code of the same uid can read the server's /proc" in text
    unreported = sandbox.build_report(guard, None, network_allowed=False)
    assert not unreported.network.applied and "did not report" in unreported.network.detail


def test_doctor_prints_the_sandbox_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    simulated = SandboxReport(
        processes=Layer(True, "pids cgroup v2", "processes ≤ 256", short="processes ≤ 256"),
        network=Layer(False, "", "no mechanism: unshare: Operation not permitted"),
        filesystem=Layer(True, "Landlock ABI 3", f"writes only in {tmp_path}"),
    )
    asked: list[str] = []

    def probe(python: str, cwd: str, profile: str) -> SandboxReport:
        asked.append(profile)
        return simulated

    monkeypatch.setattr(sandbox, "probe", probe)
    cli.main(["doctor", str(tmp_path), "--settings", '{"executor": "local"}'])
    out = capsys.readouterr().out
    assert asked == ["standard", "strict"], "doctor shows both profiles"
    section = out[out.index("sandbox, strict profile (") :]
    assert "processes   processes ≤ 256 (pids cgroup v2)" in section
    assert "network     NOT applied: no mechanism: unshare: Operation not permitted" in section
    assert f"filesystem  writes only in {tmp_path} (Landlock ABI 3)" in section
    assert "sandbox applied: " in section  # and the test run says what it really got


@needs_linux
def test_doctor_probe_applies_the_layers_for_real(tmp_path: Path) -> None:
    report = sandbox.probe(sys.executable, str(tmp_path))
    if PLAN.mechanism == "cgroup":
        assert report.processes.applied and "pids cgroup" in report.processes.mechanism
    assert report.network.applied or report.network.detail
    assert report.filesystem.applied or report.filesystem.detail


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another uid can use: tmp_path sits below pytest's private (0700) folder."""
    folder = Path(tempfile.mkdtemp(prefix="codeexec-test-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def files_another_user_can_read(*paths: Path) -> bool:
    return all(
        part.stat().st_mode & stat.S_IXOTH for path in paths for part in path.resolve().parents
    )


@needs_linux
@needs_root
@pytest.mark.timeout(90)
def test_a_non_root_server_degrades_to_what_it_may_do(shared_folder: Path) -> None:
    """The same code run by an unprivileged user: no cgroup, so a supervisor and
    RLIMIT_NPROC bound the processes, and a user namespace replaces the network one."""
    python = python_another_user_can_run()
    setpriv = shutil.which("setpriv")
    if python is None or setpriv is None or not files_another_user_can_read(REPO / "codeexec_lsp"):
        pytest.skip("needs setpriv, and an interpreter and checkout another uid can read")
    script = shared_folder / "as_user.py"
    script.write_text(
        "import asyncio, sys\n"
        "from codeexec_lsp.execution import sandbox\n"
        "from codeexec_lsp.execution.base import Limits, RunRequest\n"
        "from codeexec_lsp.execution.local import LocalExecutor\n"
        "from codeexec_lsp.snippet import Snippet\n"
        "print('\\n'.join(sandbox.probe().lines()))\n"
        f"folder = {str(shared_folder)!r}\n"
        "code = 'import os\\nwhile True:\\n    os.fork()\\n'\n"
        "snip = Snippet(code=code, path=folder + '/s.py', document=code,\n"
        "               first_line=0, last_line=2, kind='file')\n"
        "request = RunRequest(snip, sys.executable, folder, {'PATH': '/usr/bin'},\n"
        "                     Limits(timeout_s=20), sandbox='strict')\n"
        "result = asyncio.run(LocalExecutor().run(request))\n"
        "print('RESULT', result.status, result.extra['sandbox']['summary'])\n"
    )
    uid = "65533"  # not the uid the separate-uid test uses: RLIMIT_NPROC is per uid
    done = subprocess.run(
        [setpriv, "--reuid", uid, "--regid", uid, "--clear-groups", python, str(script)],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=shared_folder,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(shared_folder)},
    )
    assert done.returncode == 0, done.stderr
    assert "supervisor" in done.stdout and "RLIMIT_NPROC" in done.stdout
    assert "not used: pids cgroup: no write access" in done.stdout
    assert "RESULT limit strict · network off" in done.stdout, done.stdout
    assert "(supervisor)" in done.stdout


def test_an_interpreter_behind_a_closed_folder_is_unreachable_for_others(tmp_path: Path) -> None:
    """A venv's `bin/python` links to an interpreter other users may run, but exec walks the
    link's own folders: one closed to others means a separate uid cannot start it (strict
    runs then stay with the server's uid and say why, instead of failing to start)."""
    from codeexec_lsp.execution.sandbox_child import unreachable_for_others

    target = Path(sys.executable).resolve()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python").symlink_to(target)
    why = unreachable_for_others([str(private / "python")])
    assert why is not None and str(private) in why, why
