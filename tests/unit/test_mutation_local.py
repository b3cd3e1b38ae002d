"""The local executor's edges found unguarded by mutation testing (tools/MUTATION.md,
local.py): what a watcher of a run in progress gets when the code writes bytes that are
not UTF-8, a run at the output hard cap and one byte past it, and closing an executor
whose pre-started child failed, was cancelled, is still starting or is ready."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution import sandbox
from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.execution.local import LocalExecutor, _read_result, result_cap
from codeexec_lsp.execution.sandbox import ProcessPlan, process_plan
from codeexec_lsp.results import RunResult
from tests.pythons import python_another_user_can_run

WRITES_BAD_BYTES = (
    "import sys\n"
    "sys.stdout.buffer.write(b'before \\xff\\xfe after\\n')\n"
    "sys.stdout.buffer.write('split é'.encode()[:-1])\n"
    "sys.stdout.flush()\n"
    "sys.stdout.buffer.write('split é'.encode()[-1:] + b'\\n')\n"
)


async def test_a_watcher_gets_bytes_that_are_not_utf8_as_replacement_characters(
    tmp_path: Path,
) -> None:
    source = tmp_path / "main.py"
    source.write_text(WRITES_BAD_BYTES)
    request = build_request(snippet.whole_file(WRITES_BAD_BYTES, str(source)), Settings(), tmp_path)
    live = LiveOutput()
    executor = LocalExecutor()
    try:
        result = await executor.run(replace(request, live=live))
    finally:
        await executor.close()
    assert result.status == "ok", result
    assert result.stdout == "before \ufffd\ufffd after\nsplit é\n"
    assert live.stdout == result.stdout
    assert live.last_line() == "split é"


# --- the output hard cap: exactly at it the run goes on, one byte past it stops ----------

MAX_OUTPUT_BYTES = 100  # the hard cap is 10 × this: 1,000 bytes, stdout and stderr together
HARD_CAP_MESSAGE = (
    "Stopped: the code printed more than 1,000 bytes (10 × codeexec.maxOutputBytes). "
    "Print less, or raise maxOutputBytes."
)


def prints_then_waits(stdout_bytes: int, stderr_bytes: int) -> str:
    """Code that prints this much on each stream, then waits to be stopped: the run ends
    by the server's choice only, never by racing the code's own end."""
    return (
        "import sys, time\n"
        f"sys.stdout.write('o' * {stdout_bytes - 1} + '\\n')\n"
        "sys.stdout.flush()\n"
        f"sys.stderr.write('e' * {stderr_bytes - 1} + '\\n')\n"
        "sys.stderr.flush()\n"
        "time.sleep(120)\n"
    )


async def until(check: Callable[[], bool], pause: float, turns: int = 100_000) -> None:
    """Poll `check` every `pause` seconds (0: every turn of the event loop); the bound on
    the turns only stops a hang."""
    for _ in range(turns):
        if check():
            return
        await asyncio.sleep(pause)
    raise AssertionError("never happened")


def capped_request(code: str, tmp_path: Path, timeout: float) -> RunRequest:
    source = tmp_path / "main.py"
    source.write_text(code)
    settings = Settings(max_output_bytes=MAX_OUTPUT_BYTES, timeout=timeout)
    return build_request(snippet.whole_file(code, str(source)), settings, tmp_path)


@pytest.mark.timeout(90)
async def test_output_of_exactly_the_hard_cap_does_not_stop_the_run(tmp_path: Path) -> None:
    """600 bytes on stdout and 400 on stderr are the cap exactly: the run is not stopped
    for its output. Once the watcher has every byte (the server fed it after checking the
    cap), the run is cancelled: that is the only thing that may stop it."""
    request = capped_request(prints_then_waits(600, 400), tmp_path, timeout=60)
    assert request.limits.output_hard_cap == 1000
    live, cancel = LiveOutput(), asyncio.Event()
    executor = LocalExecutor()
    try:
        running = asyncio.create_task(executor.run(replace(request, live=live), cancel))
        await until(
            lambda: running.done() or (len(live.stdout), len(live.stderr)) == (600, 400), 0.01
        )
        cancel.set()
        result = await running
    finally:
        await executor.close()
    assert (result.status, result.message) == ("cancelled", "Cancelled: the run was stopped.")
    assert result.truncated  # each stream is over maxOutputBytes, not the run over the cap
    assert result.stdout.startswith("o" * 50) and result.stderr.startswith("e" * 50)


@pytest.mark.timeout(90)
async def test_one_byte_past_the_hard_cap_stops_the_run_and_says_why(tmp_path: Path) -> None:
    """600 + 401 bytes: one past the cap, counting both streams, stops the run at once
    (long before its timeout) with the limit status and the message naming the setting."""
    result = await LocalExecutor().run(
        capped_request(prints_then_waits(600, 401), tmp_path, timeout=30)
    )
    assert (result.status, result.message) == ("limit", HARD_CAP_MESSAGE), result
    assert result.error is None and result.truncated
    assert result.stdout.startswith("o" * 50) and result.stdout.endswith("o" * 49 + "\n")
    assert result.stderr.startswith("e" * 50) and result.stderr.endswith("e" * 49 + "\n")


# --- closing an executor whose pre-started child failed, was cancelled, or is ready ------


def my_children() -> set[int]:
    """Processes whose parent is this one (zombies included: a child not reaped is left)."""
    mine: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            if int(stat.rpartition(")")[2].split()[1]) == os.getpid():
                mine.add(int(entry.name))
    return mine


def my_cgroup_leaves() -> set[Path]:
    """The pids and memory cgroups this process made for its children (sandbox.py names
    them after the server's pid)."""
    plan = process_plan()
    prefix = f"{os.getpid()}-"
    return {
        leaf
        for parent in (plan.cgroup_parent, plan.memory_parent)
        if parent is not None and parent.is_dir()
        for leaf in parent.iterdir()
        if leaf.name.startswith(prefix)
    }


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def simple_request(tmp_path: Path, python: str | None = None) -> RunRequest:
    code = "6 * 7\n"
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    return request if python is None else replace(request, python=python)


def pending_spares(executor: LocalExecutor) -> list[asyncio.Task[Any]]:
    """The children the executor is starting ahead of the next run (white box: nothing
    else shows them, and closing them is what these tests are about)."""
    return list(executor._spares.values())


@pytest.mark.timeout(90)
async def test_closing_after_a_pre_start_failed_raises_nothing_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    children, leaves = my_children(), my_cgroup_leaves()
    missing = str(tmp_path / "no-such-python")
    executor = LocalExecutor(prestart=True)
    for _ in range(2):  # the second run takes the failed spare, and says the same
        result = await executor.run(simple_request(tmp_path, missing))
        assert result.status == "internal" and repr(missing) in result.message, result
    spares = pending_spares(executor)
    assert len(spares) == 1
    await asyncio.wait(spares)
    assert isinstance(spares[0].exception(), FileNotFoundError)
    await executor.close()  # must not raise the start's error again
    assert pending_spares(executor) == []
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


@pytest.mark.timeout(90)
async def test_closing_after_a_pre_start_was_cancelled_raises_nothing_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    children, leaves = my_children(), my_cgroup_leaves()
    executor = LocalExecutor(prestart=True)
    running = asyncio.create_task(executor.run(simple_request(tmp_path)))
    await until(lambda: bool(pending_spares(executor)), 0)
    (spare,) = pending_spares(executor)
    assert spare.cancel()  # still starting: the interpreter cannot be up yet
    result = await running
    assert (result.status, result.value) == ("ok", "42"), result
    await asyncio.wait([spare])
    assert spare.cancelled()
    await executor.close()  # must not raise the cancellation
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


@pytest.mark.timeout(90)
async def test_closing_while_a_pre_start_is_under_way_stops_it_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    children, leaves = my_children(), my_cgroup_leaves()
    executor = LocalExecutor(prestart=True)
    running = asyncio.create_task(executor.run(simple_request(tmp_path)))
    await until(lambda: bool(pending_spares(executor)), 0)
    (spare,) = pending_spares(executor)
    assert not spare.done()
    await executor.close()
    assert spare.done()
    result = await running  # the run's own child is not the spare: it finishes
    assert (result.status, result.value) == ("ok", "42"), result
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


@pytest.mark.timeout(90)
async def test_closing_discards_a_ready_pre_started_child_completely(tmp_path: Path) -> None:
    """The child waiting for the next run is killed with its process group, reaped, its
    result pipe closed and its cgroups removed."""
    children, leaves = my_children(), my_cgroup_leaves()
    executor = LocalExecutor(prestart=True)
    result = await executor.run(simple_request(tmp_path))
    assert (result.status, result.value) == ("ok", "42"), result
    (spare,) = pending_spares(executor)
    child = await spare
    await child.adopted
    pid, pipe = child.process.pid, child.result_read
    pipe_link = os.readlink(f"/proc/self/fd/{pipe}")
    own_leaves = {
        leaf for leaf in (child.guard.cgroup, child.guard.memory_cgroup) if leaf is not None
    }
    assert not gone(pid) and child.process.returncode is None
    await executor.close()
    assert gone(pid) and group_gone(pid)  # reaped, and nothing of its group is left
    assert child.process.returncode is not None
    with contextlib.suppress(FileNotFoundError):  # the number may serve another file now
        assert os.readlink(f"/proc/self/fd/{pipe}") != pipe_link
    assert not any(leaf.exists() for leaf in own_leaves)
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


# --- which pre-started child serves a run ------------------------------------------------

SHOWS_WHERE_IT_RUNS = (
    "import os, sys\n(os.getpid(), os.getcwd(), os.environ.get('CODEEXEC_MARK'), sys.executable)\n"
)


def where_request(folder: Path, mark: str) -> RunRequest:
    source = folder / "main.py"
    source.write_text(SHOWS_WHERE_IT_RUNS)
    request = build_request(
        snippet.whole_file(SHOWS_WHERE_IT_RUNS, str(source)), Settings(), folder
    )
    return replace(request, env={**request.env, "CODEEXEC_MARK": mark})


def where(result: RunResult) -> tuple[int, str, str, str]:
    """The child's pid, folder, mark and interpreter, from the run's value."""
    assert result.status == "ok" and result.value is not None, result
    pid, folder, mark, python = ast.literal_eval(result.value)
    return pid, folder, mark, python


@pytest.mark.timeout(90)
async def test_the_pre_started_child_serves_the_next_run_as_a_fresh_one_would(
    tmp_path: Path,
) -> None:
    """The child started ahead for the same interpreter, folder and environment is the one
    that runs the next request, and it runs it where a fresh child would."""
    children, leaves = my_children(), my_cgroup_leaves()
    request = where_request(tmp_path, "first")
    executor = LocalExecutor(prestart=True)
    try:
        first = where(await executor.run(request))
        (spare,) = pending_spares(executor)
        spare_pid = (await spare).process.pid
        second = where(await executor.run(request))
    finally:
        await executor.close()
    assert first[1:] == (str(tmp_path), "first", first[3]) and first[3]
    assert second == (spare_pid, *first[1:])
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


@pytest.mark.timeout(90)
async def test_a_child_started_for_another_folder_or_environment_is_not_used(
    tmp_path: Path,
) -> None:
    children, leaves = my_children(), my_cgroup_leaves()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    executor = LocalExecutor(prestart=True)
    try:
        await executor.run(where_request(tmp_path, "here"))
        (spare_here,) = pending_spares(executor)
        here_pid = (await spare_here).process.pid
        moved = where(await executor.run(where_request(elsewhere, "here")))
        assert moved[1:3] == (str(elsewhere), "here") and moved[0] != here_pid
        remarked = where(await executor.run(where_request(tmp_path, "other")))
        assert remarked[1:3] == (str(tmp_path), "other") and remarked[0] != here_pid
    finally:
        await executor.close()  # the spare for each of the three keys goes
    assert gone(here_pid)
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


@pytest.mark.timeout(90)
async def test_a_pre_started_child_that_died_while_waiting_is_replaced(tmp_path: Path) -> None:
    children, leaves = my_children(), my_cgroup_leaves()
    request = where_request(tmp_path, "mark")
    executor = LocalExecutor(prestart=True)
    try:
        await executor.run(request)
        (spare,) = pending_spares(executor)
        dead = await spare
        await dead.adopted
        dead_leaves = {
            leaf for leaf in (dead.guard.cgroup, dead.guard.memory_cgroup) if leaf is not None
        }
        os.kill(dead.process.pid, signal.SIGKILL)
        await asyncio.wait_for(dead.process.wait(), 60)
        replaced = where(await executor.run(request))
    finally:
        await executor.close()
    assert replaced[1:3] == (str(tmp_path), "mark") and replaced[0] != dead.process.pid
    assert not any(leaf.exists() for leaf in dead_leaves)  # the dead one was discarded
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


@pytest.mark.timeout(90)
async def test_output_ending_inside_a_character_reaches_the_watcher_as_the_result_has_it(
    tmp_path: Path,
) -> None:
    """The watcher's decoder is flushed at the end of the stream: an unfinished character
    there shows as one replacement character, as in the result."""
    code = (
        "import sys\n"
        "sys.stdout.buffer.write(b'cut \\xe2\\x82')\n"
        "sys.stderr.buffer.write(b'err \\xe2\\x82')\n"
    )
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    live = LiveOutput()
    result = await LocalExecutor().run(replace(request, live=live))
    assert (result.status, result.stdout, result.stderr) == ("ok", "cut \ufffd", "err \ufffd")
    assert (live.stdout, live.stderr) == (result.stdout, result.stderr)


# --- without a cgroup: the supervisor counts the run's processes -------------------------

FORKS_PAST_SIXTEEN = (
    "import os, time\n"
    "for _ in range(100):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(60)\n"
    "        os._exit(0)\n"
    "    time.sleep(0.005)\n"
    "'all forked'\n"
)


@pytest.fixture
def supervisor_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without a pids cgroup (or a uid of the run's own): the server's
    supervisor watches the child's process tree and kills it past the limit."""
    monkeypatch.setattr(sandbox, "process_plan", lambda: ProcessPlan("supervisor"))


def limited_request(code: str, tmp_path: Path, max_processes: int) -> RunRequest:
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    return replace(request, limits=replace(request.limits, max_processes=max_processes))


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("supervisor_only")
async def test_under_the_supervisor_a_run_forking_past_the_limit_is_stopped(
    tmp_path: Path,
) -> None:
    result = await LocalExecutor().run(limited_request(FORKS_PAST_SIXTEEN, tmp_path, 16))
    # Killed at once, not interrupted first: a fork bomb gets no grace to report a line.
    assert (result.status, result.error) == ("limit", None), result
    assert result.message.startswith("Process limit: the code tried to run more than 16 ")
    assert result.extra["sandbox"]["processes"]["mechanism"] == "supervisor", result.extra


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("supervisor_only")
async def test_under_the_supervisor_a_run_within_the_limit_is_not_stopped(
    tmp_path: Path,
) -> None:
    """Several watches of the tree (one each 20 ms) find the run within its limit."""
    code = "import time\ntime.sleep(0.5)\n'slept'\n"
    result = await LocalExecutor().run(limited_request(code, tmp_path, 16))
    assert (result.status, result.value, result.message) == ("ok", "'slept'", ""), result


@pytest.mark.timeout(90)
async def test_under_the_supervisor_the_box_is_reported_from_the_launchers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a cgroup the runner (the subreaper) writes a "sandbox" line of its own after
    the launcher's: the box the user is shown is still the launcher's, as with a cgroup."""
    request = simple_request(tmp_path)
    with_cgroup = await LocalExecutor().run(request)
    monkeypatch.setattr(sandbox, "process_plan", lambda: ProcessPlan("supervisor"))
    supervised = await LocalExecutor().run(request)
    assert (supervised.status, supervised.value) == ("ok", "42"), supervised
    assert supervised.extra["sandbox"]["processes"]["mechanism"] == "supervisor"
    for layer in ("profile", "filesystem", "network", "mounts", "notes", "run_as"):
        assert supervised.extra["sandbox"][layer] == with_cgroup.extra["sandbox"][layer], layer


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("supervisor_only")
async def test_under_the_supervisor_closing_discards_a_ready_pre_started_child(
    tmp_path: Path,
) -> None:
    children = my_children()
    executor = LocalExecutor(prestart=True)
    result = await executor.run(simple_request(tmp_path))
    assert (result.status, result.value) == ("ok", "42"), result
    (spare,) = pending_spares(executor)
    child = await spare
    assert child.guard.tracks_tree and child.guard.cgroup is None
    await executor.close()
    assert gone(child.process.pid) and group_gone(child.process.pid)
    assert my_children() <= children


# The child leaves the run's session and process group, forks, and its child sleeps on
# after the run: without a cgroup, only the runner as a subreaper finds it at its exit.
ESCAPES_WITH_SETSID = (
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open('escaped.tmp', 'w').write(str(os.getpid()))\n"
    "        os.rename('escaped.tmp', 'escaped.pid')\n"
    "        time.sleep(300)\n"
    "    os._exit(0)\n"
    "while not os.path.exists('escaped.pid'):\n"
    "    time.sleep(0.01)\n"
    "'parent done'\n"
)


def alive(pid: int) -> bool:
    """Running or stopped; a zombie is dead, only not yet reaped by its new parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("supervisor_only")
async def test_under_the_supervisor_a_process_that_left_the_run_goes_with_it(
    tmp_path: Path,
) -> None:
    result = await LocalExecutor().run(limited_request(ESCAPES_WITH_SETSID, tmp_path, 16))
    assert (result.status, result.value) == ("ok", "'parent done'"), result
    escaped = int((tmp_path / "escaped.pid").read_text())
    await until(lambda: not alive(escaped), 0.05, turns=200)


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("supervisor_only")
async def test_under_the_supervisor_a_missing_interpreter_is_reported(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-python")
    result = await LocalExecutor().run(simple_request(tmp_path, missing))
    assert result.status == "internal" and repr(missing) in result.message, result
    assert (result.executor, result.interpreter) == ("local", missing), result


# --- a run ends with its result even when something of it lingers -----------------------


@pytest.mark.timeout(60)
async def test_a_thread_left_running_does_not_keep_the_result_from_the_user(
    tmp_path: Path,
) -> None:
    """The interpreter waits for a non-daemon thread at its exit; the server gives it a
    moment after the result, then ends the run with the result it has."""
    code = (
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()\n"
        "'returned'\n"
    )
    result = await LocalExecutor().run(limited_request(code, tmp_path, 256))
    assert (result.status, result.value) == ("ok", "'returned'"), result


@pytest.mark.timeout(60)
async def test_a_run_given_a_cancel_event_that_is_never_set_ends_normally(
    tmp_path: Path,
) -> None:
    result = await LocalExecutor().run(simple_request(tmp_path), asyncio.Event())
    assert (result.status, result.value, result.message) == ("ok", "42", ""), result


# The escaped process keeps the run's stdout and stderr open for as long as it sleeps.
ESCAPES_HOLDING_THE_PIPES = ESCAPES_WITH_SETSID.replace("time.sleep(300)", "time.sleep(120)")


@pytest.mark.timeout(60)
async def test_without_any_process_bound_an_escapee_holding_the_pipes_does_not_hold_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the process group to kill (no cgroup, no subreaper), a process that left
    the group lives on with the run's pipes open: the run still ends with its result."""
    monkeypatch.setattr(sandbox, "process_plan", lambda: ProcessPlan("group"))
    try:
        result = await LocalExecutor().run(
            limited_request(ESCAPES_HOLDING_THE_PIPES, tmp_path, 256)
        )
        assert (result.status, result.value) == ("ok", "'parent done'"), result
        assert alive(int((tmp_path / "escaped.pid").read_text()))  # nothing could kill it
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "escaped.pid").read_text()), signal.SIGKILL)


# --- the limits the settings name are the ones the code runs under -----------------------

READS_ITS_LIMITS = (
    "import resource\n"
    "[resource.getrlimit(getattr(resource, name))\n"
    " for name in ('RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE')]\n"
)


def within_the_servers(name: str, soft: int, hard: int) -> tuple[int, int]:
    """What the runner can set: no more than the hard limit the server itself runs under."""
    _, server_hard = resource.getrlimit(getattr(resource, name))
    if server_hard == resource.RLIM_INFINITY:
        return soft, hard
    return min(soft, server_hard), min(hard, server_hard)


@pytest.mark.timeout(60)
async def test_the_code_runs_under_exactly_the_limits_of_the_settings(tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(READS_ITS_LIMITS)
    settings = Settings(memory_mb=900, cpu_seconds=7.5, max_file_mb=3, max_open_files=200)
    request = build_request(snippet.whole_file(READS_ITS_LIMITS, str(source)), settings, tmp_path)
    result = await LocalExecutor().run(request)
    assert result.status == "ok", result
    expected = [
        within_the_servers("RLIMIT_AS", 900 * 1024 * 1024, 900 * 1024 * 1024),
        within_the_servers("RLIMIT_CPU", 8, 10),  # whole seconds, rounded up; 2 s backstop
        within_the_servers("RLIMIT_FSIZE", 3 * 1024 * 1024, 3 * 1024 * 1024),
        within_the_servers("RLIMIT_NOFILE", 200, 200),
    ]
    assert result.value == repr(expected)
    assert result.extra["limits_applied"] == {
        "RLIMIT_AS": expected[0][0],
        "RLIMIT_CPU": expected[1][0],
        "RLIMIT_FSIZE": expected[2][0],
        "RLIMIT_NOFILE": expected[3][0],
        "RLIMIT_CORE": 0,
    }


# --- the result channel: its bound, and what is made of what arrives on it ---------------

# The runner's result pipe is a number on its command line: the code can write to it.
RESULT_FD = (
    "import os, time\n"
    "args = open('/proc/self/cmdline', 'rb').read().split(b'\\0')\n"
    "fd = int(args[args.index(b'--result-fd') + 1])\n"
)


def result_channel_request(code: str, tmp_path: Path, max_output_bytes: int) -> RunRequest:
    source = tmp_path / "main.py"
    source.write_text(code)
    settings = Settings(max_output_bytes=max_output_bytes, timeout=30)
    return build_request(snippet.whole_file(code, str(source)), settings, tmp_path)


@pytest.mark.timeout(60)
async def test_a_result_under_ten_times_max_output_bytes_is_read_whole(tmp_path: Path) -> None:
    """maxOutputBytes 500,000: the result may take 5,000,000 bytes, above the 4 MiB floor.
    4,500,000 bytes of blank lines before the runner's own JSON (which allows leading
    blanks) fit, and the line that says the runner was ready is still the first."""
    code = RESULT_FD + "os.write(fd, b' \\n' * 2_250_000)\n6 * 7\n"
    assert result_cap(Limits(max_output_bytes=500_000)) == 5_000_000
    result = await LocalExecutor().run(result_channel_request(code, tmp_path, 500_000))
    assert (result.status, result.value, result.message) == ("ok", "42", ""), result


@pytest.mark.timeout(60)
async def test_a_result_past_ten_times_max_output_bytes_stops_the_run(tmp_path: Path) -> None:
    code = (
        "print('printed first')\n" + RESULT_FD + "try:\n"
        "    os.write(fd, b' ' * 6_000_000)\n"
        "except BrokenPipeError:\n"
        "    pass\n"
        "time.sleep(60)\n"
    )
    request = result_channel_request(code, tmp_path, 500_000)
    result = await LocalExecutor().run(request)
    assert (result.status, result.value, result.error) == ("limit", None, None), result
    assert (result.executor, result.interpreter) == ("local", request.python), result
    assert result.message == (
        "Stopped: the code sent more than 5,000,000 bytes of result (10 × "
        "codeexec.maxOutputBytes): a value or error that large is not shown. Print less, "
        "or raise maxOutputBytes."
    )
    assert result.stdout == "printed first\n"
    # The box is still shown, as for any run in it.
    normal = await LocalExecutor().run(result_channel_request("6 * 7\n", tmp_path, 500_000))
    assert result.extra["sandbox"] == normal.extra["sandbox"], result.extra


async def read_through_a_pipe(sizes: list[int], cap: int) -> tuple[bytearray, bool]:
    """What `_read_result` keeps of these writes into a real pipe, and whether it says the
    bound was passed."""
    read_end, write_end = os.pipe()
    into, over = bytearray(), asyncio.Event()
    reading = asyncio.create_task(_read_result(read_end, into, cap, over))
    for size in sizes:
        await asyncio.to_thread(os.write, write_end, b"r" * size)
    os.close(write_end)
    await reading
    return into, over.is_set()


async def test_the_result_bound_keeps_exactly_the_cap_and_stops_one_byte_past_it() -> None:
    """The bound is on the bytes kept: exactly `cap` is read whole, one more is refused and
    nothing past the cap is kept."""
    assert await read_through_a_pipe([3000, 3000, 2000], 8000) == (bytearray(b"r" * 8000), False)
    into, over = await read_through_a_pipe([3000, 3000, 2001], 8000)
    assert over and len(into) <= 8000


@pytest.mark.timeout(60)
async def test_bytes_that_are_not_utf8_on_the_result_channel_do_not_break_the_run(
    tmp_path: Path,
) -> None:
    """The channel is the code's to write: garbage on it ends the run with a result (what
    the code printed kept), and the executor runs the next request normally."""
    code = "print('printed first')\n" + RESULT_FD + "os.write(fd, b'\\xff\\xfe')\n6 * 7\n"
    executor = LocalExecutor()
    result = await executor.run(result_channel_request(code, tmp_path, 1_000_000))
    assert result.status == "ok" and result.stdout == "printed first\n", result
    assert (await executor.run(simple_request(tmp_path))).value == "42"


@pytest.mark.timeout(60)
async def test_an_interpreter_that_fails_before_the_run_is_reported_with_its_words(
    tmp_path: Path,
) -> None:
    """It exits before saying it is ready: the user is told its exit status and the end of
    what it wrote, as an internal failure, not as an error of the code."""
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'first line' >&2\necho 'cannot start here' >&2\nexit 3\n")
    broken.chmod(0o755)
    result = await LocalExecutor().run(simple_request(tmp_path, str(broken)))
    assert result.status == "internal", result
    assert result.message == (
        f"The interpreter {broken} could not start the run (exit status 3): "
        "first line cannot start here"
    )
    assert result.executor == "local"


# --- with a pids cgroup: forks the kernel refused -----------------------------------------

FORKS_UNTIL_REFUSED = (
    "import os, time\n"
    "children = []\n"
    "try:\n"
    "    for _ in range(64):\n"
    "        pid = os.fork()\n"
    "        if pid == 0:\n"
    "            time.sleep(60)\n"
    "            os._exit(0)\n"
    "        children.append(pid)\n"
    "except BlockingIOError:\n"
    "    pass\n"
    "for pid in children:\n"
    "    os.kill(pid, 9)\n"
    "    os.waitpid(pid, 0)\n"
    "len(children) < 64\n"
)


def needs_a_pids_cgroup() -> None:
    plan = process_plan()
    if plan.mechanism != "cgroup":
        pytest.skip(f"no pids cgroup here: {plan.missing}")


@pytest.mark.timeout(60)
async def test_a_run_that_coped_with_refused_forks_is_ok_and_says_the_limit_was_hit(
    tmp_path: Path,
) -> None:
    needs_a_pids_cgroup()
    result = await LocalExecutor().run(limited_request(FORKS_UNTIL_REFUSED, tmp_path, 16))
    assert (result.status, result.value) == ("ok", "True"), result
    assert result.message == (
        "Process limit: the code tried to run more than 16 processes and threads at once "
        "(a fork bomb?); all of them were stopped."
    )


@pytest.mark.timeout(60)
async def test_a_run_that_failed_on_a_refused_fork_is_reported_as_the_process_limit(
    tmp_path: Path,
) -> None:
    needs_a_pids_cgroup()
    code = FORKS_UNTIL_REFUSED.replace(
        "except BlockingIOError:\n    pass\n", "finally:\n    pass\n"
    )
    result = await LocalExecutor().run(limited_request(code, tmp_path, 16))
    assert result.status == "limit", result
    assert result.error is not None and result.error.type == "ProcessLimitExceeded", result
    assert result.message.startswith("Process limit: the code tried to run more than 16 ")


# --- what the server keeps after runs ------------------------------------------------------


def my_open_fds() -> set[str]:
    """This process's open file descriptors, as what each points to."""
    found = set()
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            found.add(f"{entry.name} -> {os.readlink(entry)}")
    return found


@pytest.mark.timeout(90)
async def test_runs_leave_no_file_descriptor_open_in_the_server(tmp_path: Path) -> None:
    """Each run opens pipes, a pidfd and cgroup files; a server that kept one per run
    would stop with EMFILE after some thousands of runs."""
    executor = LocalExecutor()
    request = simple_request(tmp_path)
    assert (await executor.run(request)).value == "42"  # the event loop's own set-up first
    before = my_open_fds()
    for _ in range(3):
        assert (await executor.run(request)).value == "42"
    assert my_open_fds() - before == set()


@pytest.mark.timeout(60)
async def test_an_interpreter_that_closes_its_input_before_the_request_is_reported(
    tmp_path: Path,
) -> None:
    """The request cannot be sent (a broken pipe: it is larger than the pipe holds, and the
    interpreter closed its end): that is no error of the server's, the user is told how
    the interpreter ended."""
    broken = tmp_path / "closing-python"
    broken.write_text("#!/bin/sh\nexec 0<&-\nsleep 0.3\necho 'closed its input' >&2\nexit 4\n")
    broken.chmod(0o755)
    code = "# " + "x" * 1_000_000 + "\n6 * 7\n"
    source = tmp_path / "large.py"
    source.write_text(code)
    large = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    executor = LocalExecutor()
    result = await executor.run(replace(large, python=str(broken)))
    assert result.status == "internal", result
    assert result.message == (
        f"The interpreter {broken} could not start the run (exit status 4): closed its input"
    )
    assert (await executor.run(simple_request(tmp_path))).value == "42"


@pytest.mark.timeout(60)
async def test_a_run_whose_task_is_cancelled_leaves_no_process(tmp_path: Path) -> None:
    """The caller gives up on the run (the server shuts down): the cancellation reaches
    the caller, and the child is killed and reaped before it does."""
    children, leaves = my_children(), my_cgroup_leaves()
    code = "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    running = asyncio.create_task(LocalExecutor().run(request))
    pid_file = tmp_path / "pid"
    await until(lambda: running.done() or (pid_file.exists() and bool(pid_file.read_text())), 0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert gone(int(pid_file.read_text()))
    assert my_children() <= children
    assert my_cgroup_leaves() <= leaves


# --- a selection inside a document: where it runs and where its error is shown ----------

DOCUMENT = "import sys\n\n\ndef main():\n    ratio = __import__('helper_beside_it').VALUE / 0\n"


@pytest.mark.timeout(60)
async def test_a_selection_runs_beside_its_document_and_its_error_is_placed_in_it(
    tmp_path: Path,
) -> None:
    """The expression selected on line 5 at column 12: it imports a module from the
    document's folder (not the working folder), and its error is reported at that line
    and column of the document, with the document's own line in the traceback."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "helper_beside_it.py").write_text("VALUE = 1\n")
    document = folder / "doc.py"
    document.write_text(DOCUMENT)
    selected = snippet.for_selection(DOCUMENT, str(document), (4, 12), (4, 52))
    assert (selected.code, selected.first_line, selected.column) == (
        "__import__('helper_beside_it').VALUE / 0\n",
        4,
        12,
    )
    request = build_request(selected, Settings(), tmp_path)
    assert request.cwd != str(folder)  # the import can only work through sys.path
    result = await LocalExecutor().run(request)
    assert result.status == "error" and result.error is not None, result
    error = result.error
    assert (error.type, error.line, error.column) == ("ZeroDivisionError", 5, 12), error
    assert error.frames and error.frames[-1].file == str(document), error.frames
    assert "ratio = __import__('helper_beside_it').VALUE / 0" in error.traceback


@pytest.mark.timeout(60)
async def test_a_run_logs_no_error_of_the_event_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Waiting for the child's exit (a pidfd watched by the loop) goes without a failing
    callback: each would be logged as an error of the server, at every turn of the loop."""
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(2):
            assert (await LocalExecutor().run(simple_request(tmp_path))).value == "42"
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


@pytest.mark.timeout(60)
async def test_the_box_shown_is_the_box_the_code_ran_in(tmp_path: Path) -> None:
    """The report says the server is out of the code's reach exactly when the code could
    not read the server's environment: the report is the launcher's own account of what
    it applied, not a default."""
    code = (
        "try:\n"
        f"    open('/proc/{os.getpid()}/environ', 'rb').read()\n"
        "    reached = True\n"
        "except OSError:\n"
        "    reached = False\n"
        "reached\n"
    )
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    result = await LocalExecutor().run(request)
    assert result.status == "ok", result
    shown_out_of_reach = "server out of reach" in result.extra["sandbox"]["summary"]
    assert result.value == repr(not shown_out_of_reach), result.extra["sandbox"]


@pytest.mark.timeout(60)
async def test_a_pre_started_interpreter_that_closed_its_input_long_before_is_reported(
    tmp_path: Path,
) -> None:
    """The request is written to a child that closed its input while it waited (the
    connection is already lost when the server writes): the run ends as any run of that
    interpreter does, and the server goes on."""
    closing = tmp_path / "closing-python"
    closing.write_text(f"#!/bin/sh\nexec 0<&-\ntouch {tmp_path}/closed-$$\nsleep 60\n")
    closing.chmod(0o755)
    source = tmp_path / "main.py"
    source.write_text("6 * 7\n")
    settings = Settings(timeout=1)
    request = build_request(snippet.whole_file("6 * 7\n", str(source)), settings, tmp_path)
    request = replace(request, python=str(closing))
    executor = LocalExecutor(prestart=True)
    try:
        first = await executor.run(request)
        (spare,) = pending_spares(executor)
        spare_pid = (await spare).process.pid
        await until(lambda: (tmp_path / f"closed-{spare_pid}").exists(), 0.01)
        second = await executor.run(request)
    finally:
        await executor.close()
    assert first.status == second.status == "timeout", (first, second)


# --- under a uid of the run's own: forks refused by RLIMIT_NPROC leave no counter ----------


@pytest.mark.timeout(60)
async def test_under_a_uid_of_its_own_a_refused_fork_is_reported_as_the_process_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RLIMIT_NPROC refuses the fork with EAGAIN and counts nothing the server can read:
    the BlockingIOError itself is the sign, and the user is told it was the limit."""
    python = python_another_user_can_run()
    if os.geteuid() != 0 or python is None:
        pytest.skip("needs a root server and an interpreter another uid can run")
    monkeypatch.setattr(sandbox, "process_plan", lambda: ProcessPlan("uid", run_as=(65534, 65534)))
    os.chmod(tmp_path, 0o777)  # the uid writes its workspace
    coping = "except BlockingIOError:\n    pass\n"
    code = FORKS_UNTIL_REFUSED.replace(coping, "finally:\n    pass\n")
    result = await LocalExecutor().run(replace(limited_request(code, tmp_path, 16), python=python))
    assert result.status == "limit", result
    assert result.error is not None and result.error.type == "ProcessLimitExceeded", result
    assert result.message.startswith("Process limit: the code tried to run more than 16 ")


# --- the memory cgroup killed a process of the run, and the run coped ----------------------

# A subprocess with the largest resident set (so the one the OOM killer picks) fills a
# memfd past the run's memory bound; the run itself goes on and returns its exit status.
KILLS_A_SUBPROCESS_BY_MEMORY = (
    "import subprocess, sys\n"
    "hog = ('import os\\n'\n"
    "       'held = bytearray(60 * 1024 * 1024)\\n'\n"
    "       'fd = os.memfd_create(\"hog\")\\n'\n"
    "       'for _ in range(300):\\n'\n"
    "       '    os.write(fd, b\"x\" * (1 << 20))\\n')\n"
    "subprocess.run([sys.executable, '-c', hog]).returncode\n"
)


@pytest.mark.timeout(60)
async def test_a_run_that_coped_with_a_subprocess_killed_by_the_memory_bound_stays_ok(
    tmp_path: Path,
) -> None:
    if process_plan().memory_parent is None:
        pytest.skip("no memory cgroup on this machine")
    source = tmp_path / "main.py"
    source.write_text(KILLS_A_SUBPROCESS_BY_MEMORY)
    settings = Settings(memory_mb=128)
    request = build_request(
        snippet.whole_file(KILLS_A_SUBPROCESS_BY_MEMORY, str(source)), settings, tmp_path
    )
    result = await LocalExecutor().run(request)
    assert (result.status, result.value, result.message) == ("ok", "-9", ""), result


@pytest.mark.timeout(60)
async def test_a_run_killed_by_the_memory_bound_says_so_and_shows_no_error_place(
    tmp_path: Path,
) -> None:
    """Killed outright, the run reported nothing: there is no line to show, only why."""
    if process_plan().memory_parent is None:
        pytest.skip("no memory cgroup on this machine")
    code = (
        "import os\n"
        "fd = os.memfd_create('hog')\n"
        "for _ in range(300):\n"
        "    os.write(fd, b'x' * (1 << 20))\n"
    )
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(
        snippet.whole_file(code, str(source)), Settings(memory_mb=128), tmp_path
    )
    result = await LocalExecutor().run(request)
    assert (result.status, result.error) == ("limit", None), result
    assert result.message.startswith("Memory limit: the run used more than 128 MB"), result


@pytest.mark.timeout(60)
async def test_a_sleeping_run_that_ignores_the_interrupt_is_killed_after_its_grace(
    tmp_path: Path,
) -> None:
    """On timeout the run is interrupted first (so the traceback can say where it was);
    one that ignores the interrupt and uses no CPU (so no CPU limit ends it either) is
    killed once the grace is over."""
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(600)\n"
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(timeout=1), tmp_path)
    result = await LocalExecutor().run(request)
    assert result.status == "timeout", result


@pytest.mark.timeout(60)
async def test_an_interpreter_that_never_reads_its_request_is_stopped_by_the_timeout(
    tmp_path: Path,
) -> None:
    """An interpreter hung before it reads the request (a wrapper waiting on something, a
    start-up hook that blocks) while the request is larger than the pipe holds: the run
    still ends at its timeout, and leaves no process."""
    children = my_children()
    hung = tmp_path / "hung-python"
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    code = "# " + "x" * 1_000_000 + "\n6 * 7\n"
    source = tmp_path / "large.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    request = replace(request, python=str(hung), limits=replace(request.limits, timeout_s=1))
    result = await LocalExecutor().run(request)
    assert result.status == "timeout", result
    assert my_children() <= children
