"""The http executor against our API server on 127.0.0.1, against scripted answers from other
servers (httpx.MockTransport), and against servers that fail in every way we could think of."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.settings import ApiSettings
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.http import HttpExecutor, Placement, parse_traceback, snippet_files
from codeexec_lsp.results import RunResult
from tests.fakes.api_harness import HangUpServer, ThreadedApi, unused_port

TOKEN = "http-executor-token-0123456789"
StartApi = Callable[..., ThreadedApi]

# The selection is lines 40-42 of this file (1-based), indented inside a function.
FILLER = "".join(f"# line {n}\n" for n in range(1, 38))
DOCUMENT = FILLER + (
    "def outer():\n"  # 38
    "    if True:\n"  # 39
    "        print('start')\n"  # 40
    "        y = 1 / 0\n"  # 41
    "        print('never')\n"  # 42
)
FIRST, LAST = 39, 41  # 0-based
ERROR_LINE, ERROR_COLUMN = 41, 12  # `1 / 0` in the file


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "module.py"
    file.write_text(DOCUMENT)
    return file


def request_for(
    path: Path, first: int = FIRST, last: int = LAST, document: str = DOCUMENT, **settings: Any
) -> RunRequest:
    selected = snippet.for_lines(document, str(path), first, last)
    return build_request(selected, Settings(**{"timeout": 5.0, **settings}), path.parent)


def whole(path: Path, code: str, **settings: Any) -> RunRequest:
    path.write_text(code)
    return build_request(
        snippet.whole_file(code, str(path)), Settings(**{"timeout": 5.0, **settings}), path.parent
    )


@pytest.fixture
def start_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StartApi]:
    monkeypatch.setenv("CODEEXEC_API_TOKEN", TOKEN)
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> ThreadedApi:
            values = {"max_run_time": 5.0, "max_concurrency": 2, "cache_dir": tmp_path, **options}
            return stack.enter_context(ThreadedApi(create_app(ApiSettings(**values))))

        yield start


async def run_on(url: str, request: RunRequest, **options: Any) -> RunResult:
    executor = HttpExecutor(url, **options)
    try:
        return await executor.run(request)
    finally:
        await executor.close()


def scripted(*answers: httpx.Response, seen: list[httpx.Request] | None = None) -> HttpExecutor:
    """An executor whose server answers with `answers`, in order (the last one repeats)."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return HttpExecutor("http://exec.test", transport=httpx.MockTransport(handler))


def contract(status: str, output: str = "", error: str = "") -> httpx.Response:
    return httpx.Response(200, json={"status": status, "output": output, "error": error})


# --- against our server ------------------------------------------------------------------------


async def test_success_against_our_server(start_api: StartApi, path: Path) -> None:
    result = await run_on(start_api().url, whole(path, "print('hi')\n6 * 7\n"))
    assert (result.status, result.stdout, result.value, result.error) == ("ok", "hi\n", "42", None)
    assert result.executor == "http" and result.extra["http_status"] == 200
    assert result.interpreter.endswith("/execute")


async def test_error_lands_on_the_real_line_of_the_file(start_api: StartApi, path: Path) -> None:
    result = await run_on(start_api().url, request_for(path))
    assert result.status == "error" and result.stdout == "start\n"
    error = result.error
    assert error is not None and error.type == "ZeroDivisionError"
    assert (error.line, error.column) == (ERROR_LINE, ERROR_COLUMN)
    assert error.frames[-1].file == str(path) and error.frames[-1].line == ERROR_LINE
    assert f'File "{path}", line {ERROR_LINE}' in error.traceback
    assert "<string>" not in error.traceback


async def test_syntax_error_lands_on_the_real_line(start_api: StartApi, path: Path) -> None:
    document = FILLER + "x = 1\ny = (\n"
    result = await run_on(start_api().url, request_for(path, 37, 38, document))
    assert result.error is not None and result.error.type == "SyntaxError"
    assert result.error.line == 39


async def test_timeout_keeps_the_place_it_stopped(start_api: StartApi, path: Path) -> None:
    document = FILLER + "import time\nwhile True:\n    time.sleep(0.01)\n"
    result = await run_on(start_api().url, request_for(path, 37, 39, document, timeout=1.0))
    assert result.status == "timeout" and "codeexec.timeout" in result.message
    assert result.error is not None and result.error.line in (39, 40)


async def test_server_limit_is_status_limit(start_api: StartApi, path: Path) -> None:
    code = "while True:\n    print('x' * 1000)\n"
    result = await run_on(start_api(max_output_bytes=1000).url, whole(path, code))
    assert result.status == "limit" and result.truncated
    assert "OutputLimitExceeded" in result.message


async def test_missing_library_is_reported(start_api: StartApi, path: Path) -> None:
    result = await run_on(start_api().url, whole(path, "1"), libraries=["no_such_lib_zq"])
    assert result.status == "error" and result.error is not None
    assert result.error.type == "ModuleNotFoundError" and "--allow-install" in result.error.message


async def test_no_token_says_which_variable_to_set(
    start_api: StartApi, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = start_api()
    monkeypatch.delenv("CODEEXEC_API_TOKEN")
    result = await run_on(api.url, whole(path, "1"))
    assert result.status == "internal"
    assert "CODEEXEC_API_TOKEN" in result.message and "not set" in result.message
    assert "HTTP 401" in result.message


async def test_wrong_token_is_rejected_without_echoing_it(
    start_api: StartApi, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = start_api()
    monkeypatch.setenv("OTHER_EXEC_TOKEN", "not-the-token")
    result = await run_on(api.url, whole(path, "1"), token_env="OTHER_EXEC_TOKEN")
    assert result.status == "internal" and "rejected the token" in result.message
    assert "OTHER_EXEC_TOKEN" in result.message and "not-the-token" not in result.message


async def test_token_from_a_named_variable_read_at_run_time(
    start_api: StartApi, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = start_api()
    executor = HttpExecutor(api.url, token_env="TEAM_EXEC_TOKEN")
    try:
        assert (await executor.run(whole(path, "1"))).status == "internal"
        monkeypatch.setenv("TEAM_EXEC_TOKEN", TOKEN)
        assert (await executor.run(whole(path, "1"))).value == "1"
    finally:
        await executor.close()


async def test_token_that_cannot_be_a_header_is_reported(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEEXEC_API_TOKEN", "tökén")
    result = await scripted(contract("success")).run(whole(path, "1"))
    assert result.status == "internal" and "CODEEXEC_API_TOKEN" in result.message
    assert "tökén" not in result.message


async def test_oversized_selection_is_413(start_api: StartApi, path: Path) -> None:
    result = await run_on(start_api(max_body_bytes=500).url, whole(path, "x = 1\n" * 200))
    assert result.status == "internal"
    assert "too large" in result.message and "HTTP 413" in result.message


async def test_timeout_over_the_server_cap_says_what_to_lower(
    start_api: StartApi, path: Path
) -> None:
    result = await run_on(start_api().url, whole(path, "1", timeout=30.0))
    assert result.status == "internal" and "HTTP 422" in result.message
    assert "maximum of 5 s" in result.message and "codeexec.timeout" in result.message


async def test_queue_full_is_retried_once_then_reported(start_api: StartApi, path: Path) -> None:
    api = start_api(max_concurrency=1, queue_size=0, retry_after_s=1)
    sleeper = asyncio.create_task(run_on(api.url, whole(path, "import time\ntime.sleep(3)")))
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if (await client.get(f"{api.url}/healthz")).json()["running"] == 1:
                break
            await asyncio.sleep(0.02)
    started = time.monotonic()
    busy = await run_on(api.url, whole(path, "1"))
    assert time.monotonic() - started > 0.9  # waited for Retry-After once
    assert busy.status == "internal" and "busy" in busy.message and "HTTP 503" in busy.message
    assert (await sleeper).status == "ok"


async def test_cancel_drops_the_request_and_the_server_stops_the_run(
    start_api: StartApi, path: Path
) -> None:
    api = start_api(max_concurrency=1, queue_size=0)
    cancel = asyncio.Event()
    executor = HttpExecutor(api.url)
    try:
        task = asyncio.create_task(executor.run(whole(path, "import time\ntime.sleep(30)"), cancel))
        await asyncio.sleep(0.5)
        cancel.set()
        result = await asyncio.wait_for(task, 5)
    finally:
        await executor.close()
    assert result.status == "cancelled"
    async with httpx.AsyncClient() as client:
        for _ in range(250):
            if (await client.get(f"{api.url}/healthz")).json()["running"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (await client.get(f"{api.url}/healthz")).json()["running"] == 0


# --- servers that fail -------------------------------------------------------------------------


async def test_server_that_closes_the_connection(path: Path) -> None:
    with HangUpServer() as server:
        result = await run_on(server.url, whole(path, "1"))
    assert result.status == "internal" and "closed the connection" in result.message
    assert server.url in result.message and server.connections >= 1


async def test_unreachable_service_names_the_url(path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    result = await run_on(url, whole(path, "1"))
    assert result.status == "internal" and "Could not reach" in result.message
    assert f"{url}/execute" in result.message and "codeexec.http.url" in result.message


async def test_no_url_configured(path: Path) -> None:
    result = await run_on("", whole(path, "1"))
    assert result.status == "internal" and "codeexec.http.url" in result.message


async def test_not_an_http_url(path: Path) -> None:
    result = await run_on("ftp://example.test", whole(path, "1"))
    assert result.status == "internal" and "not an http(s) URL" in result.message


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, text="<html>hello</html>"), "malformed answer"),
        (httpx.Response(200, json={"output": "x"}), "malformed answer"),
        (httpx.Response(200, json={"status": "maybe"}), "malformed answer"),
        (httpx.Response(500, json={"error": "boom"}), "failed (HTTP 500: boom)"),
        (httpx.Response(404, text="not here"), "no /execute endpoint"),
        (httpx.Response(307, headers={"location": "https://x.test/"}), "redirected to"),
        (httpx.Response(429, headers={"retry-after": "120"}), "retry after 120 s"),
    ],
    ids=["html", "no-status", "bad-status", "500", "404", "redirect", "long-retry-after"],
)
async def test_bad_answers_give_clear_messages(
    path: Path, response: httpx.Response, expected: str
) -> None:
    seen: list[httpx.Request] = []
    result = await scripted(response, seen=seen).run(whole(path, "1"))
    assert result.status == "internal" and expected in result.message
    assert len(seen) == 1  # nothing retried, not even a 429 that asks for too long a wait


async def test_read_timeout_is_reported(path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    executor = HttpExecutor("http://exec.test", transport=httpx.MockTransport(handler))
    result = await executor.run(whole(path, "1", timeout=2.0))
    assert result.status == "internal" and "No answer" in result.message
    assert "17 s" in result.message  # the timeout plus the margin


async def test_busy_then_free_is_retried_after_retry_after(path: Path) -> None:
    seen: list[httpx.Request] = []
    busy = httpx.Response(503, headers={"retry-after": "0"}, json={"error": "busy"})
    result = await scripted(busy, contract("success", "ok\n"), seen=seen).run(whole(path, "1"))
    assert result.status == "ok" and result.stdout == "ok\n" and len(seen) == 2


async def test_request_follows_the_contract_and_token_goes_only_in_the_header(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEEXEC_API_TOKEN", TOKEN)
    seen: list[httpx.Request] = []
    executor = scripted(contract("success"), seen=seen)
    executor.libraries = ("numpy",)
    await executor.run(request_for(path, timeout=7.0))
    sent = seen[0]
    assert sent.method == "POST" and str(sent.url) == "http://exec.test/execute"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(sent.content) == {
        "code": "print('start')\ny = 1 / 0\nprint('never')\n",
        "language": "python",
        "environment": {"libraries": ["numpy"]},
        "execution_options": {"max_run_time": 7.0},
    }
    assert TOKEN not in str(sent.url) and TOKEN.encode() not in sent.content
    assert TOKEN not in repr(executor)


# --- other servers' tracebacks ---------------------------------------------------------------

EXEC_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app.py", line 10, in run\n'
    "    exec(code)\n"
    '  File "<string>", line 2, in <module>\n'
    "    y = 1 / 0\n"
    "        ~~^~~\n"
    "ZeroDivisionError: division by zero\n"
)
TEMPFILE_TRACEBACK = (
    "some output on stderr\n"
    "Traceback (most recent call last):\n"
    '  File "/tmp/tmpk2j3.py", line 2, in <module>\n'
    "    y = 1 / 0\n"
    "ZeroDivisionError: division by zero\n"
)
SYNTAX_TRACEBACK = (
    "  File \"<stdin>\", line 2\n    y = (1 +\n        ^\nSyntaxError: '(' was never closed\n"
)


async def test_other_servers_exec_traceback_is_mapped(path: Path) -> None:
    result = await scripted(contract("error", "start\n", EXEC_TRACEBACK)).run(request_for(path))
    error = result.error
    assert result.status == "error" and error is not None
    assert (error.type, error.message) == ("ZeroDivisionError", "division by zero")
    assert (error.line, error.column) == (ERROR_LINE, ERROR_COLUMN)
    assert error.frames[0].file == "/srv/app.py" and error.frames[0].line == 10
    assert f'File "{path}", line {ERROR_LINE}, in <module>' in error.traceback
    assert result.stderr == ""


async def test_other_servers_tempfile_traceback_is_mapped(path: Path) -> None:
    result = await scripted(contract("error", "", TEMPFILE_TRACEBACK)).run(request_for(path))
    assert result.error is not None and result.error.line == ERROR_LINE
    assert result.error.column == 8  # no carets: the line's first code character
    assert result.stderr == "some output on stderr\n"


def test_syntax_error_traceback_is_mapped() -> None:
    place = Placement("/work/f.py", 9, 4, ("x = 1", "y = (1 +"))
    files = snippet_files(SYNTAX_TRACEBACK, place)
    error = parse_traceback(SYNTAX_TRACEBACK, files, place)
    assert error is not None and error.type == "SyntaxError"
    assert (error.line, error.column) == (11, 8)
    assert error.traceback.startswith('  File "/work/f.py", line 11')


def test_library_frames_and_frozen_files_are_not_taken_for_the_snippet() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 1, in <module>\n'
        "    import json; json.loads('x')\n"
        '  File "/usr/lib/python3.11/json/__init__.py", line 1, in loads\n'
        "    return _default_decoder.decode(s)\n"
        '  File "<frozen importlib._bootstrap>", line 1, in _find\n'
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
    )
    place = Placement("/f.py", 99, 0, ("import json; json.loads('x')",))
    files = snippet_files(text, place)
    assert files == {"<string>"}
    error = parse_traceback(text, files, place)
    assert error is not None and error.type == "json.decoder.JSONDecodeError"
    assert error.line == 100 and [f.line for f in error.frames] == [100, 1, 1]


async def test_bare_error_text_still_gives_the_type(path: Path) -> None:
    answer = contract("error", "", "NameError: name 'x' is not defined\n")
    result = await scripted(answer).run(request_for(path))
    assert result.error is not None and result.error.type == "NameError"
    assert result.error.line is None


async def test_unparseable_error_text_is_kept(path: Path) -> None:
    result = await scripted(contract("error", "", "it broke\n")).run(request_for(path))
    assert result.status == "error" and result.error is not None
    assert result.error.message == "it broke"


async def test_other_servers_timeout_and_stderr_on_success(path: Path) -> None:
    timed_out = await scripted(contract("timeout", "", "Timed out")).run(request_for(path))
    assert timed_out.status == "timeout" and "codeexec.timeout" in timed_out.message
    ok = await scripted(contract("success", "out\n", "a warning\n")).run(request_for(path))
    assert (ok.status, ok.stdout, ok.stderr) == ("ok", "out\n", "a warning\n")


async def test_a_huge_remote_error_is_clipped_like_a_local_one(path: Path) -> None:
    # Another service's answer is text chosen by the code it ran: an 8 MB message must not
    # become an 8 MB diagnostic (runner.py clips local errors the same way).
    huge = "ValueError: " + "x" * 8_000_000 + "\n"
    result = await scripted(contract("error", "", huge)).run(request_for(path))
    assert result.status == "error" and result.error is not None
    assert result.error.type == "ValueError"
    assert len(result.error.message) < 20_000 and len(result.error.traceback) < 100_000
    assert "more characters" in result.error.message or "…" in result.error.message
