"""Promises that users and operators rely on most, each guarded by a test that fails when the
promise is broken on purpose (issue 15: found unguarded by mutation testing).

- A fix candidate that raises a *different* exception is not a fix.
- The /execute server refuses every token that is not exactly the configured one.
- `configure_logging` alone redacts secrets, from the very first line logged.
- Output that overflows on stderr only still marks the run `truncated`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.fix import FixRequest, fix
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Executor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.llm.factory import make_chat_model
from codeexec_lsp.logs import configure_logging
from codeexec_lsp.results import RunResult
from tests.fakes.api_fixtures import TOKEN, StartApi, start_api_fixture  # noqa: F401
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer

# --- a fix that trades one exception for another is not verified --------------------------

BUGGY = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([]))\n"
# Gets rid of the ZeroDivisionError by raising a TypeError instead: len(None).
TYPE_ERROR_FIX = "def mean(values):\n    return sum(values) / len(values or None)\n"
GOOD_FIX = "def mean(values):\n    return sum(values) / len(values) if values else 0.0\n"


def fenced(code: str) -> str:
    return f"Here is the fix:\n\n```python\n{code}```\n"


async def run_lines_of(path: Path, document: str, first: int, last: int) -> RunResult:
    """What the server does to verify a candidate: those lines, in a fresh local process."""
    lines = snippet.for_lines(document, str(path), first, last)
    return await LocalExecutor().run(build_request(lines, Settings(), path.parent))


async def failing_run(path: Path) -> RunResult:
    await asyncio.to_thread(path.write_text, BUGGY)
    result = await run_lines_of(path, BUGGY, 0, 4)
    assert result.error is not None and result.error.type == "ZeroDivisionError"
    return result


async def fix_with_answers(
    fake_llm: FakeLlmServer, path: Path, *answers: str, attempts: int
) -> tuple[bool, bool, int, str | None]:
    """Fix the function of BUGGY with the model's scripted answers; (verified, should_apply,
    attempts, the candidate) of the outcome."""
    last_run = await failing_run(path)
    fake_llm.script(*(Answer(fenced(answer)) for answer in answers))
    model = make_chat_model("openai", fake_llm.openai_base_url, "fake-model", None, 10)

    async def run_lines(document: str, first: int, last: int) -> RunResult:
        return await run_lines_of(path, document, first, last)

    request = FixRequest(
        document=BUGGY,
        path=str(path),
        first_line=0,
        last_line=1,
        last_run=last_run,
        run_span=(0, 4),
        attempts=attempts,
    )
    outcome = await fix(model, request, run_lines)
    return outcome.verified, outcome.should_apply, outcome.attempts, outcome.candidate


async def test_candidate_raising_a_new_exception_is_neither_verified_nor_applied(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    verified, should_apply, attempts, candidate = await fix_with_answers(
        fake_llm, tmp_path / "mean.py", TYPE_ERROR_FIX, TYPE_ERROR_FIX, attempts=2
    )
    assert (verified, should_apply, attempts) == (False, False, 2)
    assert candidate is not None and "values or None" in candidate  # offered only as unverified
    first_prompt, second_prompt = (str(r.body) for r in fake_llm.model_requests)
    assert "ZeroDivisionError" in first_prompt and "TypeError" not in first_prompt
    # The model is told what its candidate did instead.
    assert "TypeError" in second_prompt and "values or None" in second_prompt


async def test_after_a_candidate_raising_a_new_exception_a_clean_one_is_verified(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """The same loop accepts the next candidate once it really runs clean (so the test above
    fails for the right reason, not because nothing is ever verified)."""
    verified, should_apply, attempts, candidate = await fix_with_answers(
        fake_llm, tmp_path / "mean.py", TYPE_ERROR_FIX, GOOD_FIX, attempts=2
    )
    assert (verified, should_apply, attempts) == (True, True, 2)
    assert candidate == GOOD_FIX.rstrip("\n")


# --- the /execute server compares the whole token --------------------------------------------


def _wrong_tokens() -> dict[str, str]:
    last = TOKEN[-1]
    return {
        "same-length": "x" * len(TOKEN),
        "last-character": TOKEN[:-1] + ("0" if last != "0" else "1"),
        "first-character": ("X" if TOKEN[0] != "X" else "Y") + TOKEN[1:],
        "prefix": TOKEN[:-1],
    }


@pytest.mark.parametrize("name", sorted(_wrong_tokens()))
def test_a_token_close_to_the_real_one_is_refused_and_the_code_never_runs(
    start_api: StartApi, name: str
) -> None:
    """A strict run can leave nothing behind outside its own throwaway work dir, so what the
    code did is seen in the answer: refused, nothing printed; the real token runs it."""
    api = start_api()
    code = "print('the code ran')\n"
    with httpx.Client(timeout=20) as client:

        def post(token: str) -> httpx.Response:
            return client.post(
                f"{api.url}/execute",
                json={"code": code},
                headers={"Authorization": f"Bearer {token}"},
            )

        wrong = post(_wrong_tokens()[name])
        right = post(TOKEN)
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    assert "the code ran" not in wrong.text
    assert right.status_code == 200 and right.json()["output"] == "the code ran\n"


# --- logging redacts from the first line, with configure_logging alone ------------------------

CANARY = "sk-canary-promise-4f2a9e1b7c3d"
NAMED_CANARY = "named-canary-7d31c0a9e5"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("restore_root_logger")
def test_configure_logging_alone_redacts_every_handler_from_the_first_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # a default secret: no name given for it
    monkeypatch.setenv("TEAM_LLM_CREDENTIAL", NAMED_CANARY)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging(verbose=True, secret_env_names=["TEAM_LLM_CREDENTIAL"])
    # The very first lines, before anything else (settings, initialized) has happened:
    logging.getLogger("codeexec_lsp.server").warning("starting with key %s", CANARY)
    logging.getLogger("httpcore.http11").debug("send_request_headers: %s", NAMED_CANARY)
    try:
        raise RuntimeError(f"failed with {NAMED_CANARY}")
    except RuntimeError:
        logging.getLogger("codeexec_lsp").exception("request failed (%s)", CANARY)
    # Every handler the root logger has now gets a record that carries the secret itself.
    handlers = logging.getLogger().handlers
    assert handlers
    for handler in handlers:
        record = logging.LogRecord("direct", logging.ERROR, __file__, 1, CANARY, None, None)
        handler.handle(record)
    written = stderr.getvalue()
    assert written.count("[REDACTED]") >= 4 + len(handlers)
    assert "starting with key" in written and "RuntimeError: failed with" in written
    assert CANARY not in written and NAMED_CANARY not in written


# --- truncated counts stderr as well as stdout --------------------------------------------------


@pytest.fixture(params=["local", "session"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    chosen: Executor = LocalExecutor() if request.param == "local" else SessionExecutor()
    try:
        yield chosen
    finally:
        close = getattr(chosen, "close", None)
        if close is not None:
            await close()


async def test_only_stderr_overflowing_marks_the_run_truncated(
    executor: Executor, tmp_path: Path
) -> None:
    code = "import sys\nprint('short')\nsys.stderr.write('e' * 5000 + 'END')\n"
    path = tmp_path / "noisy.py"
    path.write_text(code)
    request = build_request(
        snippet.whole_file(code, str(path)), Settings(max_output_bytes=1000), tmp_path
    )
    result = await executor.run(request)
    assert result.status == "ok" and result.stdout == "short\n"
    assert (
        len(result.stderr) < 2000 and result.stderr.endswith("END") and "omitted" in result.stderr
    )
    assert result.truncated is True


# --- over a limit, the /execute server answers JSON that says which limit ---------------------


def test_a_body_that_stops_arriving_gets_a_408_naming_the_limit(start_api: StartApi) -> None:
    api = start_api(body_timeout_s=1.0)
    head = (
        "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    reply = b""
    with socket.create_connection(("127.0.0.1", api.port), timeout=20) as stalled:
        stalled.sendall(head + b'{"code": "')
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = stalled.recv(65536)
            if not chunk:
                break
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), reply[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "error": "The request body did not arrive within 1 s; send it all at once",
        "code": "body_timeout",
        "detail": {"body_timeout_s": 1.0},
    }


def test_a_refused_token_is_told_apart_from_a_missing_one(start_api: StartApi) -> None:
    api = start_api()
    with httpx.Client(timeout=20) as client:

        def post(headers: dict[str, str]) -> httpx.Response:
            return client.post(f"{api.url}/execute", json={"code": "1"}, headers=headers)

        missing = post({})
        wrong = post({"Authorization": "Bearer " + "x" * len(TOKEN)})
        spaced = post({"Authorization": f"Bearer  {TOKEN}"})  # an extra blank is no new token
    assert missing.json() == {
        "error": "Missing token: send the header `Authorization: Bearer <token>`",
        "code": "unauthorized",
    }
    assert missing.headers["www-authenticate"] == 'Bearer realm="codeexec"'
    assert wrong.json() == {"error": "Invalid token", "code": "unauthorized"}
    assert wrong.headers["www-authenticate"] == 'Bearer realm="codeexec", error="invalid_token"'
    assert spaced.status_code == 200
