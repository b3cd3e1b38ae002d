"""The jupyter executor against a real Jupyter Enterprise Gateway on 127.0.0.1.

EG 3.3.0 pins jupyter_client<7 and jupyter_server<2, which cannot live beside the
test environment's (see ../shared/notes/jupyter.md), so the test makes EG its own venv
(once: it is kept in the temp directory, marked complete only after the install
succeeded) and gives it a kernelspec with EG's LocalProcessProxy that runs ipykernel from
this environment. EG refuses `root` as KERNEL_USERNAME; the executor names another.
Without a package index the venv cannot be made: skipped, or failed under
CODEEXEC_REQUIRE_JUPYTER=1.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from codeexec_lsp.execution.jupyter import JupyterExecutor
from codeexec_lsp.results import RunResult
from tests.jupyter.conftest import JupyterServer, free_port, lines_request, request_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

EG_VERSION = "3.3.0"
EG_REQUIREMENTS = (
    f"jupyter_enterprise_gateway=={EG_VERSION}",
    "jupyter_client==6.1.12",
    "jupyter_server==1.24.0",
)
VENV = Path(tempfile.gettempdir()) / f"codeexec-test-eg-{EG_VERSION}"
COMPLETE = VENV / "codeexec-complete"
KERNEL_NAME = "codeexec-python"
LOCAL_PROXY = "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"


def _unavailable(reason: str) -> None:
    if os.environ.get("CODEEXEC_REQUIRE_JUPYTER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def enterprise_gateway_python() -> Path:
    python = VENV / "bin" / "python"
    if COMPLETE.exists():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *EG_REQUIREMENTS],
            check=True,
            timeout=900,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"could not make Enterprise Gateway's venv at {VENV}: {exc}")
    COMPLETE.write_text(" ".join(EG_REQUIREMENTS))
    return python


@pytest.fixture(scope="module")
def enterprise_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    python = enterprise_gateway_python()
    root = tmp_path_factory.mktemp("enterprise_gateway")
    spec_dir = root / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "codeexec test kernel",
        "language": "python",
        "metadata": {"process_proxy": {"class_name": LOCAL_PROXY}},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "EG_AUTH_TOKEN": token, "JUPYTER_PATH": str(root / "jupyter")}
    log = root / "eg.log"
    argv = [str(python), "-m", "enterprise_gateway", "--ip=127.0.0.1", f"--port={port}"]
    process = subprocess.Popen(
        [*argv, "--port_retries=0"],
        cwd=root,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = JupyterServer("enterprise_gateway", f"http://127.0.0.1:{port}", token, process, log)
    os.environ[server.token_env] = token
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"Enterprise Gateway exited: {log.read_text()[-2000:]}")
            try:
                with server.client() as client:
                    if client.get("/api/kernelspecs").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Enterprise Gateway did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        os.environ.pop(server.token_env, None)
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jupyter_eg")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(enterprise_gateway: JupyterServer) -> AsyncIterator[JupyterExecutor]:
    jupyter = JupyterExecutor(
        url=enterprise_gateway.url, token_env=enterprise_gateway.token_env, kernel=KERNEL_NAME
    )
    try:
        yield jupyter
    finally:
        await jupyter.close()


async def run(executor: JupyterExecutor, code: str, folder: Path, **settings: object) -> RunResult:
    return await executor.run(request_for(code, folder, **settings))


async def test_state_and_real_lines(executor: JupyterExecutor, folder: Path) -> None:
    first = await run(executor, "on_eg = 21\n", folder)
    assert first.status == "ok", first.message
    assert (await run(executor, "on_eg * 2\n", folder)).value == "42"
    document = "\n" * 5 + "def f():\n    return [][1]\n\n\nf()\n"
    await executor.run(lines_request(document, 6, 7, folder))
    error = await executor.run(lines_request(document, 10, 10, folder))
    assert error.error is not None
    assert (error.error.type, error.error.line) == ("IndexError", 7)


async def test_timeout_keeps_state_and_a_death_is_reported(
    executor: JupyterExecutor, folder: Path
) -> None:
    stopped = await run(executor, "while True:\n    pass\n", folder, timeout=1)
    assert stopped.status == "timeout"
    assert (await run(executor, "on_eg\n", folder)).value == "21"
    died = await run(executor, "import os\nos._exit(2)\n", folder)
    assert died.extra["jupyter"]["state_lost"] is True
    after = await run(executor, "'on_eg' in globals()\n", folder)
    assert after.status == "ok" and after.value == "False"


async def test_our_kernel_is_deleted_at_close(
    enterprise_gateway: JupyterServer, folder: Path
) -> None:
    jupyter = JupyterExecutor(
        url=enterprise_gateway.url, token_env=enterprise_gateway.token_env, kernel=KERNEL_NAME
    )
    result = await run(jupyter, "1\n", folder)
    kernel_id = result.extra["jupyter"]["kernel_id"]
    assert enterprise_gateway.has_kernel(kernel_id)
    await jupyter.close()
    assert not enterprise_gateway.has_kernel(kernel_id)
