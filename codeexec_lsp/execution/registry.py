"""The executors a server keeps for its lifetime, picked per run by the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Executor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor

if TYPE_CHECKING:
    from codeexec_lsp.execution.jupyter import JupyterExecutor


class Executors:
    def __init__(self, prestart: bool = True) -> None:
        # A long-lived server starts the next local child ahead of time; a one-shot CLI
        # run would only throw it away.
        self.local = LocalExecutor(prestart=prestart)
        self.session = SessionExecutor()
        self._http: dict[tuple[str | None, str], Executor] = {}
        self._jupyter: dict[tuple[str | None, ...], JupyterExecutor] = {}

    def for_settings(self, settings: Settings) -> Executor:
        if settings.executor == "session":
            return self.session
        if settings.executor == "http":
            key = (settings.http.url, settings.http.token_env)
            if key not in self._http:
                from codeexec_lsp.execution.http import HttpExecutor  # httpx: import on use

                self._http[key] = HttpExecutor(settings.http.url, settings.http.token_env)
            return self._http[key]
        if settings.executor == "jupyter":
            return self.jupyter(settings)
        return self.local

    def jupyter(self, settings: Settings) -> JupyterExecutor:
        """One executor per kernel choice; importing it imports no Jupyter library (a
        missing extra is said in one line when a run needs a kernel)."""
        from codeexec_lsp.execution.jupyter import JupyterExecutor

        chosen = settings.jupyter
        key = (
            chosen.kernel,
            chosen.url,
            chosen.token_env,
            chosen.kernel_id,
            chosen.connection_file,
        )
        if key not in self._jupyter:
            self._jupyter[key] = JupyterExecutor(
                kernel=chosen.kernel,
                url=chosen.url,
                token_env=chosen.token_env,
                kernel_id=chosen.kernel_id,
                connection_file=chosen.connection_file,
            )
        return self._jupyter[key]

    async def restart_jupyter(self) -> int:
        """Restart every Jupyter kernel in use (Restart session); how many were."""
        return sum([await executor.restart() for executor in self._jupyter.values()])

    async def close(self) -> None:
        await self.local.close()
        await self.session.close()
        for executor in self._http.values():
            await executor.close()
        self._http.clear()
        for jupyter in self._jupyter.values():
            await jupyter.close()  # deletes the kernels we started, never attached ones
        self._jupyter.clear()
