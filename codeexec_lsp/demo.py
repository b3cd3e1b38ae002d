"""`codeexec-lsp demo`: drive the real server over stdio as an editor would, and print
what the editor would show (diagnostics, hover, inlay hints)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

DEMO_FILE = Path("examples") / "demo.py"
# A copy of examples/demo.py (a test keeps them equal), so `codeexec-lsp demo` also works
# outside a clone, e.g. after `pipx install git+URL`, as the terminal hint suggests.
DEMO_SOURCE = '''\
"""Prices of a few fruits. Select lines and pick "Run selection" (or use the CLI)."""

# %% Average price
prices = {"apple": 1.20, "pear": 0.95, "fig": 2.40}
round(sum(prices.values()) / len(prices), 2)


# %% Price ratios per basket
def ratios(basket: dict[str, float]) -> list[float]:
    cheapest = min(basket.values())
    return [round(price / cheapest, 2) for price in basket.values()]


for basket in ({"apple": 1.20, "fig": 2.40}, {"free sample": 0.0, "fig": 2.40}):
    if basket:
        print(ratios(basket))
'''


def demo_file() -> Path:
    """examples/demo.py of the current directory, else of the clone this package was
    installed from (editable installs), else a fresh copy in a temporary folder."""
    for candidate in (DEMO_FILE, Path(__file__).resolve().parents[1] / DEMO_FILE):
        if candidate.is_file():
            return candidate
    folder = Path(tempfile.mkdtemp(prefix="codeexec-demo-"))
    copy = folder / "demo.py"
    copy.write_text(DEMO_SOURCE, encoding="utf-8")
    return copy


def _line_range(first: int, last: int) -> dict[str, Any]:
    return {"start": {"line": first - 1, "character": 0}, "end": {"line": last, "character": 0}}


async def _demo(file: Path, text: str, first: int, last: int) -> int:
    client = LanguageClient("codeexec-demo", "1")
    published: asyncio.Queue[lsp.PublishDiagnosticsParams] = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)  # type: ignore[untyped-decorator]
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published.put_nowait(params)

    await client.start_io(sys.executable, "-m", "codeexec_lsp")
    uri = file.as_uri()
    try:
        await client.initialize_async(
            lsp.InitializeParams(
                capabilities=lsp.ClientCapabilities(),
                root_uri=file.parent.as_uri(),
            )
        )
        client.initialized(lsp.InitializedParams())
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        lines = text.splitlines()
        print(f"$ editor: select {file.name} lines {first}-{last}, pick 'Run selection'\n")
        for number in range(first, last + 1):
            print(f"  {number:>3} | {lines[number - 1]}")
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(
                command="codeexec.run", arguments=[uri, _line_range(first, last)]
            )
        )
        if result is None:
            raise RuntimeError("the server answered codeexec.run with nothing")
        print(f"\nresult: status={result['status']}  stdout={result['stdout']!r}")
        params = await asyncio.wait_for(published.get(), timeout=10) if result["error"] else None
        for diagnostic in params.diagnostics if params else []:
            start = diagnostic.range.start
            print(
                f"\ndiagnostic at line {start.line + 1}, column {start.character + 1} "
                f"[{diagnostic.source}/{diagnostic.code}]: {diagnostic.message}"
            )
            print(f"  {start.line + 1:>3} | {lines[start.line]}")
            print("        " + " " * start.character + "^")
        hover = await client.text_document_hover_async(
            lsp.HoverParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                position=lsp.Position(line=first - 1, character=0),
            )
        )
        if hover is not None and isinstance(hover.contents, lsp.MarkupContent):
            print("\nhover over the run lines:\n")
            print("\n".join("    " + line for line in hover.contents.value.splitlines()))
        hints = await client.text_document_inlay_hint_async(
            lsp.InlayHintParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(
                    start=lsp.Position(line=0, character=0),
                    end=lsp.Position(line=len(lines), character=0),
                ),
            )
        )
        for hint in hints or []:
            print(f"\ninlay hint after line {hint.position.line + 1}: {hint.label}")
        return 0
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()  # type: ignore[no-untyped-call]


def run_demo(file: Path | None = None, lines: tuple[int, int] | None = None) -> int:
    target = (file or DEMO_FILE).resolve()
    text = target.read_text(encoding="utf-8")
    if lines is None:
        numbered = text.splitlines()
        cell = next((i for i, line in enumerate(numbered, 1) if "Price ratios" in line), 1)
        lines = (cell, len(numbered))
    return asyncio.run(_demo(target, text, *lines))
