"""pytest-lsp fixtures: the real server as a subprocess, clients posing as editors."""

from __future__ import annotations

import sys
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
