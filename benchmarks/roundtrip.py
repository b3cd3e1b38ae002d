"""Round trip of a run, side by side, in one process on one machine.

Measured from the LSP `workspace/executeCommand` request to its result, for the `session`,
`local` and `http` executors (the http one against our API server on 127.0.0.1), next to the
bare baselines: `python -c` in a fresh process and a warm Jupyter kernel (jupyter_client +
ipykernel) executing the same code. Also: server start until the `initialize` answer.

    python benchmarks/roundtrip.py [--runs 50] [--json results.json]

Needs `pip install -e ".[bench]"` (jupyter_client, ipykernel). Prints medians, p95 and ratios.
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

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

WORKLOADS = {
    "1+1": "1+1\n",
    "print 1,000 lines": "for i in range(1000):\n    print(i)\n",
}
SERVER = [sys.executable, "-m", "codeexec_lsp"]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p95": p95, "n": len(ordered)}


async def timed(runs: int, once: Callable[[], Awaitable[Any]], warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        await once()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# --- the language server ------------------------------------------------------------------


async def start_client(settings: dict[str, Any], env: dict[str, str]) -> LanguageClient:
    client = LanguageClient("codeexec-bench", "1")
    await client.start_io(*SERVER, env=env)
    root = Path(tempfile.mkdtemp(prefix="codeexec-bench-"))
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(),
            root_uri=root.as_uri(),
            initialization_options=settings,
        )
    )
    client.initialized(lsp.InitializedParams())
    client.root = root  # type: ignore[attr-defined]
    return client


async def stop_client(client: LanguageClient) -> None:
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()  # type: ignore[no-untyped-call]


def write_workload(root: Path, name: str, code: str) -> str:
    path = root / name
    path.write_text(code)
    return path.as_uri()


async def lsp_runs(
    settings: dict[str, Any], env: dict[str, str], runs: int
) -> dict[str, list[float]]:
    client = await start_client(settings, env)
    results: dict[str, list[float]] = {}
    try:
        for name, code in WORKLOADS.items():
            uri = write_workload(client.root, f"{len(results)}.py", code)  # type: ignore[attr-defined]
            client.text_document_did_open(
                lsp.DidOpenTextDocumentParams(
                    text_document=lsp.TextDocumentItem(
                        uri=uri, language_id="python", version=1, text=code
                    )
                )
            )

            async def once(uri: str = uri) -> None:
                result = await client.workspace_execute_command_async(
                    lsp.ExecuteCommandParams(command="codeexec.run", arguments=[uri])
                )
                if result["status"] != "ok":
                    raise RuntimeError(f"benchmark run failed: {result}")

            results[name] = await timed(runs, once)
    finally:
        await stop_client(client)
    return results


async def initialize_times(env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        client = LanguageClient("codeexec-bench", "1")
        await client.start_io(*SERVER, env=env)
        await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
        samples.append((time.perf_counter() - started) * 1000)
        client.initialized(lsp.InitializedParams())
        await stop_client(client)
    return samples


# --- the session executor alone (no LSP framing) -------------------------------------------


async def session_executor_runs(runs: int) -> dict[str, list[float]]:
    from codeexec_lsp import snippet
    from codeexec_lsp.actions.run import build_request
    from codeexec_lsp.config import Settings
    from codeexec_lsp.execution.session import SessionExecutor

    executor = SessionExecutor()
    root = Path(tempfile.mkdtemp(prefix="codeexec-bench-"))
    results: dict[str, list[float]] = {}
    try:
        for name, code in WORKLOADS.items():
            path = str(root / "bench.py")
            request = build_request(snippet.whole_file(code, path), Settings(), root)

            async def once(request: Any = request) -> None:
                result = await executor.run(request)
                if result.status != "ok":
                    raise RuntimeError(f"benchmark run failed: {result}")

            results[name] = await timed(runs, once)
    finally:
        await executor.close()
    return results


# --- baselines ----------------------------------------------------------------------------


async def fresh_python(code: str, runs: int) -> list[float]:
    async def once() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=subprocess.DEVNULL
        )
        await process.wait()

    return await timed(runs, once)


def jupyter_runs(runs: int) -> dict[str, list[float]]:
    from jupyter_client.manager import start_new_kernel

    manager, kernel = start_new_kernel(kernel_name="python3")
    results: dict[str, list[float]] = {}
    try:
        for name, code in WORKLOADS.items():

            def once(code: str = code) -> None:
                kernel.execute_interactive(code, timeout=60, output_hook=lambda message: None)

            for _ in range(3):
                once()
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                once()
                samples.append((time.perf_counter() - started) * 1000)
            results[name] = samples
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    return results


# --- the API server for the http executor -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(token: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "CODEEXEC_API_TOKEN": token}
    process = subprocess.Popen(
        [*SERVER, "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the API server did not start")


# --- report -------------------------------------------------------------------------------


def table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| executor | workload | median ms | p95 ms |",
        "| --- | --- | ---: | ---: |",
    ]
    for backend, workloads in rows.items():
        for workload, stats in workloads.items():
            lines.append(f"| {backend} | {workload} | {stats['median']:.2f} | {stats['p95']:.2f} |")
    return "\n".join(lines)


async def main(runs: int, output: Path | None) -> int:
    env = {key: value for key, value in os.environ.items() if key != "CODEEXEC_API_TOKEN"}
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for executor in ("session", "local"):
        measured = await lsp_runs({"executor": executor}, env, runs)
        rows[f"{executor} (LSP round trip)"] = {k: summary(v) for k, v in measured.items()}
    rows["session executor alone (no LSP)"] = {
        k: summary(v) for k, v in (await session_executor_runs(runs)).items()
    }
    token = secrets.token_urlsafe(24)
    api, url = start_api(token)
    try:
        http_env = {**env, "CODEEXEC_BENCH_TOKEN": token}
        settings = {"executor": "http", "http": {"url": url, "tokenEnv": "CODEEXEC_BENCH_TOKEN"}}
        measured = await lsp_runs(settings, http_env, runs)
        rows["http (LSP → API on loopback)"] = {k: summary(v) for k, v in measured.items()}
    finally:
        api.terminate()
        api.wait(10)
    rows["python -c (fresh process)"] = {
        name: summary(await fresh_python(code, runs)) for name, code in WORKLOADS.items()
    }
    rows["python -c pass"] = {"pass": summary(await fresh_python("pass", runs))}
    rows["Jupyter kernel (warm execute)"] = {
        name: summary(samples) for name, samples in jupyter_runs(runs).items()
    }
    init = summary(await initialize_times(env, max(5, runs // 5)))

    print(table(rows))
    print(
        f"\nserver start → initialize answered: median {init['median']:.0f} ms, "
        f"p95 {init['p95']:.0f} ms"
    )
    session = rows["session (LSP round trip)"]["1+1"]["median"]
    jupyter = rows["Jupyter kernel (warm execute)"]["1+1"]["median"]
    local = rows["local (LSP round trip)"]["1+1"]["median"]
    bare = rows["python -c pass"]["pass"]["median"]
    session_alone = rows["session executor alone (no LSP)"]["1+1"]["median"]
    ratios = {
        "session via LSP / Jupyter execute (1+1), goal ≤ 0.20": session / jupyter,
        "session executor / Jupyter execute (1+1), goal ≤ 0.20": session_alone / jupyter,
        "local / python -c pass, goal ≤ 1.5": local / bare,
        "initialize ms, goal ≤ 300": init["median"],
    }
    print()
    for label, value in ratios.items():
        print(f"{label}: {value:.2f}")
    if output is not None:
        report = {"rows": rows, "initialize": init, "ratios": ratios}
        await asyncio.to_thread(output.write_text, json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.runs, arguments.json)))
