"""Start the session worker from the client's `initialize`, before the server's own imports.

An editor sends `initialize` the moment it starts the server and `initialized` a millisecond
after the answer, so a worker started in the `initialize` handler is still starting when the
first run arrives. Importing pygls and lsprotocol takes the server ~400 ms; the worker takes
~100 ms. So the stdio start-up (stdio.py) reads the first message itself, hands it here to
start the worker the handler would start (same settings, same folder, same request, through
`warm_request`), and only then imports the server, while the worker boots on the other core.
The server's own warm-up then finds that worker in the SessionExecutor it is given.

Only the standard library and the light modules a worker start needs are imported here
(no pygls, no lsprotocol): that is the whole point.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

from codeexec_lsp.actions.run import usable_settings, warm_request
from codeexec_lsp.config import SettingsStore, section_of
from codeexec_lsp.execution.session import SessionExecutor

log = logging.getLogger(__name__)

# (cwd, profile) of the session started here, for the server's `initialized` to stop it if
# the client's own settings then want another one (see server.py `initialized`).
started: list[tuple[str, str]] = []


def initialize_params(message: bytes) -> Mapping[str, Any] | None:
    """The params of an `initialize` request framed as LSP sends it; None for anything else."""
    _, _, body = message.partition(b"\r\n\r\n")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("method") != "initialize":
        return None
    params = data.get("params")
    return params if isinstance(params, Mapping) else None


def _path_of(uri: Any) -> str | None:
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return None
    return unquote(urlparse(uri).path) or None


def folders_of(params: Mapping[str, Any]) -> list[str]:
    """The workspace folders in the order the server's `workspace_folders()` gives them:
    `workspaceFolders`, then the root (`rootUri`, else `rootPath`)."""
    folders = params.get("workspaceFolders") or []
    found = [
        path
        for folder in folders
        if isinstance(folder, Mapping) and (path := _path_of(folder.get("uri")))
    ]
    root = _path_of(params.get("rootUri"))
    if root is None and isinstance(params.get("rootPath"), str):
        root = params["rootPath"]
    return [*found, *([root] if root else [])]


async def start(message: bytes, session: SessionExecutor) -> None:
    """Start the worker the `initialize` in `message` will ask for; never raises (the
    server's own warm-up, or the first run, starts it and says why it could not)."""
    try:
        params = initialize_params(message)
        if params is None:
            return
        store = SettingsStore()
        section = section_of(params.get("initializationOptions"))
        store.initialization = dict(section) if section else {}
        settings, _ = usable_settings(store.current()[0])
        if settings.executor != "session":
            return
        request = warm_request(settings, folders_of(params))
        if request is None:
            return
        started.append((request.cwd, request.sandbox))
        await session.warm_for(request)
    except Exception as exc:  # an early start is only a head start
        log.info("could not start the session before initialize: %s", exc)
