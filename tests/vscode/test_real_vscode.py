"""The VS Code extension inside a real VS Code: code-server 4.100.3 driven by chromium.

The built .vsix is installed into code-server (VS Code 1.100.3), a workspace with a Python
file whose function raises on a known line is opened, and tests/vscode/driver.py (run
with the Python of the Playwright venv) does what a user does: Run Selection from the
command palette and by its key, hover, Ctrl+., Fix with LLM against the fake model
server, Explain, a live change of .vscode/settings.json, a server that cannot start. It
records what the page showed; the tests below check that record.

Prerequisites, installed outside the repository by `sudo bash tests/vscode/setup.sh`
(code-server, Debian's chromium, Playwright, the .vsix). Without them the tests skip and
say so; with CODEEXEC_REQUIRE_VSCODE=1 (what .ci/run sets) they fail instead.

code-server's state (user data, extensions, logs, XDG dirs, TMPDIR, HOME) lives in a
scratch dir. Screenshots of every step, the code-server and extension-host logs and
observed.json are kept when a test fails, in the directory the failure message names
(under $CODEEXEC_ARTIFACTS when set).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm_server import Answer, FakeLlmServer

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "editors" / "vscode"
DRIVER = Path(__file__).with_name("driver.py")
SETUP = (
    f"sudo CODEEXEC_VSCODE_CACHE={os.environ['CODEEXEC_VSCODE_CACHE']} bash tests/vscode/setup.sh"
    if os.environ.get("CODEEXEC_VSCODE_CACHE")
    else "sudo bash tests/vscode/setup.sh"
)
CODE_SERVER_VERSION = "4.100.3"
CACHE = Path(
    os.environ.get("CODEEXEC_VSCODE_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "codeexec-vscode"
)
CODE_SERVER = CACHE / f"code-server-{CODE_SERVER_VERSION}" / "node_modules" / ".bin" / "code-server"
PLAYWRIGHT_PYTHON = CACHE / "playwright-venv" / "bin" / "python"
CHROMIUM = Path(os.environ.get("CODEEXEC_CHROMIUM", "/usr/bin/chromium"))
DRIVER_TIMEOUT = 420  # seconds for the whole browser session; each step waits far less

# The workspace. `ratio` raises on line 2 when `report` runs (lines 1-12 selected).
DEMO = """\
def ratio(total, count):
    return total / count


def report(values):
    print("sum", sum(values))
    return ratio(sum(values), len(values) - 3)


answer = 6 * 7
answer
report([3, 4, 5])
"""
RAISING_LINE = 2
FIXED_RATIO = """\
def ratio(total, count):
    if count == 0:
        return 0.0
    return total / count
"""
SLOW = "import time\n\ntime.sleep(20)\nprint('not reached')\n"
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
EXPLAIN_TOKEN = "EXPLAINED-BY-THE-FAKE-MODEL"


def server_command() -> Path | None:
    """The codeexec-lsp of the environment running the tests (a venv's bin, else PATH)."""
    beside = Path(sys.executable).parent / "codeexec-lsp"
    if beside.exists():
        return beside
    found = shutil.which("codeexec-lsp")
    return Path(found) if found else None


def newest_source_mtime() -> float:
    sources = [EXTENSION_DIR / "package.json", *(EXTENSION_DIR / "src").glob("*.ts")]
    return max(path.stat().st_mtime for path in sources)


def built_vsix() -> Path | None:
    """The newest .vsix of editors/vscode, rebuilt first if the sources are newer.

    Rebuilding needs only node_modules (npm ci, which setup.sh ran): no network.
    CODEEXEC_VSIX names another .vsix to test instead (e.g. an older build).
    """
    if os.environ.get("CODEEXEC_VSIX"):
        return Path(os.environ["CODEEXEC_VSIX"])
    candidates = sorted(EXTENSION_DIR.glob("codeexec-*.vsix"), key=lambda p: p.stat().st_mtime)
    if candidates and candidates[-1].stat().st_mtime >= newest_source_mtime():
        return candidates[-1]
    if not (EXTENSION_DIR / "node_modules").is_dir():
        return None
    subprocess.run(  # vscode:prepublish compiles first
        ["npm", "run", "--silent", "package"],
        cwd=EXTENSION_DIR,
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    candidates = sorted(EXTENSION_DIR.glob("codeexec-*.vsix"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


@functools.cache
def missing() -> str | None:
    """Why this machine cannot run a real VS Code, or None."""
    if not CODE_SERVER.exists():
        return f"no code-server {CODE_SERVER_VERSION} in {CODE_SERVER.parents[2]}"
    if not CHROMIUM.exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    probe = (
        subprocess.run(
            [str(PLAYWRIGHT_PYTHON), "-c", "import playwright.sync_api"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if PLAYWRIGHT_PYTHON.exists()
        else None
    )
    if probe is None or probe.returncode != 0:
        return f"no Playwright in {PLAYWRIGHT_PYTHON.parents[1]}"
    if server_command() is None:
        return "no codeexec-lsp next to the test's Python or on PATH (pip install -e .)"
    if shutil.which("npm") is None and not list(EXTENSION_DIR.glob("codeexec-*.vsix")):
        return "no npm to build the extension's .vsix"
    return None


def require_prerequisites() -> None:
    reason = missing()
    if reason is None:
        return
    message = (
        f"real VS Code test: {reason}. Run `{SETUP}` (installs code-server, chromium and "
        f"Playwright into {CACHE}, builds the .vsix)."
    )
    if os.environ.get("CODEEXEC_REQUIRE_VSCODE") == "1":
        pytest.fail(message + " CODEEXEC_REQUIRE_VSCODE=1: failing instead of skipping.")
    pytest.skip(message)


pytestmark = pytest.mark.timeout(DRIVER_TIMEOUT + 180)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"code-server exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"code-server did not answer {url} within {timeout:.0f} s")


@dataclass
class Session:
    observed: dict[str, Any]
    artifacts: Path
    workspace: Path
    fake_llm: FakeLlmServer
    extension_log: str
    seconds: float

    def step(self, name: str) -> dict[str, Any]:
        record: dict[str, Any] = self.observed["steps"].get(name, {"error": "step never ran"})
        if record.get("error"):
            pytest.fail(
                f"step {name!r} raised in the browser driver:\n{record['error']}\n"
                f"screenshots and logs: {self.artifacts}"
            )
        return record

    def explain(self, name: str) -> str:
        record = self.observed["steps"].get(name, {})
        return (
            f"\nobserved in step {name!r}: {json.dumps(record, ensure_ascii=False, indent=1)}"
            f"\nscreenshots and logs: {self.artifacts}"
        )


def artifacts_dir() -> Path:
    base = os.environ.get("CODEEXEC_ARTIFACTS")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="codeexec-vscode-", dir=base or None))


def collect_logs(user_data: Path, artifacts: Path) -> str:
    """Copy code-server's logs into the artifacts; return the extension's output channel."""
    logs = user_data / "logs"
    if logs.is_dir():
        shutil.copytree(logs, artifacts / "code-server-logs", dirs_exist_ok=True)
    channel = sorted(logs.glob("**/output_logging_*/*codeexec*.log"))
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in channel)


@pytest.fixture(scope="module")
def vscode(request: pytest.FixtureRequest) -> Iterator[Session]:
    require_prerequisites()
    vsix = built_vsix()
    if vsix is None:
        pytest.fail(f"no .vsix in {EXTENSION_DIR} and no node_modules to build one: run `{SETUP}`")
    server = server_command()
    assert server is not None
    artifacts = artifacts_dir()
    scratch = Path(tempfile.mkdtemp(prefix="codeexec-vscode-scratch-"))
    workspace = scratch / "workspace"
    (workspace / ".vscode").mkdir(parents=True)
    (workspace / "demo.py").write_text(DEMO, encoding="utf-8")
    (workspace / "slow.py").write_text(SLOW, encoding="utf-8")
    (workspace / "plot.py").write_text(PLOT, encoding="utf-8")
    user_data, extensions = scratch / "user-data", scratch / "extensions"
    (user_data / "User").mkdir(parents=True)
    # Quiet start-up: no welcome page, no tips or surveys over the editor.
    (user_data / "User" / "settings.json").write_text(
        json.dumps(
            {
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": False,
                "workbench.enableExperiments": False,
                "extensions.ignoreRecommendations": True,
                "telemetry.telemetryLevel": "off",
                "update.mode": "none",
                "editor.hover.delay": 200,
            }
        )
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch / "home"),
        "XDG_CONFIG_HOME": str(scratch / "config"),
        "XDG_DATA_HOME": str(scratch / "data"),
        "XDG_CACHE_HOME": str(scratch / "cache"),
        "TMPDIR": str(scratch / "tmp"),
        "CODEEXEC_CACHE_DIR": str(scratch / "codeexec-cache"),
        "LANG": "C.UTF-8",
    }
    for name in ("home", "config", "data", "cache", "tmp"):
        (scratch / name).mkdir()
    started = time.monotonic()
    with FakeLlmServer() as fake_llm:
        fake_llm.script(
            Answer(f"Guard the division:\n```python\n{FIXED_RATIO}```"),
            Answer(f"{EXPLAIN_TOKEN}: `answer` is **42**, the product of 6 and 7."),
        )
        settings = {
            "codeexec.server.command": [str(server)],
            "codeexec.executor": "session",
            "codeexec.llm.provider": "openai",
            "codeexec.llm.baseUrl": fake_llm.openai_base_url,
            "codeexec.llm.model": "fake-model",
        }
        (workspace / ".vscode" / "settings.json").write_text(json.dumps(settings))
        install = subprocess.run(
            [
                str(CODE_SERVER),
                "--install-extension",
                str(vsix),
                "--extensions-dir",
                str(extensions),
                "--user-data-dir",
                str(user_data),
            ],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
        )
        assert install.returncode == 0, f"installing {vsix.name}: {install.stdout}{install.stderr}"
        port = free_port()
        log = (artifacts / "code-server.log").open("wb")
        code_server = subprocess.Popen(
            [
                str(CODE_SERVER),
                "--bind-addr",
                f"127.0.0.1:{port}",
                "--auth",
                "none",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--user-data-dir",
                str(user_data),
                "--extensions-dir",
                str(extensions),
                str(workspace),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for_http(url + "healthz", code_server)
            params = {
                "url": url,
                "chromium": str(CHROMIUM),
                "workspace": str(workspace),
                "out": str(artifacts),
                "settings": settings,
                "explain_token": EXPLAIN_TOKEN,
                "broken_commands": {
                    # A program that reads `initialize`, complains and exits: the case
                    # vscode-languageclient 9 reports as a successful start.
                    "exits_during_initialize": [
                        sys.executable,
                        "-c",
                        "import sys; sys.stdin.buffer.read(1); "
                        "sys.stderr.write('codeexec-test: broken on purpose\\n'); sys.exit(3)",
                    ],
                    "not_installed": [str(scratch / "nowhere" / "codeexec-lsp")],
                },
            }
            params_file = scratch / "params.json"
            params_file.write_text(json.dumps(params))
            driver = subprocess.run(
                [str(PLAYWRIGHT_PYTHON), str(DRIVER), str(params_file)],
                # chromium writes crash-report and dconf state under HOME/XDG dirs: scratch too
                env={**os.environ, **{k: v for k, v in env.items() if k != "PATH"}},
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=DRIVER_TIMEOUT,
            )
            (artifacts / "driver.log").write_text(driver.stdout + driver.stderr)
            observed_file = artifacts / "observed.json"
            assert driver.returncode == 0 and observed_file.exists(), (
                f"the browser driver failed ({driver.returncode}):\n{driver.stdout}\n"
                f"{driver.stderr[-4000:]}\nscreenshots and logs: {artifacts}"
            )
            observed = json.loads(observed_file.read_text(encoding="utf-8"))
        finally:
            code_server.terminate()
            try:
                code_server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                code_server.kill()
                code_server.wait()
            log.close()
        extension_log = collect_logs(user_data, artifacts)
        (artifacts / "codeexec-output-channel.log").write_text(extension_log)
        session = Session(
            observed, artifacts, workspace, fake_llm, extension_log, time.monotonic() - started
        )
        print(f"\nreal VS Code session: {session.seconds:.0f} s, artifacts in {artifacts}")
        yield session
    failed = getattr(request.module, "_vscode_failures", 0)
    shutil.rmtree(scratch, ignore_errors=True)
    if not failed:
        shutil.rmtree(artifacts, ignore_errors=True)
    else:
        print(f"\nreal VS Code test failed: screenshots and logs kept in {artifacts}")


def test_the_extension_starts_the_configured_server(vscode: Session) -> None:
    record = vscode.step("start")
    assert "codeexec: session" in record["status_bar"], vscode.explain("start")
    assert "demo.py" in record["tabs"], vscode.explain("start")
    assert "server running" in vscode.extension_log, vscode.extension_log[-3000:]


def test_run_selection_by_key_shows_the_value_as_an_inlay_hint(vscode: Session) -> None:
    record = vscode.step("keybinding_run")
    lines = record["editor_text"].splitlines()
    assert lines[10].startswith("answer") and "→ 42" in lines[10], vscode.explain("keybinding_run")
    assert "ran in" in record["status_bar"], vscode.explain("keybinding_run")


def test_run_selection_from_the_palette_marks_the_raising_line(vscode: Session) -> None:
    record = vscode.step("palette_run")
    explain = vscode.explain("palette_run")
    assert record["squiggled_lines"] == ["    return total / count"], explain
    [problem] = [row for row in record["problems"] if "ZeroDivisionError" in row]
    assert "division by zero" in problem, explain
    assert f"[Ln {RAISING_LINE}, Col" in problem, explain
    # The hint sits after the last line run, the status bar says what happened.
    last = record["editor_text"].splitlines()[11]
    assert last.startswith("report([3, 4, 5])") and "✗ ZeroDivisionError" in last, explain
    assert "ZeroDivisionError" in record["status_bar"], explain
    assert f"(line {RAISING_LINE})" in record["status_bar"], explain


def test_hover_shows_the_run_its_output_and_the_error(vscode: Session) -> None:
    record = vscode.step("hover")
    hover = record["hover"]
    explain = vscode.explain("hover")
    assert "codeexec" in hover and "raised" in hover, explain
    assert "sum 12" in hover, explain  # the run's stdout
    assert "ZeroDivisionError" in hover and f"line {RAISING_LINE}" in hover, explain


def test_quick_fix_list_offers_run_explain_and_fix(vscode: Session) -> None:
    actions = vscode.step("quick_fix_list")["actions"]
    explain = vscode.explain("quick_fix_list")
    assert any("Fix with LLM" in action for action in actions), explain
    assert any(action.startswith("Run") for action in actions), explain
    assert any(action.startswith("Explain") for action in actions), explain


def test_fix_with_llm_changes_the_buffer_and_the_error_goes_away(vscode: Session) -> None:
    record = vscode.step("fix")
    explain = vscode.explain("fix")
    assert "Fix with LLM" in record["focused_before_enter"], explain
    expected = DEMO.replace("def ratio(total, count):\n    return total / count\n", FIXED_RATIO)
    rendered = record["editor_text"].splitlines()
    assert rendered[:4] == expected.splitlines()[:4], explain
    assert record["squiggled_lines"] == [], explain
    assert not [row for row in record["problems"] if "ZeroDivisionError" in row], explain
    fix_requests = [r for r in vscode.fake_llm.model_requests if "ratio" in json.dumps(r.body)]
    assert fix_requests, "the fake model never got the fix request"
    # VS Code saves a file changed by a workspace edit (files.refactoring.autoSave, on by
    # default): the fix is on disk and the tab is not dirty. editors/vscode/README.md says so.
    assert record["on_disk"] == expected, explain
    assert record["tab_dirty"] is False, explain


def test_explain_opens_the_explanation_beside_the_code(vscode: Session) -> None:
    record = vscode.step("explain")
    explain = vscode.explain("explain")
    assert any(tab.endswith(".md") for tab in record["tabs"]), explain
    assert EXPLAIN_TOKEN in record["active_editor_text"], explain
    # codeexec.explanation.openIn defaults to "beside": a second editor group.
    assert record["groups_before"] == 1 and record["groups_after"] == 2, explain


def test_explanation_placement_follows_the_setting(vscode: Session) -> None:
    record = vscode.step("explain_placements")
    explain = vscode.explain("explain_placements")
    preview, active = record["preview"], record["active"]
    # "preview": the rendered Markdown beside the code; "active": over the code, one group.
    assert any(tab.startswith("Preview ") and tab.endswith(".md") for tab in preview["tabs"]), (
        explain
    )
    assert preview["groups"] == 2, explain
    assert any(tab.endswith(".md") and not tab.startswith("Preview") for tab in active["tabs"]), (
        explain
    )
    assert active["groups"] == 1, explain
    # The two later explanations came from the server's cache: the model was asked twice
    # in the whole session, once for the fix and once for the first explanation.
    requests = [json.dumps(r.body)[-300:] for r in vscode.fake_llm.model_requests]
    assert len(requests) == 2, requests


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode
    != 0,
    reason="matplotlib is not installed (the server runs code with this interpreter)",
)
def test_a_plot_shows_as_an_image_in_the_hover(vscode: Session) -> None:
    record = vscode.step("plot_hover")
    explain = vscode.explain("plot_hover")
    lines = record["editor_text"].splitlines()
    assert lines[1].startswith("plt.plot([1, 2, 3])") and "🖼 figure" in lines[1], explain
    # VS Code rendered the server's Markdown image: a data: PNG, decoded by the browser
    # (naturalWidth is 0 for an image that failed to load). The server scales it to fit.
    [image] = [row for row in record["images"] if row["src"].startswith("data:image/png")]
    assert image["complete"] and image["width"] > 0 and image["height"] > 0, explain
    assert image["src_length"] > 1000, explain


def test_a_changed_settings_json_takes_effect_live(vscode: Session) -> None:
    record = vscode.step("settings_live")
    explain = vscode.explain("settings_live")
    assert "codeexec: local" in record["status_bar"], explain  # the executor
    # The 1 s timeout: the hint after the last line run, and the status bar's summary.
    last = record["editor_text"].splitlines()[-1]
    assert last.startswith("print('not reached')") and "timed out" in last, explain
    assert "Stopped after 1 s" in record["status_bar_after_run"], explain


def test_a_server_that_cannot_start_gets_the_extensions_own_message(vscode: Session) -> None:
    record = vscode.step("broken_server")
    explain = vscode.explain("broken_server")
    for case in ("exits_during_initialize", "not_installed"):
        notes = record[case]["notifications"]
        ours = [n for n in notes if "did not start" in n["text"]]
        assert ours, f"{case}: {explain}"
        [note] = ours[-1:]
        assert "codeexec.server.command" in note["text"], explain
        assert "pipx install" in note["text"], explain
        assert {"Show Log", "Open Settings", "Retry"} <= set(note["buttons"]), explain
        # Only our message: not the language client's "couldn't create connection".
        assert not [n for n in notes if "couldn't create connection" in n["text"]], explain
        assert "codeexec" in record[case]["status_bar"], explain
    exits = record["exits_during_initialize"]["notifications"]
    assert any("broken on purpose" in n["text"] for n in exits), explain
    # Once for the first start; the broken commands never log "server running".
    assert vscode.extension_log.count("server running") == 1, vscode.extension_log[-3000:]
