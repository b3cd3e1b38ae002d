"""pytest-lsp fixtures: the real server as a subprocess, clients posing as editors."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Union

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, client_capabilities
from pytest_lsp import LanguageClient as TestClient
from pytest_lsp.client import register_lsp_features

SERVER = [sys.executable, "-m", "codeexec_lsp"]


def _converter() -> Any:
    # lsprotocol 2025.0.0 decodes a CodeAction carrying a `command` as a bare Command.
    converter = default_converter()

    def command_or_action(obj: Any, _: Any) -> Any:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, lsp.Command)
        return converter.structure(obj, lsp.CodeAction)

    # typing.Union, not `|`: the hook is looked up by the exact type lsprotocol uses.
    converter.register_structure_hook(
        Union[lsp.Command, lsp.CodeAction],  # noqa: UP007
        command_or_action,
    )
    return converter


def make_client() -> LanguageClient:
    client = TestClient(converter_factory=_converter)
    register_lsp_features(client)

    @client.feature(lsp.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_hint_refresh(params: None) -> None:
        return None

    return client


def config(**env: str) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=SERVER, client_factory=make_client, server_env=env or None
    )


async def start(client: TestClient, editor: str, root: Path, options: Any = None) -> str:
    """Initialize as `editor`; returns the negotiated position encoding."""
    result = await client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities(editor),
            root_uri=root.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )
    return str(result.capabilities.position_encoding or "utf-16")


def units(text: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def open_document(client: TestClient, path: Path, text: str) -> str:
    path.write_text(text)
    uri = path.as_uri()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    return uri


def rng(start_line: int, start_char: int, end_line: int, end_char: int) -> dict[str, Any]:
    return {
        "start": {"line": start_line, "character": start_char},
        "end": {"line": end_line, "character": end_char},
    }


def edit(
    client: TestClient,
    uri: str,
    version: int,
    start: tuple[int, int],
    end: tuple[int, int],
    text: str,
) -> None:
    """One incremental change, as an editor sends a keystroke or a paste: replace the
    client-unit range `start`..`end` ((line, character) each) with `text`."""
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                lsp.TextDocumentContentChangePartial(
                    range=lsp.Range(
                        start=lsp.Position(line=start[0], character=start[1]),
                        end=lsp.Position(line=end[0], character=end[1]),
                    ),
                    text=text,
                )
            ],
        )
    )


async def published_diagnostics(client: TestClient, uri: str) -> list[lsp.Diagnostic]:
    """The diagnostics published for `uri`, once there are some (up to ~5 s)."""
    for _ in range(100):
        if client.diagnostics.get(uri):
            break
        await asyncio.sleep(0.05)
    return list(client.diagnostics.get(uri, []))


async def run(client: TestClient, uri: str, range_: dict[str, Any] | None = None) -> Any:
    arguments: list[Any] = [uri] if range_ is None else [uri, range_]
    return await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.run", arguments=arguments)
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


EditorClient = Callable[..., AsyncIterator[TestClient]]


@pytest_lsp.fixture(config=config(), params=["neovim", "visual-studio-code"])
async def client(
    lsp_client: TestClient, request: pytest.FixtureRequest, workspace: Path
) -> AsyncIterator[TestClient]:
    lsp_client.encoding = await start(lsp_client, request.param, workspace)  # type: ignore[attr-defined]
    yield lsp_client
    await lsp_client.shutdown_session()


# --- raw JSON-RPC, for what the typed client would refuse to send ------------------------------


def server_pid(client: TestClient) -> int:
    """The language server's process id (pytest-lsp starts it as a subprocess)."""
    process = client._server  # pygls keeps the subprocess here
    assert process is not None
    return process.pid


def server_alive(client: TestClient) -> bool:
    process = client._server
    return process is not None and process.returncode is None


def send_raw(client: TestClient, body: bytes) -> None:
    """Write one framed message (any bytes at all as its body) to the server's stdin."""
    writer = client.protocol.writer
    assert writer is not None
    writer.write(b"Content-Length: %d\r\n\r\n%b" % (len(body), body))


def encode(message: Any) -> bytes:
    # ensure_ascii escapes lone surrogates as \udXXX, and NaN/Infinity go out as JSON5-ish
    # literals Python's json module reads: both are what a hostile or buggy client can send.
    return json.dumps(message, allow_nan=True).encode("ascii")


def notify_raw(client: TestClient, method: str, params: Any = None) -> None:
    send_raw(client, encode({"jsonrpc": "2.0", "method": method, "params": params}))


async def request_raw(
    client: TestClient, method: str, params: Any = None, *, timeout: float = 30.0
) -> Any:
    """Send a request as raw JSON and wait for the answer: the result, or the JSON-RPC
    error raised as JsonRpcException. A missing answer fails with TimeoutError."""
    msg_id = f"raw-{uuid.uuid4()}"
    answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.protocol._request_futures[msg_id] = answer  # the client's own table
    # Decoded like executeCommand's LSPAny result: plain JSON, not pygls' namedtuples.
    client.protocol._result_types[msg_id] = lsp.ExecuteCommandResponse
    send_raw(client, encode({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))
    try:
        return await asyncio.wait_for(answer, timeout)
    finally:
        client.protocol._request_futures.pop(msg_id, None)
        client.protocol._result_types.pop(msg_id, None)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
