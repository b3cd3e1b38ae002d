"""The floor: a minimal pygls 2 language server whose one command returns a constant.

Started exactly as codeexec-lsp is (`python -m`, stdio), so the benchmarks can compare a
codeexec run's round trip and start-up with what pygls itself costs.

    python -m _minimal_pygls [--loop-reader]   (with benchmarks/ on PYTHONPATH)

`--loop-reader` serves through codeexec_lsp.stdio's event-loop stdin reader instead of
pygls' thread reader: the floor that reader makes reachable.
"""

from __future__ import annotations

import sys
from typing import Any

from pygls.lsp.server import LanguageServer

server = LanguageServer("minimal-pygls", "1")


@server.command("bench.constant")
def constant(ls: LanguageServer, *args: Any) -> dict[str, Any]:
    return {"status": "ok", "value": "2"}


if __name__ == "__main__":
    if "--loop-reader" in sys.argv:
        from codeexec_lsp.stdio import serve_stdio

        serve_stdio(server)
    else:
        server.start_io()
