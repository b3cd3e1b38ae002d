"""A plot run through `executor: "http"` (our /execute server, started as a user starts it,
on 127.0.0.1) reaches the editor as session and local runs do: an image/png output in the
RunResult, and the image in VS Code's hover."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import config, open_document, rng, run, start

TOKEN = secrets.token_urlsafe(24)
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"

needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode
    != 0,
    reason="matplotlib is not installed",
)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """`codeexec-lsp api` on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "codeexec_lsp", "api", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "CODEEXEC_API_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("codeexec-lsp api did not start")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


@pytest_lsp.fixture(config=config(CODEEXEC_TEST_EXEC_TOKEN=TOKEN))
async def bare_client(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


@needs_matplotlib
async def test_a_plot_through_http_is_an_image_in_the_result_and_the_hover(
    bare_client: LanguageClient, workspace: Path, api_url: str
) -> None:
    settings = {
        "executor": "http",
        "http": {"url": api_url, "tokenEnv": "CODEEXEC_TEST_EXEC_TOKEN"},
        "hoverImages": "always",
    }
    await start(bare_client, "visual-studio-code", workspace, options=settings)
    uri = open_document(bare_client, workspace / "plot.py", PLOT)
    result = await run(bare_client, uri, rng(0, 0, 1, 19))
    assert (result["executor"], result["status"]) == ("http", "ok"), result
    (output,) = result["outputs"]
    assert output["output_type"] == "display_data"
    assert base64.b64decode(output["data"]["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    hover = await bare_client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=1, character=0),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert f"(data:image/png;base64,{output['data']['image/png']}" in hover.contents.value
