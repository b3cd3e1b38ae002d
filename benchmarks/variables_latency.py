"""What asking the session about its variables costs, side by side with running a name.

Hover, completion and the variables list ask the live session worker (the `inspect` op)
between runs. Their floor is the cheapest thing the same worker does for a run: running
`n` in the session (request to result). Each question is timed against that floor in
rotated rounds in this one process, so a loaded shared machine moves both sides alike;
the ratio of medians is the number to read.

    python benchmarks/variables_latency.py [--runs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import rotated, summary
from codeexec_lsp import snippet
from codeexec_lsp.actions import variables as actions
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.session import SessionExecutor

SETUP = "n = 42\nnames = ['a'] * 1000\nd = {str(i): i for i in range(100)}\n"
PANDAS = "import pandas as pd\ndf = pd.DataFrame({'a': range(100), 'b': 1.5, 'c': 'x'})\n"


async def main(runs: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="codeexec-bench-variables-"))
    path = folder / "live.py"
    has_pandas = importlib.util.find_spec("pandas") is not None
    code = SETUP + (PANDAS if has_pandas else "")
    path.write_text(code)
    settings = Settings()
    sessions = SessionExecutor()
    try:
        ran = await sessions.run(
            build_request(snippet.whole_file(code, str(path)), settings, folder)
        )
        assert ran.status == "ok", ran.message
        place = actions.place_for(str(path), settings, [str(folder)], sessions)
        floor = build_request(snippet.whole_file("n\n", str(path)), settings, folder)
        contestants = {
            "run `n` (floor)": lambda: sessions.run(floor),
            "hover n": lambda: actions.hover(place, "n", 0),
            "complete names.": lambda: actions.complete(place, "names."),
            'complete d["': lambda: actions.complete(place, 'd["'),
            "list variables": lambda: actions.list_variables(place, "session"),
        }
        if has_pandas:
            contestants["hover df"] = lambda: actions.hover(place, "df", 0)
            contestants["complete df."] = lambda: actions.complete(place, "df.")
        samples = await rotated(runs, contestants)  # type: ignore[arg-type]
    finally:
        await sessions.close()
    base = summary(samples["run `n` (floor)"])["median"]
    print(f"{'question':20} {'median ms':>10} {'p95 ms':>8} {'× floor':>8}")
    for name, values in samples.items():
        stats = summary(values)
        ratio = stats["median"] / base
        print(f"{name:20} {stats['median']:10.2f} {stats['p95']:8.2f} {ratio:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    asyncio.run(main(parser.parse_args().runs))
