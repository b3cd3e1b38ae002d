"""Real kernels and real servers on 127.0.0.1 for the jupyter executor's tests.

Skipped, with the reason, when the Jupyter packages are not installed; with
CODEEXEC_REQUIRE_JUPYTER=1 (CI) their absence fails instead. Servers are shared by the
whole session and kernels by a module: each start costs seconds on a 2-core machine.
Tokens reach the servers through their environment, never their argv.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest

REQUIRED = ("jupyter_client", "ipykernel", "websockets", "jupyter_server", "kernel_gateway")
MISSING = [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not MISSING:
        return
    reason = f"Jupyter packages not installed ({', '.join(MISSING)}): pip install -e '.[test]'"
    if os.environ.get("CODEEXEC_REQUIRE_JUPYTER") == "1":
        pytest.fail(reason + " (CODEEXEC_REQUIRE_JUPYTER=1)", pytrace=False)
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


def request_for(
    code: str, folder: Path, name: str = "snippet.py", **settings: object
) -> RunRequest:
    """A RunRequest for the whole file, built exactly as actions/run.py builds the editor's."""
    path = folder / name
    path.write_text(code)
    return build_request(snippet.whole_file(code, str(path)), Settings(**settings), folder)  # type: ignore[arg-type]


def lines_request(
    document: str, first: int, last: int, folder: Path, name: str = "module.py", **settings: object
) -> RunRequest:
    """Lines first..last (1-based) of `document`, as `codeexec-lsp run --lines` runs them."""
    path = folder / name
    path.write_text(document)
    piece = snippet.for_lines(document, str(path), first - 1, last - 1)
    return build_request(piece, Settings(**settings), folder)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterServer:
    kind: str
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def token_env(self) -> str:
        """The variable our executor reads the token from (set in this process only)."""
        return f"CODEEXEC_TEST_{self.kind.upper()}_TOKEN"

    def client(self, token: str | None = None) -> httpx.Client:
        """A fresh client (jupyter_server's login cookie would keep a reused one in)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {token or self.token}"}
        )

    def has_kernel(self, kernel_id: str) -> bool:
        """By id: Kernel Gateway does not list kernels unless configured to."""
        with self.client() as client:
            return client.get(f"/api/kernels/{kernel_id}").status_code == 200


def _jupyter_bin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} not found beside {sys.executable}"
    return found


def start_server(kind: str, root: Path) -> JupyterServer:
    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "JUPYTER_TOKEN": token, "KG_AUTH_TOKEN": token}
    if kind == "jupyter_server":
        argv = [
            _jupyter_bin("jupyter-server"),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
        ]
        if os.geteuid() == 0:
            argv.append("--allow-root")
    else:
        argv = [
            _jupyter_bin("jupyter-kernelgateway"),
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.port_retries=0",
        ]
    log = root / f"{kind}.log"
    process = subprocess.Popen(
        argv, cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = JupyterServer(kind, f"http://127.0.0.1:{port}", token, process, log)
    os.environ[server.token_env] = token
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{kind} exited: {log.read_text()[-2000:]}")
        try:
            with server.client() as client:
                if client.get("/api/kernelspecs").status_code == 200:
                    return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"{kind} did not start: {log.read_text()[-2000:]}")


def stop_server(server: JupyterServer) -> None:
    os.environ.pop(server.token_env, None)
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = start_server("jupyter_server", tmp_path_factory.mktemp("jupyter_server"))
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def kernel_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = start_server("kernel_gateway", tmp_path_factory.mktemp("kernel_gateway"))
    yield server
    stop_server(server)
