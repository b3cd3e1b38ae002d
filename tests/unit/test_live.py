"""LiveOutput: what progress and Show output read while a run goes, however the output
arrives (split mid-line, carriage-return updates, floods)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution import live as live_module
from codeexec_lsp.execution import session as session_module
from codeexec_lsp.execution.base import Executor, RunRequest
from codeexec_lsp.execution.jupyter.executor import JupyterExecutor
from codeexec_lsp.execution.live import TAIL_CHARS, LiveOutput, run_label
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.present_outputs import live_output_page


def test_a_line_split_across_chunks_is_one_line() -> None:
    live = LiveOutput()
    live.feed("stdout", "epoch 3/10 lo")
    assert live.last_line() == "epoch 3/10 lo"
    live.feed("stdout", "ss 0.41\nepo")
    assert live.last_line() == "epo"
    live.feed("stdout", "ch 4/10 loss 0.39\n")
    assert live.last_line() == "epoch 4/10 loss 0.39"
    assert live.stdout == "epoch 3/10 loss 0.41\nepoch 4/10 loss 0.39\n"


def test_a_tqdm_bar_shows_its_latest_state() -> None:
    live = LiveOutput()
    live.feed("stdout", "training\n")
    # tqdm writes to stderr: a carriage return, then the whole bar, no newline until done.
    for step in range(1, 4):
        live.feed("stderr", f"\r {step * 10}%|{'█' * step}     | {step}/10 [00:0{step}<00:07]")
    assert live.last_line() == "30%|███     | 3/10 [00:03<00:07]"
    live.feed("stderr", "\r100%|██████████| 10/10 [00:10<00:00]\n")
    assert live.last_line() == "100%|██████████| 10/10 [00:10<00:00]"
    assert live.stdout == "training\n"
    assert live.stderr.count("\r") == 4


def test_the_stream_written_last_gives_the_line_unless_it_shows_none() -> None:
    live = LiveOutput()
    live.feed("stdout", "from stdout\n")
    live.feed("stderr", "warning: from stderr\n")
    assert live.last_line() == "warning: from stderr"
    live.feed("stdout", "again stdout\n")
    assert live.last_line() == "again stdout"
    live.feed("stderr", "\n\n")  # nothing visible: the line stays
    assert live.last_line() == "again stdout"


def test_colour_codes_are_not_part_of_the_line() -> None:
    live = LiveOutput()
    live.feed("stdout", "\x1b[32mok\x1b[0m 5 passed\x1b[K\n")
    assert live.last_line() == "ok 5 passed"


def test_the_tail_is_bounded_and_says_how_much_it_dropped() -> None:
    live = LiveOutput()
    lines = [f"line {n}\n" for n in range(100_000)]
    for line in lines:
        live.feed("stdout", line)
    everything = "".join(lines)
    assert live.stdout == everything[-TAIL_CHARS:]
    assert live.omitted("stdout") == len(everything) - TAIL_CHARS
    assert live.last_line() == "line 99999"
    assert live.stderr == "" and live.omitted("stderr") == 0
    # Held between reads: never much more than twice the tail, however it was chunked.
    held = live_module._Tail()
    for line in lines:
        held.add(line)
        assert held.size <= 2 * TAIL_CHARS


def test_one_huge_chunk_is_cut_to_the_tail() -> None:
    live = LiveOutput()
    live.feed("stdout", "x" * (3 * TAIL_CHARS) + "\nend")
    assert len(live.stdout) == TAIL_CHARS
    assert live.stdout.endswith("\nend")
    assert live.last_line() == "end"


def test_a_very_long_line_shows_its_end() -> None:
    live = LiveOutput()
    live.feed("stdout", "a" * 10_000 + "b" * 10)
    assert live.last_line().endswith("b" * 10)
    assert len(live.last_line()) == live_module.LAST_LINE_WINDOW


def test_rich_outputs_and_waiting() -> None:
    live = LiveOutput()
    assert live.waiting_for is None and live.outputs == []
    live.waiting_for = "the run at lines 10–20"
    live.add_output({"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}})
    assert live.outputs[0]["data"] == {"text/plain": "x"}
    # Counted from `started` (the run's start), not from when someone asks.
    live.started -= 5
    assert live.elapsed() >= 5
    live.feed("stdout", "")
    assert live.stdout == "" and live.last_line() == ""


# --- executors feed it while the run goes (real processes, real kernels) -----------------

GATED = (
    "import os, time\n"
    "print('first é', flush=True)\n"
    "print('a warning', file=__import__('sys').stderr, flush=True)\n"
    "deadline = time.monotonic() + 60\n"
    "while not os.path.exists({gate!r}) and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "print('second')\n"
)


@pytest.fixture(autouse=True)
def interruptible_children() -> Iterator[None]:
    # Children inherit SIGINT's disposition; an in-process runner test may leave it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def gated_request(
    tmp_path: Path, name: str = "gated.py", gate: str = "go", **settings: Any
) -> RunRequest:
    """A run that prints, then waits until the file `gate` exists, then prints again."""
    code = GATED.format(gate=str(tmp_path / gate))
    path = tmp_path / name
    path.write_text(code)
    request = build_request(snippet.whole_file(code, str(path)), Settings(**settings), tmp_path)
    return dataclasses.replace(request, live=LiveOutput())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition` (a deadline only against hanging forever, not a timing check)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"never happened: {what}")


async def shows_output_mid_run(executor: Executor, tmp_path: Path, **settings: Any) -> None:
    request = gated_request(tmp_path, **settings)
    live = request.live
    assert live is not None
    running = asyncio.ensure_future(executor.run(request))
    try:
        await until(lambda: "a warning" in live.stderr and "first" in live.stdout, "output")
        assert not running.done()
        assert live.stdout == "first é\n"  # decoded, and nothing of the session's marker
        assert "second" not in live.stdout
        assert live.last_line() in ("first é", "a warning")
        (tmp_path / "go").touch()
        result = await running
    finally:
        (tmp_path / "go").touch()
        await asyncio.wait({running}, timeout=60)
    assert result.status == "ok", result.message
    assert result.stdout == "first é\nsecond\n"
    # Everything the run printed reached the watcher too, and nothing else did.
    assert live.stdout == result.stdout
    assert live.stderr == result.stderr == "a warning\n"
    assert live.last_line() == "second"


async def test_the_local_executor_feeds_output_as_it_comes(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        await shows_output_mid_run(executor, tmp_path)
    finally:
        await executor.close()


async def test_the_session_executor_feeds_output_as_it_comes(tmp_path: Path) -> None:
    executor = SessionExecutor()
    try:
        await shows_output_mid_run(executor, tmp_path)
        # The same worker's next run feeds its own watcher, from its own start.
        again = gated_request(tmp_path)
        result = await executor.run(again)
        assert again.live is not None and again.live.stdout == result.stdout
    finally:
        await executor.close()


async def test_unflushed_prints_reach_the_watcher_while_a_session_run_waits(
    tmp_path: Path,
) -> None:
    """The session worker buffers stdout in blocks but flushes it while a run goes: a print
    without flush=True still shows mid-run (as a terminal would show it)."""
    code = (
        "import os, time\n"
        "print('no flush asked')\n"
        f"while not os.path.exists({str(tmp_path / 'go')!r}):\n"
        "    time.sleep(0.02)\n"
    )
    (tmp_path / "quiet.py").write_text(code)
    request = dataclasses.replace(
        build_request(snippet.whole_file(code, str(tmp_path / "quiet.py")), Settings(), tmp_path),
        live=LiveOutput(),
    )
    live = request.live
    assert live is not None
    executor = SessionExecutor()
    try:
        running = asyncio.ensure_future(executor.run(request))
        await until(lambda: "no flush asked" in live.stdout, "the unflushed line")
        assert not running.done()
        (tmp_path / "go").touch()
        assert (await running).stdout == live.stdout == "no flush asked\n"
    finally:
        (tmp_path / "go").touch()
        await executor.close()


@pytest.mark.skipif(
    importlib.util.find_spec("ipykernel") is None
    or importlib.util.find_spec("jupyter_client") is None,
    reason="ipykernel / jupyter_client not installed: pip install -e '.[test]'",
)
async def test_the_jupyter_executor_feeds_output_and_figures_as_they_come(
    tmp_path: Path,
) -> None:
    executor = JupyterExecutor()
    try:
        await shows_output_mid_run(executor, tmp_path)
        code = (
            "from IPython.display import display, HTML\n"
            "display(HTML('<b>early</b>'))\n"
            f"import os, time\nwhile not os.path.exists({str(tmp_path / 'go2')!r}):\n"
            "    time.sleep(0.02)\n"
        )
        path = tmp_path / "display.py"
        path.write_text(code)
        request = dataclasses.replace(
            build_request(
                snippet.whole_file(code, str(path)), Settings(executor="jupyter"), tmp_path
            ),
            live=LiveOutput(),
        )
        live = request.live
        assert live is not None
        running = asyncio.ensure_future(executor.run(request))
        try:
            await until(lambda: bool(live.outputs), "a display_data output")
            assert not running.done()
            assert live.outputs[0]["data"]["text/html"] == "<b>early</b>"
        finally:
            (tmp_path / "go2").touch()
            result = await running
        assert result.status == "ok", result.message
        assert list(result.outputs) == live.outputs
        # A run queued behind a busy kernel says which run it waits for.
        busy = gated_request(tmp_path, "a.py", gate="go_a")
        queued = gated_request(tmp_path, "b.py")  # its gate "go" exists: it ends at once
        assert busy.live is not None and queued.live is not None
        running = [asyncio.ensure_future(executor.run(busy))]
        await until(lambda: "first" in busy.live.stdout, "the kernel run printing")  # type: ignore[union-attr]
        running.append(asyncio.ensure_future(executor.run(queued)))
        await until(lambda: queued.live.waiting_for is not None, "queued")  # type: ignore[union-attr]
        assert queued.live.waiting_for == "the run at lines 1–7 of a.py"
        (tmp_path / "go_a").touch()
        assert [r.status for r in await asyncio.gather(*running)] == ["ok", "ok"]
        assert queued.live.waiting_for is None
    finally:
        (tmp_path / "go_a").touch()
        await executor.close()


async def test_queued_runs_say_which_run_they_wait_for_as_the_queue_moves(
    tmp_path: Path,
) -> None:
    executor = SessionExecutor()
    first = gated_request(tmp_path, "a.py", gate="go_a")
    second = gated_request(tmp_path, "b.py", gate="go_b")
    code = "print('third ran')\n"
    (tmp_path / "c.py").write_text(code)
    third = dataclasses.replace(
        build_request(snippet.whole_file(code, str(tmp_path / "c.py")), Settings(), tmp_path),
        live=LiveOutput(),
    )
    lives = [request.live for request in (first, second, third)]
    assert all(live is not None for live in lives)
    first_live, second_live, third_live = lives  # type: ignore[misc]
    try:
        running = [asyncio.ensure_future(executor.run(first))]
        await until(lambda: "first" in first_live.stdout, "the first run printing")
        running.append(asyncio.ensure_future(executor.run(second)))
        await until(lambda: second_live.waiting_for is not None, "the second run queued")
        running.append(asyncio.ensure_future(executor.run(third)))
        await until(lambda: third_live.waiting_for is not None, "the third run queued")
        assert first_live.waiting_for is None
        assert second_live.waiting_for == "the run at lines 1–7 of a.py"
        assert third_live.waiting_for == "the run at lines 1–7 of a.py"
        assert second_live.stdout == third_live.stdout == ""
        (tmp_path / "go_a").touch()
        # The queue moved on: the second run goes, the third now waits for it.
        await until(lambda: "first" in second_live.stdout, "the second run printing")
        assert second_live.waiting_for is None
        assert third_live.waiting_for == "the run at lines 1–7 of b.py"
        (tmp_path / "go_b").touch()
        results = await asyncio.gather(*running)
        assert [result.status for result in results] == ["ok", "ok", "ok"]
        assert results[2].stdout == third_live.stdout == "third ran\n"
        assert third_live.waiting_for is None
    finally:
        (tmp_path / "go_a").touch()
        (tmp_path / "go_b").touch()
        await executor.close()


async def test_a_run_cancelled_while_queued_leaves_the_queue(tmp_path: Path) -> None:
    executor = SessionExecutor()
    busy = gated_request(tmp_path, "a.py")
    queued = gated_request(tmp_path, "b.py", gate="never")
    assert busy.live is not None and queued.live is not None
    cancel = asyncio.Event()
    try:
        first = asyncio.ensure_future(executor.run(busy))
        await until(lambda: "first" in busy.live.stdout, "the first run printing")  # type: ignore[union-attr]
        second = asyncio.ensure_future(executor.run(queued, cancel))
        await until(lambda: queued.live.waiting_for is not None, "queued")  # type: ignore[union-attr]
        cancel.set()
        assert (await second).status == "cancelled"
        assert queued.live.waiting_for is None
        assert executor._sessions[(str(tmp_path), "standard")].queued == []
        (tmp_path / "go").touch()
        assert (await first).status == "ok"
    finally:
        (tmp_path / "go").touch()
        await executor.close()


def test_the_session_feed_cuts_the_marker_even_split_across_chunks() -> None:
    marker = b"\x00codeexec-end:0123456789abcdef\x00"
    live = LiveOutput()
    feed = session_module._LiveFeed(live, "stdout", marker)
    payload = "naïve ✓ done\n".encode() + b"a\x00b\n" + marker + b"idle output after the run"
    # Every split point: a character or the marker cut in two must not show garbled.
    for cut in range(1, len(payload)):
        live = LiveOutput()
        feed = session_module._LiveFeed(live, "stdout", marker)
        feed.feed(payload[:cut])
        feed.feed(payload[cut:])
        assert live.stdout == "naïve ✓ done\na\x00b\n", cut
    # No marker ever (the worker was killed): what was held back still shows at the end.
    live = LiveOutput()
    feed = session_module._LiveFeed(live, "stdout", marker)
    feed.feed(b"last words\x00codeexec")
    assert live.stdout == "last words"
    feed.finish()
    assert live.stdout == "last words\x00codeexec"


# --- what Show output and progress make of it ------------------------------------------


def test_the_page_of_a_run_in_progress_says_it_is_running_and_escapes_its_output() -> None:
    png = {
        "output_type": "display_data",
        "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480>"},
        "metadata": {},
    }
    page = live_output_page(
        "train.py, lines 3–9", 12.4, "epoch 1 <b>\n", "warn & go\n", [png], omitted=(5000, 0)
    )
    assert "running for 12 s — output so far" in page
    assert "epoch 1 &lt;b&gt;" in page and "warn &amp; go" in page
    assert '<img alt="figure 1" src="data:image/png;base64,iVBORw0KGgo=">' in page
    assert "the first 5,000 characters are not shown" in page
    assert "Content-Security-Policy" in page
    queued = live_output_page("t", 3, "", "", waiting_for="the run at lines 1–4 of a.py")
    assert "queued for 3 s, waiting for the run at lines 1–4 of a.py" in queued
    assert "running for" not in queued
    assert "No output yet." in live_output_page("t", 0, "", "")
    # The browser reloads a live page (the server rewrites it); an ended one stays put.
    assert '<meta http-equiv="refresh" content="2">' in page
    ended = live_output_page("t", 61, "started\n", "", ended=True)
    assert "ended after 61 s without a result to show" in ended
    assert "refresh" not in ended and "started" in ended


def test_a_queued_run_names_the_run_it_waits_for() -> None:
    assert run_label(9, 19, "/w/train.py", "/w/train.py") == "the run at lines 10–20"
    assert run_label(4, 4, "/w/train.py", "/w/other.py") == "the run at line 5 of train.py"
