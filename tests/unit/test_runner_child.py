"""The child interpreter's entry (runner.py `main`, `confine`, `apply_limits`,
`_prepare_process`, `load_sibling`), called in this process.

The executors run these in a real child, where the executor and sandbox tests check what
the user sees. Here they run in-process so that what each one promises is pinned down
exactly (and so mutation testing, which only sees the test process, can check it): the
process state they change (stdin, signal handlers, sys.path, rlimits, `__main__`) is put
back after each test.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from codeexec_lsp.execution import runner

RUNNER_DIR = os.path.dirname(runner.RUNNER_FILE)
LIMITS = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE")
SIGNALS = (signal.SIGINT, signal.SIGXFSZ, signal.SIGXCPU)
# Hard limits lowered here stay lowered in this process (raising them again needs
# CAP_SYS_RESOURCE, which a container's root may lack), and children started by later tests
# inherit them: so every test lowers them to the same values, far above any real use.
TOP = 2**46  # bytes: 64 TiB, half of x86-64's user address space


@pytest.fixture(autouse=True)
def child_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What the child's entry changes in its process, saved and put back."""
    monkeypatch.setattr(sys, "stdin", sys.stdin)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    handlers = {number: signal.getsignal(number) for number in SIGNALS}
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in LIMITS}
    monkeypatch.setattr(os, "_exit", exit_only_a_copy(os.getpid(), os._exit))
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)
    for name, values in limits.items():
        kind = getattr(resource, name)
        try:
            resource.setrlimit(kind, values)
        except ValueError:  # a lowered hard limit goes back up only with CAP_SYS_RESOURCE
            now_hard = resource.getrlimit(kind)[1]
            resource.setrlimit(kind, (now_hard, now_hard))


def exit_only_a_copy(test_pid: int, real_exit: Callable[[int], NoReturn]) -> Callable[[Any], None]:
    """`os._exit` for the code under test: a copy made by a fork ends as asked, but this
    test process must never be ended by it (it would end with status 0, as if every test
    passed): there it raises instead, so the test fails and says why."""

    def exit_(status: Any) -> None:
        if os.getpid() == test_pid:
            raise AssertionError(f"os._exit({status!r}) called in the process running the tests")
        try:
            real_exit(status)
        finally:  # a status os._exit refuses (None): the copy still ends, with a failure
            real_exit(70)

    return exit_


def limit(name: str) -> tuple[int, int]:
    soft, hard = resource.getrlimit(getattr(resource, name))
    return soft, hard


# --- load_sibling -------------------------------------------------------------------------


def test_a_sibling_is_loaded_from_the_runners_own_folder_under_a_private_name() -> None:
    module = runner.load_sibling("sandbox_child")
    assert module.__name__ == "_codeexec_sandbox_child"
    assert module.__file__ == os.path.join(RUNNER_DIR, "sandbox_child.py")
    # Registered, so its exception classes pickle and name themselves like ours.
    assert sys.modules["_codeexec_sandbox_child"] is module
    assert callable(module.apply)


# --- confine ------------------------------------------------------------------------------


def test_without_a_sandbox_argument_nothing_is_confined() -> None:
    assert runner.confine(["--result-fd", "3"]) is None


def test_the_policy_after_the_sandbox_argument_is_applied_and_reported() -> None:
    policy = {"profile": "standard", "network": True}
    report = runner.confine(["--result-fd", "3", "--sandbox", json.dumps(policy), "--x"])
    assert report is not None
    assert report["profile"] == "standard"
    assert report["network"]["allowed"] is True
    assert "errors" not in report


def test_a_policy_that_cannot_be_applied_is_reported_not_raised() -> None:
    report = runner.confine(["--sandbox", "[]"])
    assert report == {"errors": ["AttributeError: 'list' object has no attribute 'get'"]}


def test_without_a_subreaper_no_exit_hook_is_registered() -> None:
    hooks_before = atexit._ncallbacks()
    report = runner.confine(["--sandbox", json.dumps({"network": True})])
    assert report is not None and "errors" not in report
    assert atexit._ncallbacks() == hooks_before


def test_a_subreaper_is_reported_and_its_exit_hook_registered() -> None:
    hooks_before = atexit._ncallbacks()
    report = runner.confine(["--sandbox", json.dumps({"network": True, "subreaper": True})])
    sandbox = sys.modules["_codeexec_sandbox_child"]  # the copy confine() loaded
    try:
        assert report is not None and report["subreaper"] is True
        # Its exit hook is registered: what the code leaves running goes with the run.
        assert atexit._ncallbacks() == hooks_before + 1
    finally:
        # Its exit hook kills what the code left behind (tests/unit/test_sandbox.py runs it
        # in a real child); here it would kill what this test process started.
        atexit.unregister(sandbox.kill_descendants)
        sandbox._prctl(sandbox.PR_SET_CHILD_SUBREAPER, 0)


# --- apply_limits -------------------------------------------------------------------------


def test_with_no_limits_asked_only_core_dumps_are_turned_off() -> None:
    applied = runner.apply_limits({})
    assert applied == {"RLIMIT_CORE": 0}
    assert limit("RLIMIT_CORE") == (0, 0)


def test_each_limit_asked_is_set_hard_and_reported() -> None:
    open_files = limit("RLIMIT_NOFILE")[1]
    # CPU seconds far above what this process has used: a low one would stop the tests.
    applied = runner.apply_limits(
        {
            "memory_bytes": TOP,
            "cpu_seconds": 1_000_000.2,
            "file_bytes": TOP,
            "open_files": open_files,
        }
    )
    assert applied == {
        "RLIMIT_AS": TOP,
        "RLIMIT_CPU": 1_000_001,
        "RLIMIT_FSIZE": TOP,
        "RLIMIT_NOFILE": open_files,
        "RLIMIT_CORE": 0,
    }
    assert limit("RLIMIT_AS") == (TOP, TOP)
    # The soft CPU limit raises CPUTimeLimitExceeded; the hard one, 2 s later, is the backstop.
    assert limit("RLIMIT_CPU") == (1_000_001, 1_000_003)
    assert limit("RLIMIT_FSIZE") == (TOP, TOP)
    assert limit("RLIMIT_NOFILE") == (open_files, open_files)


def test_whole_cpu_seconds_are_kept_as_they_are() -> None:
    applied = runner.apply_limits({"cpu_seconds": 1_000_001})
    assert applied["RLIMIT_CPU"] == 1_000_001
    assert limit("RLIMIT_CPU") == (1_000_001, 1_000_003)


def test_a_limit_above_the_current_hard_one_is_lowered_to_it() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (TOP, TOP))
    resource.setrlimit(resource.RLIMIT_FSIZE, (TOP // 2, TOP))
    applied = runner.apply_limits({"memory_bytes": TOP * 2, "file_bytes": TOP + 5})
    assert applied["RLIMIT_AS"] == TOP
    assert limit("RLIMIT_AS") == (TOP, TOP)
    assert applied["RLIMIT_FSIZE"] == TOP
    assert limit("RLIMIT_FSIZE") == (TOP, TOP)


def test_a_limit_the_kernel_refuses_is_left_out_and_the_others_still_apply() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (TOP, TOP))
    before = limit("RLIMIT_AS")
    # -5 is no limit the kernel knows: setrlimit raises ValueError.
    applied = runner.apply_limits({"memory_bytes": -5, "file_bytes": TOP})
    assert applied == {"RLIMIT_FSIZE": TOP, "RLIMIT_CORE": 0}
    assert limit("RLIMIT_AS") == before


def test_zero_limits_are_not_applied() -> None:
    before = {name: limit(name) for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE")}
    applied = runner.apply_limits(
        {"memory_bytes": 0, "cpu_seconds": 0, "file_bytes": 0, "open_files": 0}
    )
    assert applied == {"RLIMIT_CORE": 0}
    assert {name: limit(name) for name in before} == before


# --- _prepare_process ---------------------------------------------------------------------


def prepare(request: dict[str, Any]) -> None:
    runner._prepare_process({"path": "/work/ws/main.py", **request})


def test_the_code_has_no_standard_input() -> None:
    prepare({})
    assert sys.stdin.readable()
    for read in (sys.stdin.read, sys.stdin.readline, input):
        with pytest.raises(EOFError) as caught:
            read()
        assert str(caught.value) == runner.NO_INPUT_MESSAGE


def test_an_ignored_interrupt_is_restored_so_timeouts_can_stop_the_code() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare({})
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_too_big_file_fails_the_write_and_cpu_time_raises_where_the_code_is() -> None:
    # Python itself ignores SIGXFSZ at start-up; the runner must not rely on it.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    prepare({})
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    handler = signal.getsignal(signal.SIGXCPU)
    assert callable(handler)
    with pytest.raises(runner.CPUTimeLimitExceeded, match=r"^the CPU time limit was reached$"):
        handler(signal.SIGXCPU, None)


def test_the_runners_folder_leaves_sys_path_and_the_requests_entries_come_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(RUNNER_DIR)  # "" on sys.path then means the runner's folder too
    sys.path[:] = ["", RUNNER_DIR, RUNNER_DIR + "/", "/usr/lib/python3", str(tmp_path)]
    prepare({"sys_path": ["/ws/src", "/ws/lib", str(tmp_path)]})
    assert sys.path == ["/ws/src", "/ws/lib", "/usr/lib/python3", str(tmp_path)]
    assert sys.argv == ["/work/ws/main.py"]


def test_a_request_without_sys_path_keeps_the_rest_of_it() -> None:
    sys.path[:] = ["/a", RUNNER_DIR, "/b"]
    prepare({})
    assert sys.path == ["/a", "/b"]


# --- main ---------------------------------------------------------------------------------


def run_main(
    request: dict[str, Any], extra: list[str] | None = None, *, from_argv: bool = False
) -> list[str]:
    """Run the child's entry on `request`; what it wrote to its result pipe, by line."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    args = ["--result-fd", str(write_end), *(extra or [])]
    sys.stdin = io.TextIOWrapper(io.BytesIO(json.dumps(request).encode("utf-8")))
    try:
        if from_argv:
            sys.argv = ["runner.py", *args]
            runner.main()
        else:
            runner.main(args)
        with os.fdopen(read_end, encoding="utf-8") as results:
            return results.read().split("\n")
    finally:
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):  # closed by main / the reader, as it should be
                os.close(fd)


def request_for(code: str, **more: Any) -> dict[str, Any]:
    return {"code": code, "path": "/virtual/main.py", "first_line": 1, "column": 0, **more}


def test_main_says_ready_then_writes_one_result_with_the_limits_applied() -> None:
    lines = run_main(request_for("6 * 7"))
    assert lines[0] == "ready"
    assert len(lines) == 2
    result = json.loads(lines[1])
    assert result["value"] == "42"
    assert result["limits_applied"] == {"RLIMIT_CORE": 0}


def test_main_reads_its_arguments_from_the_command_line_by_default() -> None:
    lines = run_main(request_for("'argv'"), from_argv=True)
    assert lines[0] == "ready"
    assert json.loads(lines[1])["value"] == "'argv'"


def test_the_result_pipe_is_not_passed_on_to_what_the_code_starts() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    # The pipe's fd is the one just freed: the code asks whether its children inherit it.
    lines = run_main(request_for(f"import os\nos.get_inheritable({write_end})"))
    assert json.loads(lines[1])["value"] == "False"


def test_the_sandbox_report_comes_first_on_its_own_line() -> None:
    lines = run_main(request_for("1"), ["--sandbox", "[]"])
    error = "AttributeError: 'list' object has no attribute 'get'"
    assert lines[0] == "sandbox " + json.dumps({"errors": [error]})
    assert lines[1] == "ready"
    assert json.loads(lines[2])["value"] == "1"


def test_main_without_a_sandbox_writes_no_sandbox_line() -> None:
    lines = run_main(request_for("2"))
    assert not any(line.startswith("sandbox") for line in lines)


def test_limits_in_the_request_are_applied_before_the_code_runs() -> None:
    lines = run_main(
        request_for(
            "import resource\nresource.getrlimit(resource.RLIMIT_FSIZE)",
            limits={"file_bytes": TOP},
        )
    )
    result = json.loads(lines[1])
    assert result["value"] == f"({TOP}, {TOP})"
    assert result["limits_applied"] == {"RLIMIT_FSIZE": TOP, "RLIMIT_CORE": 0}


def test_the_code_runs_in_the_prepared_process() -> None:
    lines = run_main(request_for("import sys\n(sys.argv, sys.path[0])", sys_path=["/ws/src"]))
    assert json.loads(lines[1])["value"] == "(['/virtual/main.py'], '/ws/src')"


def test_a_copy_made_by_a_bare_fork_in_the_code_reports_no_result_of_its_own() -> None:
    code = (
        "import os\npid = os.fork()\nif pid:\n    _, status = os.waitpid(pid, 0)\n"
        "    ending = ('parent', os.waitstatus_to_exitcode(status))\n"
        "else:\n    ending = 'copy'\nending"
    )
    lines = run_main(request_for(code))
    assert lines[0] == "ready"
    assert len(lines) == 2, lines
    # The copy ended quietly, with success, and only the parent's result came back.
    assert json.loads(lines[1])["value"] == "('parent', 0)"


def test_output_left_in_the_streams_is_flushed_before_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written = {name: io.BytesIO() for name in ("stdout", "stderr")}
    for name, sink in written.items():
        # Block-buffered, like a session worker's streams: nothing reaches the fd unflushed.
        monkeypatch.setattr(sys, name, io.TextIOWrapper(sink, encoding="utf-8"))
    code = "import sys\nsys.stdout.write('out')\nsys.stderr.write('err')\n3"
    lines = run_main(request_for(code))
    assert json.loads(lines[1])["value"] == "3"
    assert written["stdout"].getvalue() == b"out"
    assert written["stderr"].getvalue() == b"err"


def test_code_that_closes_its_standard_output_still_gets_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    lines = run_main(request_for("import sys\nsys.stdout.close()\n5"))
    assert lines[0] == "ready"
    assert json.loads(lines[1])["value"] == "5"


def test_what_json_cannot_carry_reaches_the_server_as_text() -> None:
    code = (
        "import datetime\n"
        "display({'application/json': {'when': datetime.date(2026, 12, 7)}}, raw=True)\n"
        "'shown'"
    )
    lines = run_main(request_for(code))
    result = json.loads(lines[1])
    assert result["value"] == "'shown'"
    assert [output["data"] for output in result["outputs"]] == [
        {"application/json": {"when": "2026-12-07"}}
    ]
