"""How fast the limits act, side by side in one run: each stop measured against the limit
that triggered it (a ratio near 1 means "stopped right at the limit") or against an
ordinary run on the same executor.

    python benchmarks/limits.py [--repeats 5]

It also measures what building the box costs per run (issue 10): a fresh child started
directly, confined from inside the interpreter as before (after `site`), and started
through the launcher (`python -I -S` confines, then execs the interpreter) in each profile;
and a session worker's start, standard and strict.

The tests check *that* each limit acts (status, message, nothing left behind); the timings
live here, because wall-clock thresholds in tests are flaky on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Executor, Limits, RunRequest
from codeexec_lsp.execution.launcher import Box
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.sandbox import ProcessGuard, ProcessPlan
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.llm.base import ChatMessage, LlmTimeout
from codeexec_lsp.llm.factory import make_chat_model

TIMEOUT_S = 1.0
CANCEL_AFTER_S = 0.3
LLM_TIMEOUT_S = 1.0


async def seconds(action: Callable[[], Awaitable[Any]], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def runner(executor: Executor, folder: Path) -> Callable[..., Awaitable[Any]]:
    async def run(code: str, cancel: asyncio.Event | None = None, **settings: Any) -> Any:
        path = str(folder / "limits.py")
        request = build_request(snippet.whole_file(code, path), Settings(**settings), folder)
        result = await executor.run(request, cancel)
        return result

    return run


async def executor_rows(name: str, executor: Executor, repeats: int) -> list[tuple[str, ...]]:
    run = runner(executor, Path(tempfile.mkdtemp(prefix="codeexec-limits-")))
    ordinary = await seconds(lambda: run("1+1\n"), repeats)

    async def cancelled() -> None:
        cancel = asyncio.Event()
        asyncio.get_running_loop().call_later(CANCEL_AFTER_S, cancel.set)
        await run("import time\ntime.sleep(60)\n", cancel)

    timed_out = await seconds(lambda: run("while True:\n    pass\n", timeout=TIMEOUT_S), repeats)
    stopped = await seconds(cancelled, repeats)
    flood = await seconds(lambda: run("import sys\nsys.stdout.write('x' * 100_000_000)\n"), repeats)
    bomb = await seconds(lambda: run("import os\nwhile True:\n    os.fork()\n"), repeats)
    return [
        (name, "ordinary run (1+1)", f"{ordinary * 1000:.1f} ms", "1.00 (baseline)"),
        (
            name,
            f"busy loop, timeout {TIMEOUT_S:g} s",
            f"{timed_out:.2f} s",
            f"{timed_out / TIMEOUT_S:.2f} × timeout",
        ),
        (
            name,
            f"cancel after {CANCEL_AFTER_S:g} s",
            f"{stopped:.2f} s",
            f"{(stopped - CANCEL_AFTER_S) * 1000:.0f} ms after the cancel",
        ),
        (name, "100 MB printed", f"{flood:.2f} s", f"{flood / ordinary:.1f} × ordinary"),
        (name, "fork bomb", f"{bomb:.2f} s", f"{bomb / ordinary:.1f} × ordinary"),
    ]


def silent_server() -> tuple[str, Callable[[], None]]:
    """Accepts connections and never answers: a model that never replies."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()

    def close() -> None:
        stop.set()
        for connection in held:
            connection.close()
        listener.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1", close


async def llm_row(repeats: int) -> tuple[str, ...]:
    url, close = silent_server()
    model = make_chat_model("openai", url, "never", None, LLM_TIMEOUT_S)

    async def ask() -> None:
        try:
            await model.complete([ChatMessage("user", "hi")])
        except LlmTimeout:
            return
        raise RuntimeError("the silent model answered")

    try:
        waited = await seconds(ask, repeats)
    finally:
        close()
    return (
        "llm",
        f"model never answers, llm.timeout {LLM_TIMEOUT_S:g} s",
        f"{waited:.2f} s",
        f"{waited / LLM_TIMEOUT_S:.2f} × llm.timeout",
    )


RUNNER = Path(__file__).resolve().parents[1] / "codeexec_lsp" / "execution" / "runner.py"
REQUEST = json.dumps(
    {"code": "1+1\n", "path": "bench.py", "document": "1+1\n", "first_line": 1, "column": 0}
).encode()


def start_and_run(argv_for: Callable[[int], list[str]], folder: Path) -> None:
    """One fresh child running `1+1` the way runner.py is driven, until it exits."""
    read, write = os.pipe()
    try:
        with subprocess.Popen(
            argv_for(write),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write,),
            cwd=folder,
            start_new_session=True,
        ) as child:
            os.close(write)
            write = -1
            child.communicate(REQUEST, timeout=30)
            with os.fdopen(read, "rb") as result:
                read = -1
                assert b'"ok"' in result.read(), "the benchmark run failed"
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)


def launcher_rows(repeats: int) -> list[tuple[str, ...]]:
    """Start-up cost of the box alone (no cgroups, which both ways share): ratios to a
    child started with no box at all."""
    folder = Path(tempfile.mkdtemp(prefix="codeexec-launch-"))
    plain = ProcessPlan("group")  # no cgroup: what is measured is the box itself
    runner = [sys.executable, "-u", str(RUNNER)]

    def direct(fd: int) -> list[str]:
        return [*runner, "--result-fd", str(fd)]

    def inside(fd: int) -> list[str]:
        # Before issue 10: the interpreter confined itself (after `site` had run), with
        # the old default: network off, writes limited to the workspace and temp dir.
        box = Box.of(str(folder), os.environ, Limits(), "standard", network=False)
        policy = box.spec.policy(ProcessGuard(256, plain))
        policy.update(writable=[str(folder), tempfile.gettempdir(), "/dev/shm"])
        return [*direct(fd), "--sandbox", json.dumps(policy)]

    def launched(profile: str) -> Callable[[int], list[str]]:
        def argv(fd: int) -> list[str]:
            network = profile == "standard"
            box = Box.of(str(folder), os.environ, Limits(), profile, network)  # type: ignore[arg-type]
            return box.command(ProcessGuard(256, plain), fd, "line", direct(fd))

        return argv

    ways = [
        ("no box", direct),
        ("confined inside the interpreter (before)", inside),
        ("launcher, standard", launched("standard")),
        ("launcher, strict", launched("strict")),
    ]
    timings = []
    for label, argv_for in ways:
        start_and_run(argv_for, folder)  # warm the page cache
        samples = []
        cpu_before = children_cpu()
        for _ in range(repeats):
            started = time.perf_counter()
            start_and_run(argv_for, folder)
            samples.append(time.perf_counter() - started)
        cpu = (children_cpu() - cpu_before) / repeats
        timings.append((label, statistics.median(samples), cpu))
    base, base_cpu = timings[0][1], timings[0][2]
    # CPU time (of the children, user + system) is what the box costs; wall time on a
    # busy machine mostly measures the other processes.
    return [
        (
            "fresh child",
            f"start + 1+1: {label}",
            f"{took * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU",
            f"{took / base:.2f} × no box (wall), {cpu / base_cpu:.2f} × (CPU)",
        )
        for label, took, cpu in timings
    ]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def session_start(request: RunRequest) -> None:
    session = SessionExecutor()
    try:
        started = await session.warm(
            request.python,
            request.cwd,
            request.env,
            request.limits,
            request.sys_path,
            request.network,
            request.sandbox,
        )
        assert started, "the session worker did not start"
    finally:
        await session.close()


async def profile_rows(repeats: int) -> list[tuple[str, ...]]:
    """Through the executors, cgroups included: a local run and a session worker's start."""
    folder = Path(tempfile.mkdtemp(prefix="codeexec-profiles-"))
    path = str(folder / "bench.py")
    rows: list[tuple[str, ...]] = []
    for profile in ("standard", "strict"):
        settings = Settings(sandbox=profile)
        request = build_request(snippet.whole_file("1+1\n", path), settings, folder)
        local = LocalExecutor()
        run_took = await seconds(functools.partial(local.run, request), repeats)
        await local.close()
        start_took = await seconds(functools.partial(session_start, request), repeats)
        rows.append(("local", f"run of 1+1, {profile}", f"{run_took * 1000:.1f} ms", ""))
        rows.append(("session", f"worker start, {profile}", f"{start_took * 1000:.1f} ms", ""))
    return rows


async def main(repeats: int) -> int:
    rows = await executor_rows("local", LocalExecutor(), repeats)
    session = SessionExecutor()
    try:
        rows += await executor_rows("session", session, repeats)
    finally:
        await session.close()
    rows.append(await llm_row(repeats))
    rows += await asyncio.to_thread(launcher_rows, max(repeats, 10))
    rows += await profile_rows(repeats)
    print("| executor | what | median | ratio |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args().repeats)))
