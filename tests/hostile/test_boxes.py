"""The attacks of issue 10, each in the profile where it must be stopped (DESIGN.md
principle 8), for every executor it applies to; and what the standard profile must allow.

The box is built by trusted code before the user's interpreter starts, so an interpreter
or a `.pth` that a run planted in the workspace runs inside it. Every test here failed on
the sandbox that confined the interpreter from within (after `site` had run), kept /tmp,
/dev/shm and /dev/pts shared, counted no tmpfs/memfd memory and read result pipes without
a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.settings import ApiSettings
from codeexec_lsp.config import Settings
from codeexec_lsp.execution import sandbox
from codeexec_lsp.execution.base import Executor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult
from tests.fakes.api_harness import ThreadedApi
from tests.pythons import python_another_user_can_run

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux kernel features"),
]

CANARY = "sk-box-canary-" + secrets.token_hex(6)
ROOT = os.geteuid() == 0
API_TOKEN_VARIABLE = "BOXES_SUITE_API_TOKEN"
API_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(params=["local", "session"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    chosen: Executor = LocalExecutor() if request.param == "local" else SessionExecutor()
    try:
        yield chosen
    finally:
        await chosen.close()


async def run(
    executor: Executor,
    code: str,
    workspace: Path,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> RunResult:
    path = workspace / "attack.py"
    path.write_text(code)
    merged: dict[str, Any] = {"timeout": 20.0, **settings}
    request = build_request(snippet.whole_file(code, str(path)), Settings(**merged), workspace)
    if env:
        request = replace(request, env={**request.env, **env})
    return await asyncio.wait_for(executor.run(request), 120)


def everything(result: RunResult) -> str:
    return " ".join(
        (
            result.stdout,
            result.stderr,
            str(result.value),
            result.message,
            result.error.message if result.error else "",
        )
    )


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP server on the host's loopback that records every connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append("connection")
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


# --- a planted interpreter and a planted .pth ----------------------------------------------

# The server under attack runs in a process of its own, started with the LLM key in its
# environment: /proc/<pid>/environ shows a process's environment as it was at exec, so
# a key set later by the test (monkeypatch) would not be there to steal.
SERVER_SCRIPT = """\
import asyncio, json, os, sys
from dataclasses import replace
from pathlib import Path
from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor

kind, folder, steps = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
executor = LocalExecutor() if kind == "local" else SessionExecutor()

async def main():
    results = []
    try:
        for step in steps:
            if step["op"] == "write":
                path = Path(step["path"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(step["text"])
                path.chmod(step.get("mode", 0o644))
            elif step["op"] == "restart":
                results.append(await executor.restart())
            else:
                path = folder / "attack.py"
                path.write_text(step["code"])
                settings = Settings(timeout=20, sandbox=step["sandbox"])
                code = snippet.whole_file(step["code"], str(path))
                result = await executor.run(build_request(code, settings, folder))
                results.append(result.to_json())
    finally:
        await executor.close()
    print(json.dumps(results))

asyncio.run(main())
"""


def serve_steps(kind: str, folder: Path, steps: list[dict[str, Any]]) -> list[Any]:
    """Run `steps` against a fresh server process whose environment holds the LLM key."""
    import json

    env = {**os.environ, "OPENAI_API_KEY": CANARY}
    done = subprocess.run(
        [sys.executable, "-c", SERVER_SCRIPT, kind, str(folder), json.dumps(steps)],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    results: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def exists(path: str) -> bool:
    return os.path.exists(path)


def remove_hogs() -> None:
    for leftover in Path("/dev/shm").glob("codeexec-hog-*"):
        leftover.unlink(missing_ok=True)


def shared_folder() -> Path:
    """A folder another uid can use (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="codeexec-runas-"))
    folder.chmod(0o777)
    return folder


def wrapper_text() -> str:
    """What run 1 of an attacker writes as `.venv/bin/python`: a wrapper that reads the
    server's environment, then starts the real interpreter so nothing looks wrong. What it
    finds travels in the environment to the code (a session worker's start-up output is
    not part of any run)."""
    return (
        "#!/bin/sh\n"
        "LEAKED=\"PARENT:$(cat /proc/$PPID/environ 2>&1 | tr '\\0' ' ')\"\n"
        'LEAKED="$LEAKED $(grep CapEff /proc/self/status)"\n'
        "export LEAKED\n"
        f'exec {sys.executable} "$@"\n'
    )


@pytest.mark.parametrize("kind", ["local", "session"])
@pytest.mark.parametrize("profile", ["standard", "strict"])
def test_a_planted_interpreter_runs_inside_the_box(kind: str, tmp_path: Path, profile: str) -> None:
    code = "import os\nos.environ.get('LEAKED', '')\n"
    plant: dict[str, Any] = {
        "op": "write",
        "path": str(tmp_path / ".venv" / "bin" / "python"),
        "text": wrapper_text(),
        "mode": 0o755,
    }
    run_step: dict[str, Any] = {"op": "run", "code": code, "sandbox": profile}
    if kind == "session":
        # A session resolves its interpreter once; a restart picks up the planted one.
        steps = [{**run_step, "code": "1\n"}, plant, run_step, {"op": "restart"}, run_step]
        *_, told, restarted, result = serve_steps(kind, tmp_path, steps)
        assert "Restart the session" in told["message"], told
        assert restarted == 1
    else:
        (result,) = serve_steps(kind, tmp_path, [plant, run_step])
    assert result["status"] == "ok", result
    leaked = str(result["value"])
    assert "PARENT:" in leaked, "the planted interpreter did not run: the test is void"
    assert CANARY not in json_text(result), "the planted wrapper read the LLM key"
    assert "Permission denied" in leaked, leaked  # /proc/<server>/environ
    if ROOT:
        assert "000001ffffffffff" not in leaked, leaked  # not with every capability


def json_text(value: Any) -> str:
    import json

    return json.dumps(value)


def plant_pth(workspace: Path, port: int) -> None:
    """A workspace venv whose site-packages holds a .pth that runs at interpreter start:
    it reads the server's environment and calls a server on the host's loopback."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(workspace / ".venv")],
        check=True,
        timeout=120,
    )
    site = next((workspace / ".venv" / "lib").glob("python3*/site-packages"))
    # What it finds travels in the environment to the code (a session worker's start-up
    # output is not part of any run).
    payload = (
        "import os, socket\n"
        "found = []\n"
        "try:\n"
        "    environ = open('/proc/%d/environ' % os.getppid()).read()\n"
        "    found.append('PTH-PARENT:' + environ.replace(chr(0), ' '))\n"
        "except OSError as exc:\n"
        "    found.append('PTH-PARENT-REFUSED:%s' % exc)\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
        "    found.append('PTH-NET:connected')\n"
        "except OSError as exc:\n"
        "    found.append('PTH-NET-REFUSED:%s' % exc)\n"
        "os.environ['PTH_FOUND'] = ' '.join(found)\n"
    )
    (site / "evil_payload.py").write_text(payload)
    (site / "evil.pth").write_text("import evil_payload\n")


@pytest.mark.parametrize("kind", ["local", "session"])
@pytest.mark.parametrize("profile", ["standard", "strict"])
def test_a_planted_pth_runs_inside_the_box(
    kind: str, tmp_path: Path, listener: tuple[int, list[str]], profile: str
) -> None:
    port, accepted = listener
    plant_pth(tmp_path, port)
    code = "import os\nos.environ.get('PTH_FOUND', '')\n"
    (result,) = serve_steps(kind, tmp_path, [{"op": "run", "code": code, "sandbox": profile}])
    assert result["status"] == "ok", result
    found = str(result["value"])
    assert "PTH-PARENT" in found, "the .pth did not run: the test is void"
    assert CANARY not in json_text(result), "the .pth read the LLM key"
    assert "PTH-PARENT-REFUSED" in found, found
    if profile == "strict":
        assert "PTH-NET-REFUSED" in found and accepted == [], found
    else:
        assert "PTH-NET:connected" in found, found  # the user's own code has network


# --- Unix sockets, terminals, leftovers ------------------------------------------------------


@pytest.fixture
def unix_server() -> Iterator[tuple[str, list[bytes]]]:
    """A pathname Unix socket anyone may connect to (like a careless tmux or D-Bus)."""
    folder = Path(tempfile.mkdtemp(prefix="codeexec-sock-"))
    folder.chmod(0o777)
    path = str(folder / "control.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(2)
                with contextlib.suppress(OSError):
                    received.append(connection.recv(100))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield path, received
    stop.set()
    thread.join(2)
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


async def test_strict_runs_reach_no_unix_socket_outside(
    executor: Executor, tmp_path: Path, unix_server: tuple[str, list[bytes]]
) -> None:
    path, received = unix_server
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({path!r})\n"
        "s.sendall(b'run-this-outside')\n"
    )
    result = await run(executor, code, tmp_path, sandbox="strict")
    assert result.status == "error", result
    assert received == [], "a strict run talked to a Unix socket outside its box"


async def test_strict_runs_cannot_read_or_write_terminals(
    executor: Executor, tmp_path: Path
) -> None:
    master, replica = os.openpty()
    try:
        name = os.ttyname(replica)
        code = (
            "import os\n"
            "done = []\n"
            f"for path in ({name!r}, '/dev/tty'):\n"
            "    try:\n"
            "        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)\n"
            "        os.write(fd, b'\\x1b]0;pwned\\x07')\n"
            "        done.append(path)\n"
            "    except OSError as exc:\n"
            "        pass\n"
            "done, sorted(os.listdir('/dev/pts'))\n"
        )
        result = await run(executor, code, tmp_path, sandbox="strict")
        os.set_blocking(master, False)
        try:
            written = os.read(master, 100)
        except BlockingIOError:
            written = b""
    finally:
        os.close(master)
        os.close(replica)
    assert result.status == "ok", result
    assert written == b"", "a strict run wrote into a terminal"
    assert result.value == "([], [])", result  # /dev/tty leads nowhere; no ptys to see


async def test_strict_tmp_and_shm_files_do_not_outlive_the_run(
    executor: Executor, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    shm, tmp = f"/dev/shm/codeexec-left-{token}", f"/tmp/codeexec-left-{token}"
    code = f"for path in ({shm!r}, {tmp!r}):\n    open(path, 'w').write('left')\n"
    try:
        result = await run(executor, code, tmp_path, sandbox="strict")
        assert result.status == "ok", result
        assert not any(map(exists, (shm, tmp))), "a strict run's files outlived it"
        fresh = LocalExecutor()
        try:
            look = f"import os\n[os.path.exists(p) for p in ({shm!r}, {tmp!r})]\n"
            seen = await run(fresh, look, tmp_path, sandbox="strict")
        finally:
            await fresh.close()
        assert seen.value == "[False, False]", seen
    finally:
        for path in (shm, tmp):
            with contextlib.suppress(OSError):
                os.unlink(path)


# --- memory that RLIMIT_AS does not count ------------------------------------------------------


@pytest.mark.parametrize("where", ["memfd", "shm"])
async def test_memfd_and_shm_beyond_memory_mb_are_stopped(
    executor: Executor, tmp_path: Path, where: str
) -> None:
    if sandbox.process_plan().memory_parent is None:
        pytest.skip(f"no memory cgroup here: {sandbox.process_plan().memory_missing}")
    opener = (
        "fd = os.memfd_create('hog')\n"
        if where == "memfd"
        else "fd = os.open('/dev/shm/codeexec-hog-%d' % os.getpid(), os.O_CREAT | os.O_RDWR)\n"
    )
    code = (
        "import os\n"
        + opener
        + "chunk = b'x' * (1 << 20)\n"
        + "for _ in range(400):\n"
        + "    os.write(fd, chunk)\n"
        + "'survived'\n"
    )
    try:
        result = await run(executor, code, tmp_path, memory_mb=128)
    finally:
        remove_hogs()
    assert result.status == "limit", result
    assert "memory" in result.message.lower(), result
    after = await run(executor, "6 * 7\n", tmp_path, memory_mb=128)
    assert (after.status, after.value) == ("ok", "42"), after


# --- the result channel ------------------------------------------------------------------------

FLOOD_SCRIPT = """\
import asyncio, json, os, resource, sys
from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from pathlib import Path

kind, folder, code = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

if kind == "api":
    import httpx
    from codeexec_lsp.api.app import create_app
    from codeexec_lsp.api.settings import ApiSettings
    from tests.fakes.api_harness import ThreadedApi
    os.environ["FLOOD_API_TOKEN"] = "flood-token-0123456789abcdef"
    app = create_app(ApiSettings(token_env="FLOOD_API_TOKEN", cache_dir=folder / "envs"))
    with ThreadedApi(app) as api:
        headers = {"Authorization": "Bearer flood-token-0123456789abcdef"}
        before = peak_kb()
        answer = httpx.post(api.url + "/execute", json={"code": code}, headers=headers,
                            timeout=120).json()
        follow = httpx.post(api.url + "/execute", json={"code": "print(6*7)"},
                            headers=headers, timeout=60).json()
    print(json.dumps({"status": answer.get("run_status"), "message": answer.get("error"),
                      "follow": follow["output"].strip(), "before_kb": before,
                      "peak_kb": peak_kb()}))
    sys.exit(0)

executor = LocalExecutor() if kind == "local" else SessionExecutor()
path = folder / "flood.py"
path.write_text(code)
request = build_request(snippet.whole_file(code, str(path)), Settings(timeout=60), folder)
before = peak_kb()

async def main():
    try:
        result = await executor.run(request)
        follow = await executor.run(request.__class__(**{**request.__dict__,
            "snippet": snippet.whole_file("6*7\\n", str(path))}))
        return result, follow
    finally:
        await executor.close()

result, follow = asyncio.run(main())
print(json.dumps({"status": result.status, "message": result.message,
                  "follow": follow.value, "before_kb": before, "peak_kb": peak_kb()}))
"""

# The runner's (or the worker's) result pipe is a number on its command line.
FLOOD_CODE = textwrap.dedent(
    """\
    import os
    args = open('/proc/self/cmdline', 'rb').read().split(b'\\0')
    fd = int(args[args.index(b'--result-fd') + 1])
    chunk = b'x' * (1 << 20)
    for _ in range(512):
        os.write(fd, chunk)
    """
)


@pytest.mark.parametrize("kind", ["local", "session", "api"])
def test_a_result_pipe_flood_keeps_the_server_small(kind: str, tmp_path: Path) -> None:
    """512 MB written into the result pipe: the server (a fresh process, so its peak RSS
    is this run's) reads at most 10 × maxOutputBytes of it and ends the run as `limit`."""
    done = subprocess.run(
        [sys.executable, "-c", FLOOD_SCRIPT, kind, str(tmp_path), FLOOD_CODE],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    import json

    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    grown_mb = (outcome["peak_kb"] - outcome["before_kb"]) / 1024
    print(f"{kind}: server peak RSS grew {grown_mb:.0f} MB during a 512 MB result flood")
    assert outcome["status"] == "limit", outcome
    if kind != "api":  # the API answers in its own words
        assert "bytes of result" in outcome["message"], outcome
    assert outcome["follow"] == "42", outcome
    assert grown_mb < 128, f"the server grew {grown_mb:.0f} MB reading one run's result"


# --- the /execute server: one tenant, another's files ------------------------------------------


@pytest.fixture
def api_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv(API_TOKEN_VARIABLE, API_TOKEN)
    settings = ApiSettings(
        token_env=API_TOKEN_VARIABLE,
        max_concurrency=2,
        queue_size=4,
        max_run_time=30,
        cache_dir=tmp_path / "envs",
    )
    with ThreadedApi(create_app(settings)) as api:
        yield api.url


async def test_an_api_tenant_cannot_see_another_tenants_files(api_url: str) -> None:
    secret = uuid.uuid4().hex
    holder = (
        "import os, time\n"
        f"open('mine.txt', 'w').write({secret!r})\n"
        "open('/dev/shm/tenant-a', 'w').write('shm')\n"
        "time.sleep(4)\n"
        "print(os.getcwd())\n"
    )
    snoop = (
        "import glob, os, time\n"
        "time.sleep(1)\n"
        "found = []\n"
        "for path in glob.glob('/tmp/codeexec-api-*/*') + glob.glob('/dev/shm/*'):\n"
        "    try:\n"
        "        found.append(open(path).read())\n"
        "    except OSError:\n"
        "        pass\n"
        "print(found)\n"
    )
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=api_url, timeout=60, headers=headers) as client:
        first, second = await asyncio.gather(
            client.post("/execute", json={"code": holder}),
            client.post("/execute", json={"code": snoop}),
        )
        token_probe = await client.post(
            "/execute",
            json={
                "code": "import os\n"
                "for pid in ('1', str(os.getppid())):\n"
                "    try:\n"
                "        print(open('/proc/%s/environ' % pid).read())\n"
                "    except OSError as exc:\n"
                "        print('refused', exc.strerror)\n"
            },
        )
    assert first.json()["status"] == "success", first.text
    assert second.json()["status"] == "success", second.text
    assert secret not in second.text and "shm" not in second.json()["output"], second.text
    assert API_TOKEN not in token_probe.text, "the code read the API token"


# --- CODEEXEC_RUN_AS ------------------------------------------------------------------------


@pytest.mark.skipif(not ROOT, reason="switching to another uid needs a root server")
@pytest.mark.parametrize("profile", ["standard", "strict"])
async def test_run_as_is_honoured_with_a_pids_cgroup_too(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    python = python_another_user_can_run()
    if python is None:
        pytest.skip("no interpreter here that an unprivileged uid can run")
    folder = shared_folder()
    monkeypatch.setenv(sandbox.RUN_AS_ENV, "65534:65534")
    sandbox.process_plan.cache_clear()
    try:
        result = await run(
            executor,
            "import os\nos.getuid(), os.getgid()\n",
            folder,
            sandbox=profile,
            python=python,
        )
    finally:
        monkeypatch.delenv(sandbox.RUN_AS_ENV)
        sandbox.process_plan.cache_clear()
        shutil.rmtree(folder, ignore_errors=True)
    assert (result.status, result.value) == ("ok", "(65534, 65534)"), result
    report = result.extra["sandbox"]
    said = " ".join([*report["notes"], report["processes"]["mechanism"]])
    assert "uid 65534" in said, report


# --- what the standard profile must allow ------------------------------------------------------


def test_display_variables_reach_the_code_and_secrets_do_not() -> None:
    from codeexec_lsp.execution.environment import scrubbed_environment

    env = scrubbed_environment(
        {
            "XAUTHORITY": "/home/u/.Xauthority",
            "DISPLAY": ":0",
            "WAYLAND_DISPLAY": "wayland-0",
            "GITHUB_TOKEN": "t",
            "DB_PASSWORD": "p",
            "AWS_SECRET_ACCESS_KEY": "s",
            "MY_CREDENTIALS": "c",
            "OPENAI_API_KEY": "k",
        }
    )
    assert {"XAUTHORITY", "DISPLAY", "WAYLAND_DISPLAY"} <= set(env)
    assert not {"GITHUB_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "MY_CREDENTIALS"} & set(env)
    assert "OPENAI_API_KEY" not in env


async def test_xauthority_reaches_a_standard_run(
    executor: Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XAUTHORITY", "/home/someone/.Xauthority")
    result = await run(executor, "import os\nos.environ.get('XAUTHORITY')\n", tmp_path)
    assert result.value == "'/home/someone/.Xauthority'", result


@pytest.fixture
def home_outside_tmp() -> Iterator[Path]:
    """A HOME the old box did not allow writes to (it allowed the workspace and /tmp)."""
    home = Path(tempfile.mkdtemp(prefix="codeexec-home-", dir="/var/tmp"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_a_fresh_standard_worker_imports_matplotlib_without_a_cache_warning(
    tmp_path: Path, home_outside_tmp: Path
) -> None:
    pytest.importorskip("matplotlib")
    session = SessionExecutor()
    try:
        env = {"HOME": str(home_outside_tmp), "MPLBACKEND": "Agg"}
        env.pop("MPLCONFIGDIR", None)
        result = await run(session, "import matplotlib.pyplot\n'imported'\n", tmp_path, env=env)
    finally:
        await session.close()
    assert (result.status, result.value) == ("ok", "'imported'"), result
    assert "temporary cache directory" not in result.stderr, result.stderr
    assert "is not a writable directory" not in result.stderr, result.stderr
    assert (home_outside_tmp / ".cache" / "matplotlib").is_dir() or (
        home_outside_tmp / ".config" / "matplotlib"
    ).is_dir()


async def test_standard_runs_write_the_home_cache_and_outside_the_workspace(
    executor: Executor, tmp_path: Path, home_outside_tmp: Path
) -> None:
    outside = home_outside_tmp.parent / f"codeexec-outside-{uuid.uuid4().hex}.txt"
    code = (
        "import os, pathlib\n"
        "cache = pathlib.Path(os.path.expanduser('~/.cache/x'))\n"
        "cache.parent.mkdir(parents=True, exist_ok=True)\n"
        "cache.write_text('cached')\n"
        f"open({str(outside)!r}, 'w').write('outside')\n"
    )
    try:
        result = await run(executor, code, tmp_path, env={"HOME": str(home_outside_tmp)})
        assert result.status == "ok", result
        assert (home_outside_tmp / ".cache" / "x").read_text() == "cached"
        assert outside.read_text() == "outside"
    finally:
        outside.unlink(missing_ok=True)


# --- the session's interpreter ------------------------------------------------------------------


async def test_a_session_says_when_the_workspace_interpreter_changed(tmp_path: Path) -> None:
    session = SessionExecutor()
    try:
        first = await run(session, "import sys\nsys.executable\n", tmp_path)
        wrapper = tmp_path / ".venv" / "bin" / "python"
        wrapper.parent.mkdir(parents=True)
        wrapper.write_text(f'#!/bin/sh\necho PLANTED >&2\nexec {sys.executable} "$@"\n')
        wrapper.chmod(0o755)
        second = await run(session, "import sys\nsys.executable\n", tmp_path)
        assert second.value == first.value and "PLANTED" not in second.stderr, second
        assert str(wrapper) in second.message and "Restart the session" in second.message
        assert await session.restart() == 1
        third = await run(session, "1\n", tmp_path)
        assert third.status == "ok" and not third.message, third
    finally:
        await session.close()


@pytest.mark.skipif(not ROOT, reason="switching to another uid needs a root server")
async def test_strict_runs_as_a_separate_uid_when_the_server_is_root(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without CODEEXEC_RUN_AS, a root server runs strict code as nobody wherever the
    interpreter is open to other users and the workspace is not a throwaway overlay (whose
    files keep their owners: another uid could not write them); otherwise the report says
    why, and every capability of root is dropped instead."""
    python = python_another_user_can_run()
    if python is None:
        pytest.skip("no interpreter here that an unprivileged uid can run")
    monkeypatch.delenv(sandbox.RUN_AS_ENV, raising=False)
    sandbox.process_plan.cache_clear()
    folder = shared_folder()
    try:
        code = "import os\nos.getuid()\n"
        result = await run(executor, code, folder, sandbox="strict", python=python)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result.status == "ok", result
    summary = result.extra["sandbox"]["summary"]
    if "overlay" in summary:
        assert result.value == "0", result
        notes = " ".join(result.extra["sandbox"]["notes"])
        assert "separate uid NOT applied" in notes and "overlay" in notes, notes
        assert "every capability of root dropped" in notes
    else:
        assert result.value == str(sandbox.STRICT_UID[0]), result
        assert summary.endswith(f"as uid {sandbox.STRICT_UID[0]}")
    standard = await run(executor, code, tmp_path)
    assert standard.value == "0", standard  # the user's own code runs as the user
    private = tmp_path / "private-python"
    private.mkdir(mode=0o700)
    (private / "python").symlink_to(sys.executable)
    closed = await run(executor, code, tmp_path, sandbox="strict", python=str(private / "python"))
    notes = " ".join(closed.extra["sandbox"]["notes"])
    if closed.value == "0":
        assert "separate uid NOT applied" in notes and "closed to other users" in notes, notes
        assert "every capability of root dropped" in notes


def kernel_files() -> list[str]:
    found = [str(p) for p in Path("/sys/fs/cgroup").glob("*/cgroup.procs")][:2]
    return found + [str(p) for p in (Path("/dev/vda"), Path("/dev/sda")) if p.exists()]


async def test_standard_runs_do_not_write_the_kernels_files(
    executor: Executor, tmp_path: Path
) -> None:
    """Writes wherever the user may, but not /sys (a root child could leave its cgroups and
    their limits) nor device nodes such as the disk."""
    targets = kernel_files()
    if not targets:
        pytest.skip("no cgroup files or disks to try here")
    code = (
        "import os\n"
        "refused = []\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'ab').close()\n"
        "    except OSError as exc:\n"
        "        refused.append(exc.strerror)\n"
        "len(refused)\n"
    )
    result = await run(executor, code, tmp_path)
    assert (result.status, result.value) == ("ok", str(len(targets))), result
