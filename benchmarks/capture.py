"""What rich-output capture (execution/display.py) costs, side by side in one run.

1. A run that plots nothing: the same statement executed bare and wrapped the way the runner
   wraps it (begin_run / end_run), in a child interpreter that loaded display.py by path and
   installed it, as the runner does. Goal: the difference stays under 0.05 ms.
2. A run that plots one figure (`plt.plot([1, 2, 3])`): ours (the figure left open is drawn
   to PNG at its dpi, base64-encoded and closed) next to Jupyter's inline backend on a warm
   ipykernel (same code; `%matplotlib inline`), each also without a plot, so the cost of
   showing the figure reads as plot minus no-plot in both.

    python benchmarks/capture.py [--runs 30] [--json results.json]

Needs matplotlib, jupyter_client and ipykernel (`pip install -e ".[bench]"` and matplotlib).
"""

from __future__ import annotations

import argparse
import json
import py_compile
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

DISPLAY_FILE = Path(__file__).resolve().parents[1] / "codeexec_lsp" / "execution" / "display.py"

# Runs in a fresh child interpreter; prints one JSON object of per-run milliseconds.
CHILD = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    # What runner.py has imported by then, so only display.py's own cost is timed.
    import ast, builtins, contextlib, io, linecache, os, signal, traceback, types, typing
    spec = importlib.util.spec_from_file_location("_codeexec_display", sys.argv[1])
    display = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = display
    started = time.perf_counter()
    spec.loader.exec_module(display)
    display.install()
    install_ms = (time.perf_counter() - started) * 1000
    runs = int(sys.argv[2])
    namespace = {"__name__": "__main__"}

    def per_run(code, wrapped, repeat, evaluate=False):
        compiled = compile(code, "<run>", "eval" if evaluate else "exec")
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            for _ in range(repeat):
                if wrapped:
                    display.begin_run()
                value = eval(compiled, namespace) if evaluate else exec(compiled, namespace)
                if wrapped:
                    outputs = display.end_run(value)
            samples.append((time.perf_counter() - started) * 1000 / repeat)
        return samples

    quiet = {}
    for name, code, evaluate in (("x = 1", "x = 1", False), ("1 + 1", "1 + 1", True)):
        quiet[name] = {
            "bare": per_run(code, False, 2000, evaluate),
            "captured": per_run(code, True, 2000, evaluate),
        }
    assert "matplotlib" not in sys.modules
    exec("import matplotlib.pyplot as plt", namespace)
    namespace["plt"].plot([0])
    display.end_run()  # warm: first draw loads fonts
    plot = {
        "no plot": per_run("x = [1, 2, 3]", True, 5),
        # The same figure drawn but not captured, as a run with capture off would leave it.
        "plot, closed without capture": per_run("plt.plot([1, 2, 3]); plt.close('all')", False, 5),
        "plot, captured": per_run("plt.plot([1, 2, 3])", True, 5),
    }
    display.begin_run()
    exec("plt.plot([1, 2, 3])", namespace)
    (figure,) = display.end_run()
    print(json.dumps({
        "install_ms": install_ms,
        "quiet": quiet,
        "plot": plot,
        "png_chars": len(figure["data"]["image/png"]),
    }))
    """
)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def ours(runs: int) -> dict[str, Any]:
    # As an installed package has it (pip compiles on install): loading from bytecode.
    py_compile.compile(str(DISPLAY_FILE), doraise=True)
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(DISPLAY_FILE), str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


def session(runs: int) -> dict[str, Any]:
    """The session executor, end to end (request to the worker, result JSON back, PNG
    included): the like-for-like comparison with a kernel round trip."""
    import asyncio
    import tempfile

    from codeexec_lsp import snippet
    from codeexec_lsp.actions.run import build_request
    from codeexec_lsp.config import Settings
    from codeexec_lsp.execution.session import SessionExecutor

    folder = Path(tempfile.mkdtemp(prefix="codeexec-capture-"))
    path = str(folder / "plot.py")

    async def measure() -> dict[str, Any]:
        executor = SessionExecutor()
        settings = Settings(timeout=60.0)

        async def run(code: str) -> Any:
            request = build_request(snippet.whole_file(code, path), settings, folder)
            return await executor.run(request)

        try:
            await run("import matplotlib.pyplot as plt\nplt.plot([0])")  # fonts, first draw

            async def timed(code: str) -> tuple[list[float], int]:
                samples, pngs = [], 0
                for _ in range(runs):
                    started = time.perf_counter()
                    result = await run(code)
                    samples.append((time.perf_counter() - started) * 1000)
                    pngs += sum("image/png" in output["data"] for output in result.outputs)
                return samples, pngs

            no_plot, _ = await timed("x = [1, 2, 3]")
            plot, shown = await timed("plt.plot([1, 2, 3])")
            assert shown == runs, "the session did not show every figure"
            return {"no plot": no_plot, "plot": plot}
        finally:
            await executor.close()

    return asyncio.run(measure())


def jupyter(runs: int) -> dict[str, Any]:
    """A warm ipykernel with the inline backend: round trips with and without a plot."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        pngs: list[int] = []

        def collect(message: dict[str, Any]) -> None:
            if message["msg_type"] == "display_data":
                pngs.append(len(message["content"]["data"].get("image/png", "")))

        client.execute_interactive(
            "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0])",
            output_hook=lambda message: None,
            timeout=60,
        )

        def timed(code: str) -> list[float]:
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                client.execute_interactive(code, output_hook=collect, timeout=60)
                samples.append((time.perf_counter() - started) * 1000)
            return samples

        no_plot = timed("x = [1, 2, 3]")
        before = len(pngs)
        plot = timed("plt.plot([1, 2, 3])")
        assert len(pngs) - before == runs, "the inline backend did not show every figure"
        return {"no plot": no_plot, "plot": plot, "png_chars": pngs[-1]}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    mine = ours(args.runs)
    whole = session(args.runs)
    theirs = jupyter(args.runs)

    print(
        f"display.py load (from bytecode) + install, once per process: {mine['install_ms']:.3f} ms"
    )
    print("\nA run that plots nothing (per run, median of batches of 2,000):")
    print(f"{'statement':<12}{'bare µs':>10}{'captured µs':>14}{'added µs':>11}")
    for name, times in mine["quiet"].items():
        bare, captured = median(times["bare"]) * 1000, median(times["captured"]) * 1000
        print(f"{name:<12}{bare:>10.2f}{captured:>14.2f}{captured - bare:>11.2f}")

    plot = mine["plot"]
    ours_no_plot, ours_plot = median(plot["no plot"]), median(plot["plot, captured"])
    drawn = median(plot["plot, closed without capture"])
    their_no_plot, their_plot = median(theirs["no plot"]), median(theirs["plot"])
    print("\nA run that plots one figure (median ms per run):")
    print(f"{'':<34}{'no plot':>9}{'plot':>9}{'showing it':>12}{'PNG chars':>11}")
    print(
        f"{'ours (in the child, no IPC)':<34}{ours_no_plot:>9.2f}{ours_plot:>9.2f}"
        f"{ours_plot - ours_no_plot:>12.2f}{mine['png_chars']:>11,}"
    )
    session_no_plot, session_plot = median(whole["no plot"]), median(whole["plot"])
    print(
        f"{'ours (session executor round trip)':<34}{session_no_plot:>9.2f}{session_plot:>9.2f}"
        f"{session_plot - session_no_plot:>12.2f}{mine['png_chars']:>11,}"
    )
    print(
        f"{'Jupyter inline (kernel round trip)':<34}{their_no_plot:>9.2f}{their_plot:>9.2f}"
        f"{their_plot - their_no_plot:>12.2f}{theirs['png_chars']:>11,}"
    )
    print(
        f"\nours: plotting alone (figure closed, not drawn) {drawn:.2f} ms; drawing + encoding "
        f"it adds {ours_plot - drawn:.2f} ms; ratio of 'showing it' ours/Jupyter: "
        f"{(ours_plot - ours_no_plot) / max(their_plot - their_no_plot, 1e-9):.2f} in the "
        f"child, {(session_plot - session_no_plot) / max(their_plot - their_no_plot, 1e-9):.2f}"
        " round trip to round trip"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"ours": mine, "session": whole, "jupyter": theirs}, indent=2)
        )


if __name__ == "__main__":
    main()
