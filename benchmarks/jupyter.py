"""The jupyter executor, side by side with its baselines, in one process on one machine.

- warm `1+1` through our executor vs raw jupyter_client `execute_interactive` on the
  same local kernel (goal: ≤ 1.3×);
- warm `1+1` through a Jupyter Server websocket (started here on 127.0.0.1) vs our local
  ZMQ kernel (goal: ≤ 2×), with and without TCP_QUICKACK on our socket;
- kernel start to the first result (local, Jupyter Server);
- interrupt latency: cancel of a busy loop until the result is back;
- state-lost detection: `os._exit` in the kernel until the result says so.

    python benchmarks/jupyter.py [--runs 30] [--json results.json]

Needs jupyter_client, ipykernel, websockets, jupyter_server (`pip install -e ".[test]"`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from jupyter_client.asynchronous.client import AsyncKernelClient

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.jupyter import JupyterExecutor
from codeexec_lsp.execution.jupyter import remote as remote_module
from codeexec_lsp.execution.jupyter.local import LaunchedKernel

TOKEN_ENV = "CODEEXEC_BENCH_JUPYTER_TOKEN"


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def request(code: str, folder: Path, **settings: object) -> RunRequest:
    path = folder / "bench.py"
    path.write_text(code)
    return build_request(snippet.whole_file(code, str(path)), Settings(**settings), folder)  # type: ignore[arg-type]


async def timed(runs: int, once: Callable[[], Awaitable[Any]], warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await once()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def interleaved(
    runs: int, first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]]
) -> tuple[list[float], list[float]]:
    """Alternate the two, so load on a shared machine hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(5):
        await first()
        await second()
    for _ in range(runs):
        for once, samples in ((first, a), (second, b)):
            started = time.perf_counter()
            await once()
            samples.append((time.perf_counter() - started) * 1000)
    return a, b


def start_jupyter_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    token = secrets.token_hex(16)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [
        str(Path(sys.executable).parent / "jupyter-server"),
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    process = subprocess.Popen(
        argv,
        env={**os.environ, "JUPYTER_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            headers = {"Authorization": f"token {token}"}
            if httpx.get(url + "/api/kernelspecs", headers=headers).status_code == 200:
                os.environ[TOKEN_ENV] = token
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("Jupyter Server did not start")


async def raw_client(executor: JupyterExecutor) -> AsyncKernelClient:
    (connection,) = executor.connections()
    assert isinstance(connection, LaunchedKernel) and connection.client is not None
    client = AsyncKernelClient()
    client.load_connection_info(connection.client.get_connection_info())
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return client


async def cancel_after(executor: JupyterExecutor, folder: Path, delay: float) -> float:
    """ms from cancel to the result of a busy loop."""
    cancel = asyncio.Event()
    task = asyncio.ensure_future(executor.run(request("while True:\n    pass\n", folder), cancel))
    await asyncio.sleep(delay)
    started = time.perf_counter()
    cancel.set()
    result = await task
    assert result.status == "cancelled", result.message
    return (time.perf_counter() - started) * 1000


async def death(executor: JupyterExecutor, folder: Path) -> tuple[float, float]:
    """ms until a dying kernel's run is reported lost, then until the next run is back."""
    started = time.perf_counter()
    result = await executor.run(request("import os\nos._exit(1)\n", folder))
    assert result.extra["jupyter"]["state_lost"], result.message
    reported = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    after = await executor.run(request("1+1\n", folder))
    assert after.ok, after.message
    return reported, (time.perf_counter() - started) * 1000


async def main(runs: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="codeexec-bench-"))
    one = request("1+1\n", folder)
    results: dict[str, Any] = {}

    # --- local kernel -------------------------------------------------------------------
    started = time.perf_counter()
    local = JupyterExecutor()
    first = await local.run(one)
    assert first.ok, first.message
    results["local start → first 1+1 (ms)"] = (time.perf_counter() - started) * 1000
    client = await raw_client(local)

    async def ours() -> None:
        result = await local.run(one)
        assert result.value == "2", result

    async def raw() -> None:
        await client.execute_interactive("1+1", output_hook=lambda message: None, timeout=30)

    ours_ms, raw_ms = await interleaved(runs, ours, raw)
    results["warm 1+1, our executor, local (ms)"] = median(ours_ms)
    results["warm 1+1, raw execute_interactive, same kernel (ms)"] = median(raw_ms)
    results["ratio ours / raw (goal ≤ 1.3)"] = median(ours_ms) / median(raw_ms)
    client.stop_channels()
    results["interrupt: cancel → result, local (ms)"] = median(
        [await cancel_after(local, folder, 0.3) for _ in range(5)]
    )

    # --- Jupyter Server -----------------------------------------------------------------
    server, url = start_jupyter_server(folder)
    try:
        started = time.perf_counter()
        remote = JupyterExecutor(url=url, token_env=TOKEN_ENV)
        first = await remote.run(one)
        assert first.ok, first.message
        results["Jupyter Server start kernel → first 1+1 (ms)"] = (
            time.perf_counter() - started
        ) * 1000

        async def over_websocket() -> None:
            result = await remote.run(one)
            assert result.value == "2", result

        ws_ms, local_ms = await interleaved(runs, over_websocket, ours)
        results["warm 1+1, Jupyter Server websocket, TCP_QUICKACK (ms)"] = median(ws_ms)
        results["warm 1+1, local ZMQ (ms)"] = median(local_ms)
        results["ratio websocket / local (goal ≤ 2)"] = median(ws_ms) / median(local_ms)
        quickack, remote_module._QUICKACK = remote_module._QUICKACK, None
        try:
            no_ack = await timed(runs, over_websocket)
        finally:
            remote_module._QUICKACK = quickack
        results["warm 1+1, Jupyter Server websocket, no QUICKACK (ms)"] = median(no_ack)
        results["interrupt: cancel → result, Jupyter Server (ms)"] = median(
            [await cancel_after(remote, folder, 0.3) for _ in range(5)]
        )
        lost, back = await death(remote, folder)
        results["state lost: os._exit → reported, Jupyter Server (ms)"] = lost
        results["after a death: next 1+1 (restart + helper), Jupyter Server (ms)"] = back
        await remote.close()
    finally:
        server.terminate()
        server.wait(15)

    lost, back = await death(local, folder)
    results["state lost: os._exit → reported, local (ms)"] = lost
    results["after a death: next 1+1 (new kernel + helper), local (ms)"] = back
    await local.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    measured = asyncio.run(main(args.runs))
    width = max(len(name) for name in measured)
    for name, value in measured.items():
        print(f"{name:<{width}}  {value:9.2f}")
    if args.json:
        args.json.write_text(json.dumps(measured, indent=2))
