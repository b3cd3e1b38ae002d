"""How close codeexec-lsp gets to pygls' own floor, side by side in one run.

(a) Round trip of `codeexec.run` on `1+1` through the session executor (request → result),
    with pytest-lsp's client announcing Neovim's and VS Code's capabilities (both support
    work-done progress), next to a minimal pygls 2 server whose command returns a constant
    (pygls' thread stdin reader, and our event-loop reader), and a warm Jupyter kernel's
    `execute_interactive` of the same code.
(b) Process start → `initialize` answered, codeexec-lsp vs the minimal pygls server, both
    started as `python -m <module>` over stdio.

Medians after warm-ups, one run of each contestant per round, the order rotated every
round; ratios are what to compare (the machine is shared and noisy).

    python benchmarks/lsp_speed.py [--runs 60] [--start-runs 60] [--json out.json]
        [--tree NAME=PATH ...]

`--tree before=/tmp/checkout` adds codeexec-lsp as checked out at PATH (e.g. a
`git worktree` of an older commit) as one more contestant in (a) and (b): before/after
numbers for a change, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    BENCHMARKS,
    Once,
    QuietClient,
    python_module,
    rotated,
    start_server,
    stop_server,
    summary,
)
from lsprotocol import types as lsp

REPO = BENCHMARKS.parent
CODE = "1+1\n"
EDITORS = {"Neovim": "neovim", "VS Code": "visual-studio-code"}


def codeexec_command(tree: Path) -> tuple[list[str], dict[str, str]]:
    return python_module("codeexec_lsp", [tree])


def minimal_command(loop_reader: bool) -> tuple[list[str], dict[str, str]]:
    argv, env = python_module("_minimal_pygls", [BENCHMARKS, REPO])
    return [*argv, "--loop-reader"] if loop_reader else argv, env


async def codeexec_contestant(
    tree: Path, editor: str, root: Path, clients: list[QuietClient]
) -> Once:
    argv, extra = codeexec_command(tree)
    client, _ = await start_server(
        argv, editor, root, env={**os.environ, **extra}, options={"executor": "session"}
    )
    clients.append(client)
    client.initialized(lsp.InitializedParams())
    path = root / f"bench_{len(clients)}.py"
    path.write_text(CODE)
    uri = path.as_uri()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=CODE)
        )
    )

    async def once() -> None:
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="codeexec.run", arguments=[uri])
        )
        if result["status"] != "ok" or result["value"] != "2":
            raise RuntimeError(f"benchmark run failed: {result}")

    return once


async def minimal_contestant(loop_reader: bool, root: Path, clients: list[QuietClient]) -> Once:
    argv, extra = minimal_command(loop_reader)
    client, _ = await start_server(argv, "neovim", root, env={**os.environ, **extra})
    clients.append(client)
    client.initialized(lsp.InitializedParams())

    async def once() -> None:
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="bench.constant", arguments=[])
        )
        if result["value"] != "2":
            raise RuntimeError(f"minimal server answered {result}")

    return once


async def jupyter_contestant(stoppers: list[Any]) -> Once:
    from jupyter_client.manager import start_new_async_kernel

    manager, kernel = await start_new_async_kernel(kernel_name="python3")

    async def stop() -> None:
        kernel.stop_channels()
        await manager.shutdown_kernel(now=True)

    stoppers.append(stop)

    async def once() -> None:
        reply = await kernel.execute_interactive(CODE, timeout=60, output_hook=lambda message: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel answered {reply['content']}")

    return once


async def round_trips(
    runs: int, trees: dict[str, Path], jupyter: bool
) -> dict[str, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="codeexec-lsp-speed-"))
    clients: list[QuietClient] = []
    stoppers: list[Any] = []
    contestants: dict[str, Once] = {}
    try:
        for editor_name, editor in EDITORS.items():
            contestants[f"codeexec run 1+1 ({editor_name})"] = await codeexec_contestant(
                REPO, editor, root, clients
            )
        for name, tree in trees.items():
            contestants[f"{name}: codeexec run 1+1 (Neovim)"] = await codeexec_contestant(
                tree, "neovim", root, clients
            )
        contestants["minimal pygls constant"] = await minimal_contestant(False, root, clients)
        contestants["minimal pygls constant, loop reader"] = await minimal_contestant(
            True, root, clients
        )
        if jupyter:
            contestants["Jupyter execute_interactive 1+1"] = await jupyter_contestant(stoppers)
        samples = await rotated(runs, contestants)
    finally:
        for client in clients:
            await stop_server(client)
        for stop in stoppers:
            await stop()
    return {name: summary(values) for name, values in samples.items()}


async def start_ups(runs: int, trees: dict[str, Path]) -> dict[str, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="codeexec-lsp-speed-"))
    commands = {"codeexec-lsp": codeexec_command(REPO)}
    commands.update(
        {f"{name}: codeexec-lsp": codeexec_command(tree) for name, tree in trees.items()}
    )
    commands["minimal pygls"] = minimal_command(False)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for round_ in range(runs + 2):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            argv, extra = commands[name]
            client, elapsed = await start_server(argv, "neovim", root, env={**os.environ, **extra})
            await stop_server(client)
            if round_ >= 2:  # the first rounds fill the page cache
                samples[name].append(elapsed)
    return {name: summary(values) for name, values in samples.items()}


def ratios(
    trips: dict[str, dict[str, float]], starts: dict[str, dict[str, float]]
) -> dict[str, float]:
    def median(rows: dict[str, dict[str, float]], name: str) -> float:
        return rows[name]["median"]

    found: dict[str, float] = {}
    if trips:
        found.update(trip_ratios(trips))
    minimal_start = median(starts, "minimal pygls") if starts else 0.0
    for name in starts:
        if "codeexec" in name:
            found[f"start → initialize, {name} / minimal pygls (goal ≤ 1.15)"] = (
                median(starts, name) / minimal_start
            )
    return found


def trip_ratios(trips: dict[str, dict[str, float]]) -> dict[str, float]:
    def median(rows: dict[str, dict[str, float]], name: str) -> float:
        return rows[name]["median"]

    floor = median(trips, "minimal pygls constant")
    loop_floor = median(trips, "minimal pygls constant, loop reader")
    found: dict[str, float] = {}
    for name in trips:
        if "codeexec run" not in name:
            continue
        ours = median(trips, name)
        if "Jupyter execute_interactive 1+1" in trips:
            jupyter = median(trips, "Jupyter execute_interactive 1+1")
            found[f"{name} / Jupyter (goal ≤ 0.15, aim ≤ 0.10)"] = ours / jupyter
        found[f"{name} / minimal pygls"] = ours / floor
        found[f"{name} / minimal pygls, loop reader"] = ours / loop_floor
    if "Jupyter execute_interactive 1+1" in trips:
        jupyter = median(trips, "Jupyter execute_interactive 1+1")
        found["minimal pygls / Jupyter"] = floor / jupyter
        found["minimal pygls, loop reader / Jupyter"] = loop_floor / jupyter
    return found


def table(title: str, rows: dict[str, dict[str, float]]) -> str:
    lines = [f"| {title} | median ms | p95 ms | n |", "| --- | ---: | ---: | ---: |"]
    lines += [
        f"| {name} | {row['median']:.2f} | {row['p95']:.2f} | {int(row['n'])} |"
        for name, row in rows.items()
    ]
    return "\n".join(lines)


def parse_trees(specs: list[str]) -> dict[str, Path]:
    trees = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path or not (Path(path) / "codeexec_lsp").is_dir():
            raise SystemExit(f"--tree wants NAME=PATH of a codeexec-lsp checkout, got {spec!r}")
        trees[name] = Path(path).resolve()
    return trees


async def main(arguments: argparse.Namespace, trees: dict[str, Path]) -> int:
    trips = (
        await round_trips(arguments.runs, trees, not arguments.no_jupyter) if arguments.runs else {}
    )
    starts = await start_ups(arguments.start_runs, trees) if arguments.start_runs else {}
    found = ratios(trips, starts)
    if trips:
        print(table("round trip", trips))
    if starts:
        print()
        print(table("process start → initialize answered", starts))
    print()
    width = max(len(name) for name in found)
    for name, value in found.items():
        print(f"{name:<{width}}  {value:6.2f}")
    if arguments.json:
        report = {"round_trip": trips, "start_up": starts, "ratios": found}
        arguments.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--start-runs", type=int, default=60)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--no-jupyter", action="store_true")
    parsed = parser.parse_args()
    sys.exit(asyncio.run(main(parsed, parse_trees(parsed.tree))))
