"""Rich outputs through the http executor: our /execute server (the real app on 127.0.0.1)
returns `outputs` in the RunResult shape, the executor maps them into RunResult.outputs, and
a plot or an HTML table run through `executor: "http"` gives what session and local give.
Servers that send no `outputs` (or junk) still work: the field is optional."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.display import MAX_OUTPUTS, png_size
from codeexec_lsp.execution.http import HttpExecutor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult
from tests.fakes.api_fixtures import AUTH, StartApi, start_api_fixture  # noqa: F401

needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode
    != 0,
    reason="matplotlib is not installed",
)

PLOT = (
    "import matplotlib.pyplot as plt\n"
    "fig = plt.figure(figsize=(4, 3), dpi=50)\n"
    "plt.plot([1, 2, 3])\n"
    "plt.show()\n"
)
HTML_TABLE = (
    "class Table:\n"
    "    def _repr_html_(self):\n"
    "        return '<table><tr><td>1</td></tr></table>'\n"
    "    def __repr__(self):\n"
    "        return 'Table()'\n"
    "Table()\n"
)
DISPLAYS = "display({'a': 1})\nprint('between')\ndisplay(Table())\n"


@pytest.fixture(autouse=True)
def interruptible_children() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def request_for(folder: Path, code: str, timeout: float = 5.0) -> RunRequest:
    path = folder / "rich.py"
    path.write_text(code)
    return build_request(snippet.whole_file(code, str(path)), Settings(timeout=timeout), folder)


async def run_http(url: str, request: RunRequest) -> RunResult:
    executor = HttpExecutor(url)
    try:
        return await executor.run(request)
    finally:
        await executor.close()


async def run_all(url: str, request: RunRequest) -> dict[str, RunResult]:
    """The same request through every executor that runs in our own processes."""
    results: dict[str, RunResult] = {"http": await run_http(url, request)}
    for name, executor in (("session", SessionExecutor()), ("local", LocalExecutor())):
        try:
            results[name] = await executor.run(request)
        finally:
            await executor.close()
    return results


def png_of(output: dict[str, Any]) -> bytes:
    data = base64.b64decode(output["data"]["image/png"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return data


@needs_matplotlib
async def test_a_plot_through_http_is_the_same_png_output(
    start_api: StartApi, tmp_path: Path
) -> None:
    api = start_api(max_run_time=30.0, default_run_time=30.0)
    results = await run_all(api.url, request_for(tmp_path, PLOT, timeout=30.0))
    http = results["http"]
    assert http.status == "ok", (http.message, http.error)
    assert [output["output_type"] for output in http.outputs] == ["display_data"]
    assert png_size(png_of(http.outputs[0])) == (200, 150)  # 4×3 inches at 50 dpi
    for name in ("session", "local"):
        other = results[name]
        assert other.status == "ok", (name, other.message)
        assert other.outputs == http.outputs, name


async def test_html_and_displays_through_http_match_the_other_executors(
    start_api: StartApi, tmp_path: Path
) -> None:
    api = start_api()
    for code in (HTML_TABLE, HTML_TABLE.replace("Table()\n", "") + DISPLAYS):
        results = await run_all(api.url, request_for(tmp_path, code))
        http = results["http"]
        assert http.status == "ok", (http.message, http.error)
        assert http.outputs, code
        assert any("text/html" in output["data"] for output in http.outputs)
        for name in ("session", "local"):
            assert results[name].outputs == http.outputs, name
            assert (results[name].stdout, results[name].value) == (http.stdout, http.value)


async def test_outputs_before_an_error_come_through(start_api: StartApi, tmp_path: Path) -> None:
    api = start_api()
    code = HTML_TABLE.replace("Table()\n", "") + "display(Table())\n1 / 0\n"
    result = await run_http(api.url, request_for(tmp_path, code))
    assert result.status == "error"
    assert result.error is not None and result.error.type == "ZeroDivisionError"
    assert [output["data"].get("text/html") for output in result.outputs] == [
        "<table><tr><td>1</td></tr></table>"
    ]


async def test_the_api_answer_carries_outputs_and_documents_them(start_api: StartApi) -> None:
    api = start_api()
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=30) as client:
        plain = (await client.post("/execute", json={"code": "print(1)\n"})).json()
        rich = (await client.post("/execute", json={"code": HTML_TABLE})).json()
        schema = (await client.get("/openapi.json")).json()
    assert plain["status"] == "success" and plain["outputs"] == []
    assert rich["status"] == "success"
    assert [output["output_type"] for output in rich["outputs"]] == ["execute_result"]
    assert rich["outputs"][0]["data"]["text/html"] == "<table><tr><td>1</td></tr></table>"
    assert rich["outputs"][0]["data"]["text/plain"] == "Table()"
    response = schema["components"]["schemas"]["ExecuteResponse"]
    assert "outputs" in response["properties"]
    assert "outputs" not in response["required"]
    assert "Output" in schema["components"]["schemas"]


def scripted(answer: dict[str, Any]) -> HttpExecutor:
    """An executor whose server always answers `answer` (another /execute implementation)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    return HttpExecutor("http://exec.test", transport=httpx.MockTransport(handler))


async def scripted_run(answer: dict[str, Any], tmp_path: Path) -> RunResult:
    executor = scripted(answer)
    try:
        return await executor.run(request_for(tmp_path, "x = 1\n"))
    finally:
        await executor.close()


async def test_a_server_without_outputs_still_works(tmp_path: Path) -> None:
    result = await scripted_run({"status": "success", "output": "hi\n", "error": ""}, tmp_path)
    assert (result.status, result.stdout, result.outputs) == ("ok", "hi\n", ())
    assert json.loads(json.dumps(result.to_json()))["outputs"] == []


@pytest.mark.parametrize(
    "junk",
    [
        "not a list",
        {"output_type": "display_data"},
        [1, "two", None, {"output_type": "stream", "data": {"text/plain": "x"}}],
        [{"output_type": "display_data", "data": "not a dict"}],
        [{"output_type": "display_data", "data": {"text/plain": 7}}],
    ],
)
async def test_malformed_outputs_from_a_server_are_dropped(junk: Any, tmp_path: Path) -> None:
    answer = {"status": "success", "output": "", "error": "", "outputs": junk}
    result = await scripted_run(answer, tmp_path)
    assert (result.status, result.outputs) == ("ok", ())


async def test_a_flood_of_outputs_from_a_server_is_bounded(tmp_path: Path) -> None:
    one = {"output_type": "display_data", "data": {"text/html": "<b>x</b>"}, "metadata": {}}
    answer = {"status": "error", "output": "", "error": "boom", "outputs": [one] * 5000}
    result = await scripted_run(answer, tmp_path)
    assert result.status == "error"
    assert len(result.outputs) == MAX_OUTPUTS + 1
    assert "more outputs were not kept" in result.outputs[-1]["data"]["text/plain"]
