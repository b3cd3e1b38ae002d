"""The local executor's edges found unguarded by mutation testing (tools/MUTATION.md,
local.py): what a watcher of a run in progress gets when the code writes bytes that are
not UTF-8."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.execution.local import LocalExecutor

WRITES_BAD_BYTES = (
    "import sys\n"
    "sys.stdout.buffer.write(b'before \\xff\\xfe after\\n')\n"
    "sys.stdout.buffer.write('split é'.encode()[:-1])\n"
    "sys.stdout.flush()\n"
    "sys.stdout.buffer.write('split é'.encode()[-1:] + b'\\n')\n"
)


async def test_a_watcher_gets_bytes_that_are_not_utf8_as_replacement_characters(
    tmp_path: Path,
) -> None:
    source = tmp_path / "main.py"
    source.write_text(WRITES_BAD_BYTES)
    request = build_request(snippet.whole_file(WRITES_BAD_BYTES, str(source)), Settings(), tmp_path)
    live = LiveOutput()
    executor = LocalExecutor()
    try:
        result = await executor.run(replace(request, live=live))
    finally:
        await executor.close()
    assert result.status == "ok", result
    assert result.stdout == "before \ufffd\ufffd after\nsplit é\n"
    assert live.stdout == result.stdout
    assert live.last_line() == "split é"
