"""The launcher's own promise, found unguarded by mutation testing (tools/MUTATION.md,
launcher.py): nothing from the user's environment runs before the box exists. The launcher
is started isolated (`python -I`), so a module on the user's PYTHONPATH that shadows one
the launcher imports runs only in the user's code, once confined, never in the launcher."""

from __future__ import annotations

import os
from pathlib import Path

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.local import LocalExecutor

# Shadows the stdlib json (which both the launcher and the runner import): notes which
# program imported it, then hands over the real module.
PLANTED_JSON = """\
import importlib
import os
import sys

with open(os.environ["PLANTED_MARKER"], "a") as marker:
    marker.write(os.path.basename(sys.argv[0]) + "\\n")
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules["json"]
sys.modules["json"] = importlib.import_module("json")
"""


async def test_a_module_on_the_users_pythonpath_never_runs_in_the_launcher(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "json.py").write_text(PLANTED_JSON)
    marker = tmp_path / "imported-by.txt"
    source = tmp_path / "main.py"
    code = "import json\nprint(json.dumps([1, 2]))\n"
    source.write_text(code)
    environ = {**os.environ, "PYTHONPATH": str(planted), "PLANTED_MARKER": str(marker)}
    request = build_request(
        snippet.whole_file(code, str(source)), Settings(), tmp_path, environ=environ
    )
    result = await LocalExecutor().run(request)
    assert result.status == "ok", result
    assert result.stdout == "[1, 2]\n"
    importers = marker.read_text().split() if marker.exists() else []
    # Only the user's code imported it: it got its PYTHONPATH, the launcher did not.
    assert importers and all(name == "runner.py" for name in importers), importers
