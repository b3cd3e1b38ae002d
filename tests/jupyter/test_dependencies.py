"""The Jupyter libraries are optional: importing our package does not need them, and
choosing the executor without them says in one line which extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_importing_the_package_imports_no_jupyter_library() -> None:
    code = (
        "import sys\n"
        "import codeexec_lsp.execution.jupyter\n"
        "print(sorted(m for m in ('jupyter_client', 'zmq', 'websockets') if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_without_the_extra_the_run_names_it(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.modules['jupyter_client'] = None  # as if not installed
        from pathlib import Path
        from tests.jupyter.conftest import request_for
        from codeexec_lsp.execution.jupyter import JupyterExecutor
        result = asyncio.run(JupyterExecutor().run(request_for('1\\n', Path({str(tmp_path)!r}))))
        print(result.status)
        print(result.message)
        """
    )
    lines = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout.splitlines()
    assert lines[0] == "internal"
    assert lines[1] == (
        "The jupyter executor needs jupyter_client: install it with "
        "`pip install 'codeexec-lsp[jupyter]'`."
    )
