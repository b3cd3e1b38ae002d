"""Jupyter kernels as an execution backend (issue 13): local, on a server, or attached.

Importing this package imports no Jupyter library: jupyter_client, httpx and websockets
are imported when a kernel is first needed (local.py, remote.py).
"""

from codeexec_lsp.execution.jupyter.executor import (
    EXTRA_HINT,
    JupyterExecutor,
    missing_dependencies,
)
from codeexec_lsp.execution.jupyter.protocol import KernelState

__all__ = ["EXTRA_HINT", "JupyterExecutor", "KernelState", "missing_dependencies"]
