"""A session worker's output is block-buffered (worker.py): these check that buffering
loses, repeats and reorders nothing a user would notice, and that an unchanged document is
not sent again while tracebacks still show the current text."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult


@pytest.fixture(autouse=True)
def interruptible_children() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
async def session() -> AsyncIterator[SessionExecutor]:
    executor = SessionExecutor()
    try:
        yield executor
    finally:
        await executor.close()


def request_for(code: str, tmp_path: Path, **settings: Any) -> RunRequest:
    path = tmp_path / "snippet.py"
    return build_request(snippet.whole_file(code, str(path)), Settings(**settings), tmp_path)


async def run(
    executor: SessionExecutor, code: str, tmp_path: Path, **settings: object
) -> RunResult:
    return await executor.run(request_for(code, tmp_path, **settings))


async def test_a_big_output_arrives_whole_and_in_order(
    session: SessionExecutor, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "for i in range(30000):\n"
        "    print(f'out {i}')\n"
        "    if i % 10000 == 0:\n"
        "        print(f'err {i}', file=sys.stderr)\n"
    )
    result = await run(session, code, tmp_path, max_output_bytes=2_000_000)
    assert result.status == "ok" and not result.truncated
    assert result.stdout == "".join(f"out {i}\n" for i in range(30000))
    assert result.stderr == "err 0\nerr 10000\nerr 20000\n"
    # The next run starts clean: nothing of the last one is left in a buffer.
    assert (await run(session, "print('next')\n", tmp_path)).stdout == "next\n"


async def test_a_subprocess_does_not_overtake_what_was_printed_before_it(
    session: SessionExecutor, tmp_path: Path
) -> None:
    code = (
        "import os, subprocess, sys\n"
        "print('before')\n"
        "subprocess.run([sys.executable, '-c', 'print(\"child\")'])\n"
        "print('middle')\n"
        "os.system('echo shell')\n"
        "print('after')\n"
    )
    result = await run(session, code, tmp_path)
    assert result.stdout == "before\nchild\nmiddle\nshell\nafter\n"


async def test_a_fork_after_print_repeats_nothing_and_loses_nothing(
    session: SessionExecutor, tmp_path: Path
) -> None:
    code = (
        "import os\n"
        "print('parent before')\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print('child')\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('parent after')\n"
    )
    result = await run(session, code, tmp_path)
    assert result.stdout == "parent before\nchild\nparent after\n"


async def test_an_interrupted_run_reports_what_it_printed(
    session: SessionExecutor, tmp_path: Path
) -> None:
    code = "print('before the loop')\nwhile True:\n    pass\n"
    result = await run(session, code, tmp_path, timeout=1)
    assert result.status == "timeout"
    assert result.stdout == "before the loop\n"
    assert result.extra["session"]["state_lost"] is False


async def test_a_run_killed_after_ignoring_sigint_keeps_what_was_flushed(
    session: SessionExecutor, tmp_path: Path
) -> None:
    # Printed, then a loop that ignores the interrupt: the session is killed, and what was
    # printed more than a flush interval before survives (worker.py's documented bound).
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('printed early')\n"
        "while True:\n"
        "    pass\n"
    )
    result = await run(session, code, tmp_path, timeout=2)
    assert result.status == "timeout" and result.extra["session"]["state_lost"] is True
    assert result.stdout == "printed early\n"


async def test_a_slow_run_shows_its_output_while_it_goes(
    session: SessionExecutor, tmp_path: Path
) -> None:
    live = LiveOutput()
    code = "import time\nprint('first line')\ntime.sleep(4)\nprint('second line')\n"
    request = dataclasses.replace(request_for(code, tmp_path), live=live)
    running = asyncio.ensure_future(session.run(request))
    for _ in range(2000):  # polls LiveOutput as progress does; the run ends the loop
        if "first line" in live.stdout or running.done():
            break
        await asyncio.sleep(0.05)
    assert not running.done(), "the first line only arrived when the run ended"
    assert live.stdout == "first line\n"
    result = await running
    assert result.stdout == "first line\nsecond line\n"


async def test_an_unchanged_document_is_not_sent_again_and_tracebacks_follow_edits(
    session: SessionExecutor, tmp_path: Path
) -> None:
    path = str(tmp_path / "doc.py")

    async def run_line(document: str, line: int) -> RunResult:
        code = snippet.for_lines(document, path, line, line)
        return await session.run(build_request(code, Settings(), tmp_path))

    first = "x = 1\n1 / 0  # first version\n" + "y = 2\n" * 5000
    result = await run_line(first, 1)
    assert result.error is not None and result.error.line == 2
    assert "# first version" in result.error.traceback
    worker = next(iter(session._sessions.values())).worker
    assert worker is not None and worker.documents[path] is first

    sent: list[dict[str, object]] = []
    original = worker.send

    def record(message: dict[str, object]) -> None:
        sent.append(message)
        original(message)

    worker.send = record  # type: ignore[method-assign]
    again = await run_line(first, 1)
    assert "document" not in sent[-1] and sent[-1]["document_cached"] is True
    assert again.error is not None and "# first version" in again.error.traceback

    edited = first.replace("# first version", "# edited version")
    changed = await run_line(edited, 1)
    assert sent[-1]["document"] == edited
    assert changed.error is not None and "# edited version" in changed.error.traceback
    assert "# first version" not in changed.error.traceback


async def test_an_unused_early_worker_follows_a_new_interpreter_a_used_one_keeps_its_state(
    session: SessionExecutor, tmp_path: Path
) -> None:
    # The server warms a session at `initialize`, before the client's configuration is in:
    # if that configuration names another interpreter, the unused worker is simply replaced.
    other = tmp_path / "bin" / "python"
    other.parent.mkdir()
    other.symlink_to(sys.executable)
    request = request_for("import sys\nsys.executable\n", tmp_path)
    fields = (request.cwd, request.env, request.limits, request.sys_path)
    assert await session.warm(request.python, *fields)
    first_pid = session.pids()[(request.cwd, "standard")]
    assert await session.warm(str(other), *fields)
    second_pid = session.pids()[(request.cwd, "standard")]
    assert second_pid != first_pid
    result = await session.run(dataclasses.replace(request, python=str(other)))
    assert result.status == "ok" and result.value == repr(str(other))
    assert result.message == "" and result.extra["session"]["pid"] == second_pid
    # Used now: warming for the first interpreter keeps this worker and its state.
    assert await session.warm(request.python, *fields)
    assert session.pids()[(request.cwd, "standard")] == second_pid


async def test_stop_if_unused_spares_a_worker_that_ran(
    session: SessionExecutor, tmp_path: Path
) -> None:
    request = request_for("x = 1\n", tmp_path)
    assert await session.warm(request.python, request.cwd, request.env, request.limits)
    assert await session.stop_if_unused(request.cwd)
    assert (request.cwd, "standard") not in session.pids()
    assert (await session.run(request)).status == "ok"
    assert not await session.stop_if_unused(request.cwd)
    assert (await run(session, "x\n", tmp_path)).value == "1"


async def test_output_from_an_inspection_does_not_join_the_next_run(
    session: SessionExecutor, tmp_path: Path
) -> None:
    # A __repr__ that writes past the inspector's stdout swap, into the buffered stream.
    code = (
        "import sys\n"
        "class Noisy:\n"
        "    def __repr__(self):\n"
        "        sys.__stdout__.write('written by repr\\n')\n"
        "        return 'Noisy()'\n"
        "noisy = Noisy()\n"
    )
    request = request_for(code, tmp_path)
    assert (await session.run(request)).status == "ok"
    answer = await session.inspect(request, {"what": "variables"}, 10.0)
    assert answer.status == "ok", answer
    assert (await run(session, "print('next')\n", tmp_path)).stdout == "next\n"


async def test_tracebacks_show_the_buffer_after_user_code_emptied_linecache(
    session: SessionExecutor, tmp_path: Path
) -> None:
    """The worker skips re-registering an unchanged document, but only while linecache
    still holds it: code that clears the cache, or loads the saved file over it, gets the
    buffer's lines back on the next run of the same document."""
    path = tmp_path / "doc.py"
    path.write_text("# the saved file says something else\n" * 3)
    for call in ("clearcache()", "updatecache(__file__)"):
        document = f"import linecache\nlinecache.{call}\n1 / 0  # unsaved buffer line\n"

        async def run_lines(first: int, last: int, document: str = document) -> RunResult:
            code = snippet.for_lines(document, str(path), first, last)
            return await session.run(build_request(code, Settings(), tmp_path))

        assert (await run_lines(0, 1)).status == "ok"
        failed = await run_lines(2, 2)
        assert failed.error is not None and failed.error.line == 3
        assert "# unsaved buffer line" in failed.error.traceback, (call, failed.error.traceback)
