"""The executors a server keeps for its lifetime, picked per run by the settings."""

from __future__ import annotations

from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Executor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor


class Executors:
    def __init__(self, prestart: bool = True) -> None:
        # A long-lived server starts the next local child ahead of time; a one-shot CLI
        # run would only throw it away.
        self.local = LocalExecutor(prestart=prestart)
        self.session = SessionExecutor()
        self._http: dict[tuple[str | None, str], Executor] = {}

    def for_settings(self, settings: Settings) -> Executor:
        if settings.executor == "session":
            return self.session
        if settings.executor == "http":
            key = (settings.http.url, settings.http.token_env)
            if key not in self._http:
                from codeexec_lsp.execution.http import HttpExecutor  # httpx: import on use

                self._http[key] = HttpExecutor(settings.http.url, settings.http.token_env)
            return self._http[key]
        return self.local

    async def close(self) -> None:
        await self.local.close()
        await self.session.close()
        for executor in self._http.values():
            await executor.close()
        self._http.clear()
