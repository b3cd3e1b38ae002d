"""A kernel that is not IPython (as bash_kernel or a wrapper kernel): the code runs as is,
an error comes back by name and message, and the result says there is no file line."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from codeexec_lsp.execution.jupyter import JupyterExecutor
from tests.jupyter.conftest import request_for

# A wrapper kernel on ipykernel's base class: plain exec, no IPython shell.
MINI_KERNEL = textwrap.dedent(
    """
    from ipykernel.kernelapp import IPKernelApp
    from ipykernel.kernelbase import Kernel


    class MiniKernel(Kernel):
        implementation = "mini"
        implementation_version = "0"
        banner = "mini"
        language_info = {"name": "python", "mimetype": "text/x-python", "file_extension": ".py"}
        namespace = {}

        async def do_execute(self, code, silent, store_history=True, user_expressions=None,
                             allow_stdin=False, **kwargs):
            try:
                exec(compile(code, "<mini>", "exec"), self.namespace)
            except Exception as exc:
                error = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
                self.send_response(self.iopub_socket, "error", error)
                return {"status": "error", "execution_count": self.execution_count, **error}
            if not silent:
                self.send_response(
                    self.iopub_socket, "stream", {"name": "stdout", "text": "mini ran\\n"}
                )
            return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                    "user_expressions": {}}


    IPKernelApp.launch_instance(kernel_class=MiniKernel)
    """
)


@pytest.mark.asyncio
async def test_a_plain_kernel_runs_code_and_names_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "mini_kernel.py"
    script.write_text(MINI_KERNEL)
    spec_dir = tmp_path / "jupyter" / "kernels" / "mini"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, str(script), "-f", "{connection_file}"],
        "display_name": "mini",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    jupyter = JupyterExecutor(kernel="mini")
    try:
        ok = await jupyter.run(request_for("kept = 1\n", tmp_path))
        assert ok.status == "ok", ok.message
        assert ok.stdout == "mini ran\n"
        failed = await jupyter.run(request_for("x = 1\nkept / 0\n", tmp_path))
    finally:
        await jupyter.close()
    assert failed.status == "error"
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ZeroDivisionError", "division by zero")
    assert failed.error.line is None
    assert "not IPython" in failed.message
