"""Rich outputs end to end, through the real server: a plot is an image in VS Code's hover and
a text line in Neovim's; Show output writes one page and opens it with window/showDocument
(external) only for clients that support it; `_repr_html_` gives an execute_result."""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from tests.e2e.conftest import config, open_document, rng, run

CACHE_DIR = tempfile.mkdtemp(prefix="codeexec-e2e-outputs-cache-")
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
HTML_CLASS = (
    "class Table:\n"
    "    def _repr_html_(self):\n"
    "        return '<table><tr><td>42</td></tr></table>'\n"
    "    def __repr__(self):\n"
    "        return 'Table()'\n"
    "Table()\n"
)

needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode
    != 0,
    reason="matplotlib is not installed",
)


@pytest_lsp.fixture(
    config=config(CODEEXEC_CACHE_DIR=CACHE_DIR),
    params=["visual-studio-code", "neovim@v0.11.0", "neovim@v0.8.0"],
)
async def editor(
    lsp_client: LanguageClient, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LanguageClient]:
    name = "Visual Studio Code" if request.param.startswith("visual") else "Neovim"
    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities(request.param),
            client_info=lsp.ClientInfo(name=name),
            root_uri=tmp_path.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=tmp_path.as_uri(), name="project")],
        )
    )
    lsp_client.spec = request.param  # type: ignore[attr-defined]
    yield lsp_client
    await lsp_client.shutdown_session()


def spec(editor: LanguageClient) -> str:
    return str(editor.spec)  # type: ignore[attr-defined]


async def hover_text(editor: LanguageClient, uri: str, line: int) -> str:
    hover = await editor.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=0),
        )
    )
    assert hover is not None
    assert isinstance(hover.contents, lsp.MarkupContent)
    return hover.contents.value


async def show_output(editor: LanguageClient, uri: str, range_: Any = None) -> Any:
    arguments = [uri] if range_ is None else [uri, range_]
    return await editor.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.showOutput", arguments=arguments)
    )


def page_text(uri: str) -> str:
    return Path(unquote(urlparse(uri).path)).read_text(encoding="utf-8")


async def test_show_output_opens_the_page_only_where_show_document_is_supported(
    editor: LanguageClient, tmp_path: Path
) -> None:
    uri = open_document(editor, tmp_path / "hello.py", "print('hello <world>')\n")
    await run(editor, uri, rng(0, 0, 0, 22))
    answer = await show_output(editor, uri, rng(0, 0, 0, 0))
    page = page_text(answer["uri"])
    assert "hello &lt;world&gt;" in page
    assert "Content-Security-Policy" in page
    if spec(editor) == "neovim@v0.8.0":
        # That client answers showDocument with `support: false`: it must not be sent one.
        assert answer["shown"] is False
        assert editor.shown_documents == []
        assert any("output page is" in m.message for m in editor.messages)
    else:
        assert answer["shown"] is True
        (shown,) = editor.shown_documents
        assert shown.uri == answer["uri"] and shown.external is True


async def test_show_output_is_offered_on_run_lines_and_refused_before_a_run(
    editor: LanguageClient, tmp_path: Path
) -> None:
    uri = open_document(editor, tmp_path / "x.py", "x = 1\ny = 2\n")

    async def titles(line: int) -> list[str]:
        actions = await editor.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(
                    start=lsp.Position(line=line, character=0),
                    end=lsp.Position(line=line, character=0),
                ),
                context=lsp.CodeActionContext(diagnostics=[]),
            )
        )
        return [action.title for action in actions or []]

    assert "Show output" not in await titles(0)
    with pytest.raises(Exception, match="no finished run here"):
        await show_output(editor, uri)
    await run(editor, uri, rng(0, 0, 0, 5))
    assert "Show output" in await titles(0)
    assert "Show output" not in await titles(1)


@needs_matplotlib
async def test_a_plot_is_an_image_in_vscode_hover_a_line_in_neovim_and_a_page(
    editor: LanguageClient, tmp_path: Path
) -> None:
    uri = open_document(editor, tmp_path / "plot.py", PLOT)
    result = await run(editor, uri, rng(0, 0, 1, 19))
    assert result["status"] == "ok", result
    (output,) = result["outputs"]
    assert output["output_type"] == "display_data"
    png = base64.b64decode(output["data"]["image/png"])
    assert png.startswith(b"\x89PNG")
    text = await hover_text(editor, uri, 1)
    if spec(editor) == "visual-studio-code":
        assert f"![figure 1](data:image/png;base64,{output['data']['image/png']}|width=" in text
    else:
        assert "data:image" not in text
        assert r"figure 1\: 640×480 PNG — Show output to view" in text
    answer = await show_output(editor, uri, rng(1, 0, 1, 0))
    assert f'src="data:image/png;base64,{output["data"]["image/png"]}"' in page_text(answer["uri"])
    hints = await editor.text_document_inlay_hint_async(
        lsp.InlayHintParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=0), end=lsp.Position(line=2, character=0)
            ),
        )
    )
    assert [hint.label for hint in hints or []] == ["→ 🖼 figure"]


async def test_a_class_with_repr_html_gives_an_execute_result_with_html(
    editor: LanguageClient, tmp_path: Path
) -> None:
    uri = open_document(editor, tmp_path / "table.py", HTML_CLASS)
    result = await run(editor, uri)
    assert result["value"] == "Table()"
    (output,) = result["outputs"]
    assert output["output_type"] == "execute_result"
    assert output["data"]["text/html"] == "<table><tr><td>42</td></tr></table>"
    assert output["data"]["text/plain"] == "Table()"
    answer = await show_output(editor, uri)
    assert "<table><tr><td>42</td></tr></table>" in page_text(answer["uri"])


# 10,000 coloured points and a colour bar: ~230,000 characters as a PNG, past what a hover holds.
DENSE_SCATTER = (
    "import random\n"
    "import matplotlib.pyplot as plt\n"
    "points = random.Random(0)\n"
    "xs = [points.gauss(0, 1) for _ in range(10_000)]\n"
    "ys = [points.gauss(0, 1) for _ in range(10_000)]\n"
    "plt.scatter(xs, ys, s=2, c=[points.random() for _ in range(10_000)])\n"
    "plt.colorbar()\n"
)


@needs_matplotlib
async def test_a_dense_scatter_is_its_hover_version_in_vscode_hover_and_whole_on_the_page(
    editor: LanguageClient, tmp_path: Path
) -> None:
    uri = open_document(editor, tmp_path / "scatter.py", DENSE_SCATTER)
    result = await run(editor, uri)
    assert result["status"] == "ok", result
    (output,) = result["outputs"]
    full = output["data"]["image/png"]
    assert len(full) > 100_000  # VS Code drops hover Markdown past 100,000 characters
    small = output["metadata"]["codeexec"]["hover"]
    assert base64.b64decode(small["image/png"]).startswith(b"\x89PNG")
    text = await hover_text(editor, uri, 6)
    if spec(editor) == "visual-studio-code":
        assert "data:image/png;base64," in text
        assert f"![figure 1](data:image/png;base64,{small['image/png']}|width=480,height=360)" in (
            text
        )
        assert full not in text and len(text) < 100_000
    else:
        assert "data:image" not in text
        assert r"figure 1\: 640×480 PNG — Show output to view" in text
    answer = await show_output(editor, uri, rng(6, 0, 6, 0))
    assert f'src="data:image/png;base64,{full}"' in page_text(answer["uri"])
