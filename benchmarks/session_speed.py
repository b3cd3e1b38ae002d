"""The session executor's fixed costs, side by side with their floors, in one run.

Four comparisons, each a ratio of medians (or percentiles) measured in this one process on
this one machine, so a loaded shared machine moves both sides alike:

1. the first run right after `initialized` (a fresh server per sample; the time from
   sending `initialized` to the run's result) vs `python -c pass` in a fresh process;
2. printing 100,000 lines through LSP (request to result, the whole output in the
   result) vs `python -c` printing them block-buffered into a pipe that is read to the end;
3. running a `# %%` cell in a 10,000-line document (1,000 cells) vs the same run in a
   1-line document;
4. `textDocument/codeAction` with an empty range, p50 and p99, in the 10,000-line document
   vs the 1-line document; also the handler alone, called in this process (no JSON-RPC).

The client is pytest-lsp's, announcing Neovim's capabilities (so the server pulls its
settings and creates work-done progress, as with a real editor).

    python benchmarks/session_speed.py [--runs 30] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Union

from lsprotocol import types as lsp
from pygls.protocol import default_converter
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import register_lsp_features

SERVER = [sys.executable, "-m", "codeexec_lsp"]
# "Buffered into a pipe" is Python's default; an inherited PYTHONUNBUFFERED would make the
# baseline write each line on its own.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
SETTINGS: dict[str, Any] = {"executor": "session", "maxOutputBytes": 2_000_000}
PRINT_LINES = 100_000
PRINT_CODE = f"for i in range({PRINT_LINES}):\n    print(i)\n"
BIG_LINES = 10_000
CELL_LINES = 10  # 1,000 cells
CELL_CODE = "x = 1\n"  # what the cell under the cursor and the 1-line document both run


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "p99": percentile(samples, 0.99),
        "n": len(samples),
    }


# --- the client -----------------------------------------------------------------------------


def _converter() -> Any:
    # lsprotocol 2025.0.0 decodes a CodeAction carrying a `command` as a bare Command.
    converter = default_converter()  # type: ignore[no-untyped-call]

    def command_or_action(obj: Any, _: Any) -> Any:
        kind = lsp.Command if isinstance(obj.get("command"), str) else lsp.CodeAction
        return converter.structure(obj, kind)

    converter.register_structure_hook(
        Union[lsp.Command, lsp.CodeAction],  # noqa: UP007
        command_or_action,
    )
    return converter


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=_converter)
    register_lsp_features(client)

    @client.feature(lsp.WORKSPACE_INLAY_HINT_REFRESH)  # type: ignore[untyped-decorator]
    def inlay_hint_refresh(params: None) -> None:
        return None

    client.set_configuration(SETTINGS, section="codeexec")
    return client


async def start_server(root: Path) -> LanguageClient:
    """A server answered `initialize` (not yet told `initialized`)."""
    client = make_client()
    await client.start_io(*SERVER, env=ENV)
    client.capabilities = client_capabilities("neovim")
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=client.capabilities,
            root_uri=root.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=SETTINGS,
        )
    )
    return client


async def stop_server(client: LanguageClient) -> None:
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()  # type: ignore[no-untyped-call]


def open_document(client: LanguageClient, path: Path, text: str) -> str:
    path.write_text(text)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(
                uri=path.as_uri(), language_id="python", version=1, text=text
            )
        )
    )
    return path.as_uri()


def empty_range(line: int) -> dict[str, Any]:
    point = {"line": line, "character": 0}
    return {"start": point, "end": point}


async def run(client: LanguageClient, uri: str, range_: dict[str, Any] | None = None) -> Any:
    arguments: list[Any] = [uri] if range_ is None else [uri, range_]
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.run", arguments=arguments)
    )
    if not isinstance(result, dict) or result["status"] != "ok":
        raise RuntimeError(f"benchmark run failed: {result}")
    return result


# --- side by side: samples of the two sides alternate ---------------------------------------


async def alternate(
    runs: int,
    left: Callable[[], Awaitable[Any]],
    right: Callable[[], Awaitable[Any]],
    warmup: int = 3,
) -> tuple[list[float], list[float]]:
    """Time `left` and `right` in turns, so a load that comes and goes on a shared machine
    weighs on both sides alike."""
    for _ in range(warmup):
        await left()
        await right()
    samples: tuple[list[float], list[float]] = ([], [])
    for index in range(runs):
        order = ((0, left), (1, right)) if index % 2 == 0 else ((1, right), (0, left))
        for side, once in order:
            started = time.perf_counter()
            await once()
            samples[side].append((time.perf_counter() - started) * 1000)
    return samples


def fresh_python(code: str, pipe: bool = False) -> Callable[[], Awaitable[None]]:
    """A fresh `python -c code`; with `pipe`, its stdout is a pipe read to the end."""

    async def once() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            stdout=subprocess.PIPE if pipe else subprocess.DEVNULL,
            env=ENV,
        )
        if pipe:
            assert process.stdout is not None
            while await process.stdout.read(1 << 16):
                pass
        await process.wait()

    return once


# --- 1. the first run after initialized -----------------------------------------------------


async def first_run() -> float:
    """A fresh server: the time from `initialized` to the result of its first run, which is
    all the client waits for (starting the server and `initialize` are not counted)."""
    root = Path(tempfile.mkdtemp(prefix="codeexec-first-"))
    client = await start_server(root)
    try:
        # As an editor does: `initialized` as soon as `initialize` is answered.
        started = time.perf_counter()
        client.initialized(lsp.InitializedParams())
        uri = open_document(client, root / "first.py", "1+1\n")
        await run(client, uri)
        return (time.perf_counter() - started) * 1000
    finally:
        await stop_server(client)


async def first_runs(runs: int) -> tuple[list[float], list[float]]:
    python_pass = fresh_python("pass")
    await python_pass()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        samples[0].append(await first_run())
        started = time.perf_counter()
        await python_pass()
        samples[1].append((time.perf_counter() - started) * 1000)
    return samples


# --- 2-4. one warm server: output, big documents, code actions -------------------------------


def big_document() -> str:
    lines = []
    for cell in range(BIG_LINES // CELL_LINES):
        lines.append(f"# %% cell {cell}")
        lines.append(CELL_CODE.rstrip("\n"))
        lines.extend(f"y{cell}_{k} = {k}  # filler" for k in range(CELL_LINES - 2))
    return "\n".join(lines) + "\n"


async def warm_server_measures(runs: int, actions: int) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(prefix="codeexec-speed-"))
    client = await start_server(root)
    client.initialized(lsp.InitializedParams())
    results: dict[str, list[float]] = {}
    try:
        printing = open_document(client, root / "printing.py", PRINT_CODE)
        small = open_document(client, root / "small.py", CELL_CODE)
        big_text = big_document()
        assert len(big_text.splitlines()) == BIG_LINES
        big = open_document(client, root / "big.py", big_text)
        middle = BIG_LINES // 2 + 1  # the `x = 1` line of a cell in the middle

        async def print_lines() -> None:
            result = await run(client, printing)
            if result["stdout"].count("\n") != PRINT_LINES or result["truncated"]:
                raise RuntimeError("the printed lines did not all arrive")

        pipe = fresh_python(PRINT_CODE.replace("\n    ", " "), pipe=True)
        lsp_print, python_print = await alternate(max(5, runs // 3), print_lines, pipe)
        results["print 100,000 lines (LSP)"] = lsp_print
        results[f"python -c printing {PRINT_LINES:,} lines into a pipe"] = python_print

        big_run, small_run = await alternate(
            runs, lambda: run(client, big, empty_range(middle)), lambda: run(client, small)
        )
        results["run cell, 10,000-line document"] = big_run
        results["run, 1-line document"] = small_run

        def code_action(uri: str, line: int) -> Callable[[], Awaitable[Any]]:
            params = lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(
                    start=lsp.Position(line=line, character=0),
                    end=lsp.Position(line=line, character=0),
                ),
                context=lsp.CodeActionContext(diagnostics=[]),
            )
            return lambda: client.text_document_code_action_async(params)

        big_action, small_action = await alternate(
            actions, code_action(big, middle), code_action(small, 0), 20
        )
        results["code action, 10,000-line document"] = big_action
        results["code action, 1-line document"] = small_action
    finally:
        await stop_server(client)
    return results


def code_action_handler_alone(calls: int) -> dict[str, list[float]]:
    """The server's codeAction handler called in this process, without JSON-RPC: what the
    document's size itself costs (the LSP round trip above adds pygls and the pipes)."""
    from pygls.workspace import Workspace

    from codeexec_lsp import documents
    from codeexec_lsp.server import code_action, server

    workspace = Workspace("file:///bench", lsp.TextDocumentSyncKind.Incremental)
    documents.cache_lines(workspace)
    server.protocol._workspace = workspace  # what `initialize` sets up
    samples: dict[str, list[float]] = {}
    for name, text, line in (
        ("code action handler alone, 10,000-line document", big_document(), BIG_LINES // 2 + 1),
        ("code action handler alone, 1-line document", CELL_CODE, 0),
    ):
        uri = f"file:///bench/{len(samples)}.py"
        workspace.put_text_document(
            lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
        params = lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=0), end=lsp.Position(line=line, character=0)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            code_action(server, params)
            times.append((time.perf_counter() - started) * 1000)
        samples[name] = times
    return samples


async def main(runs: int, output: Path | None) -> int:
    first, python_pass = await first_runs(max(5, runs // 3))
    measured = await warm_server_measures(runs, max(200, runs * 10))
    measured.update(code_action_handler_alone(max(2000, runs * 100)))
    rows = {
        "first run after initialized (LSP)": summary(first),
        "python -c pass": summary(python_pass),
        **{name: summary(samples) for name, samples in measured.items()},
    }
    ratios = {
        "first run after initialized / python -c pass (goal ≤ 1.0)": (
            rows["first run after initialized (LSP)"]["median"] / rows["python -c pass"]["median"]
        ),
        "print 100,000 lines via LSP / python -c into a pipe (goal ≤ 1.0)": (
            rows["print 100,000 lines (LSP)"]["median"]
            / rows[f"python -c printing {PRINT_LINES:,} lines into a pipe"]["median"]
        ),
        "run cell, 10,000 lines / 1 line (goal ≤ 2.0)": (
            rows["run cell, 10,000-line document"]["median"]
            / rows["run, 1-line document"]["median"]
        ),
        "code action p50, 10,000 lines / 1 line": (
            rows["code action, 10,000-line document"]["median"]
            / rows["code action, 1-line document"]["median"]
        ),
        "code action p99 ms, 10,000 lines (goal ≤ 1.0 ms)": rows[
            "code action, 10,000-line document"
        ]["p99"],
        "code action p99 ms, 1 line": rows["code action, 1-line document"]["p99"],
        "code action handler alone p99 ms, 10,000 lines": rows[
            "code action handler alone, 10,000-line document"
        ]["p99"],
    }
    print("| what | median ms | p99 ms | n |")
    print("| --- | ---: | ---: | ---: |")
    for name, stats in rows.items():
        print(f"| {name} | {stats['median']:.2f} | {stats['p99']:.2f} | {stats['n']:.0f} |")
    print()
    for label, value in ratios.items():
        print(f"{label}: {value:.2f}")
    if output is not None:
        report = {"rows": rows, "ratios": ratios}
        await asyncio.to_thread(output.write_text, json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.runs, arguments.json)))
