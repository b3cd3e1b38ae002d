"""Before/after trees for benchmarks/lsp_speed.py: the tree the round-trip levers of issue 11
were finished in (LEVERS_AT, 78f33e0) with them switched off cumulatively, as /tmp/h1/s0 (all
off) ... /tmp/h1/s6 (all on), then

    python benchmarks/lsp_speed_levers.py
    cd benchmarks && python lsp_speed.py --tree s0=/tmp/h1/s0 ... --tree s6=/tmp/h1/s6

Levers, in order: lazy progress, publish-if-changed, dispatch + plain-dict answers, event-loop
stdin reader, per-folder caches + to_json, lazy imports. Each is switched off by a small
source patch of the snapshot (e569c8d's eager work_progress, the old to_json, ...); a patch
that no longer applies fails loudly. The snapshots are of LEVERS_AT, not HEAD: later work
(the early session start, the use cases moved out of server.py) changed the lines the patches
switch; add `--tree head=/work/main` to see where HEAD stands in the same run.
"""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEVERS_AT = "78f33e0"


def show(ref, path):
    return subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


old_server = show("e569c8d", "codeexec_lsp/server.py")
old_wp = old_server[
    old_server.index(
        "    @contextlib.asynccontextmanager\n    async def work_progress("
    ) : old_server.index("\n\nserver = CodeexecServer()")
]
old_results = show("e569c8d", "codeexec_lsp/results.py")
old_to_json = old_results[
    old_results.index("    def to_json(self)") : old_results.index("    @classmethod")
]
# What serve imported eagerly before the lazy-imports lever.
SERVER_EAGER = ", ".join(
    f"codeexec_lsp.{name}"
    for name in ("actions.explain", "actions.fix", "code_context", "edits", "llm.base", "cache")
)
CLI_EAGER = (
    ", ".join(
        f"codeexec_lsp.{name}"
        for name in ("execution.sandbox", "execution.local", "execution.registry")
    )
    + ", "
    + SERVER_EAGER
)
LEVERS = ["progress", "publish", "dispatch", "stdin", "caches", "imports"]


def snap(name, off):
    dest = Path(f"/tmp/h1/{name}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(f"git -C {REPO} archive {LEVERS_AT} | tar -x -C {dest}", shell=True, check=True)
    files = {}

    def edit(rel, a, b):
        p = dest / rel
        s = files.get(rel) or p.read_text()
        assert a in s, (rel, a)
        files[rel] = s.replace(a, b)

    S = "codeexec_lsp/server.py"
    if "progress" in off:
        s = (dest / S).read_text()
        start = s.index("    @contextlib.asynccontextmanager\n    async def work_progress(")
        end = s.index("\n\nPROGRESS_DELAY_S")
        files[S] = (
            s[:start]
            + old_wp.replace(
                "cancel: asyncio.Event) -> Any:", "cancel: asyncio.Event, live: Any = None) -> Any:"
            )
            + s[end:]
        )
    if "publish" in off:
        edit(S, "if found != shown_diagnostics:", "if True:")
        edit(S, "if hints != shown_hints and self.supports", "if self.supports")
    if "dispatch" in off:
        edit(S, "if handler is None or not _takes_raw_arguments(handler):", "if True:")
        edit(S, "if error is None and isinstance(result, dict):", "if False:")
    if "stdin" in off:
        edit("codeexec_lsp/cli.py", "serve_stdio(server)", "server.start_io()")
    if "caches" in off:
        edit(
            "codeexec_lsp/actions/run.py", "    cached = _places.get(key)\n", "    cached = None\n"
        )
        edit(
            "codeexec_lsp/actions/run.py",
            "    return _workspace_for(path, tuple(folders))",
            "    return _workspace_for.__wrapped__(path, tuple(folders))",
        )
        s = files.get("codeexec_lsp/results.py") or (dest / "codeexec_lsp/results.py").read_text()
        start = s.index("    def to_json(self)")
        end = s.index("    @classmethod")
        files["codeexec_lsp/results.py"] = s[:start] + old_to_json + s[end:]
        edit(
            "codeexec_lsp/results.py",
            "from dataclasses import dataclass, field",
            "from dataclasses import asdict, dataclass, field",
        )
    if "imports" in off:
        edit(
            S,
            "\nlog = logging.getLogger(__name__)\n",
            "\nimport " + SERVER_EAGER + "  # noqa\nlog = logging.getLogger(__name__)\n",
        )
        edit(
            "codeexec_lsp/cli.py",
            "\nUSAGE_ERROR = 2\n",
            "\nimport " + CLI_EAGER + "  # noqa\nUSAGE_ERROR = 2\n",
        )
    for rel, s in files.items():
        (dest / rel).write_text(s)
    print(dest, "off:", sorted(off))


for i in range(len(LEVERS) + 1):
    snap(f"s{i}", set(LEVERS[i:]))
