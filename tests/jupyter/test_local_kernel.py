"""The jupyter executor on a local ipykernel we launch: state, real lines, magics, rich
outputs, interrupts that keep the state, deaths that are reported, output limits.

One kernel serves the module (a start costs seconds here); tests that kill or restart it
come last or use their own executor.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from codeexec_lsp.execution.jupyter import JupyterExecutor, KernelState
from codeexec_lsp.results import RunResult
from tests.jupyter.conftest import lines_request, request_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

SIGINT_IGNORING_LOOP = (
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jupyter_local")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor() -> AsyncIterator[JupyterExecutor]:
    jupyter = JupyterExecutor()
    try:
        yield jupyter
    finally:
        await jupyter.close()


async def run(executor: JupyterExecutor, code: str, folder: Path, **settings: object) -> RunResult:
    return await executor.run(request_for(code, folder, **settings))


def kernel_pid(result: RunResult) -> int:
    return int(result.extra["jupyter"]["pid"])


async def test_state_is_kept_between_runs(executor: JupyterExecutor, folder: Path) -> None:
    first = await run(executor, "import math\nkept = 41\nprint('set')\n", folder)
    assert first.status == "ok", first.message
    assert first.stdout == "set\n"
    assert first.executor == "jupyter"
    second = await run(executor, "kept + 1\n", folder)
    assert second.status == "ok", second.message
    assert second.value == "42"
    assert second.outputs == ()  # a plain value is `value`, as with every executor
    assert kernel_pid(first) == kernel_pid(second)


async def test_an_error_deep_in_a_file_is_on_its_real_line(
    executor: JupyterExecutor, folder: Path
) -> None:
    document = "\n" * 20 + textwrap.dedent(
        """\
        def inner(values):
            total = 0
            for value in values:
                total += 10 / value
            return total


        def outer():
            return inner([1, 2, 0])


        if True:
            result = outer()
        """
    )
    await executor.run(lines_request(document, 21, 30, folder, name="deep.py"))
    result = await executor.run(lines_request(document, 32, 33, folder, name="deep.py"))
    assert result.status == "error"
    assert result.error is not None
    assert result.error.type == "ZeroDivisionError"
    assert result.error.line == 24  # `total += 10 / value`, in the file, not the selection
    assert result.error.column == 17  # `10 / value`, as Python 3.11+ points at it
    path = str(folder / "deep.py")
    assert [(frame.file, frame.line, frame.name) for frame in result.error.frames] == [
        (path, 33, "<module>"),
        (path, 29, "outer"),
        (path, 24, "inner"),
    ]
    assert f'File "{path}", line 24' in result.error.traceback


async def test_a_syntax_error_is_on_its_real_line(executor: JupyterExecutor, folder: Path) -> None:
    document = "x = 1\n\n\nif x:\n    y = (1,\n"
    result = await executor.run(lines_request(document, 4, 5, folder, name="broken.py"))
    assert result.status == "error"
    assert result.error is not None and result.error.type == "SyntaxError"
    assert result.error.line == 5


async def test_magics_and_shell_escapes_run(executor: JupyterExecutor, folder: Path) -> None:
    result = await run(
        executor, "%timeit -n1 -r1 sum(range(10))\n!echo from-the-shell\nshown = 3\n", folder
    )
    assert result.status == "ok", result.message
    assert "per loop" in result.stdout
    assert "from-the-shell" in result.stdout
    after = await run(executor, "shown\n", folder)
    assert after.value == "3"


async def test_an_error_after_a_magic_keeps_its_line(
    executor: JupyterExecutor, folder: Path
) -> None:
    result = await run(executor, "%time x_m = 1\n\nundefined_name\n", folder)
    assert result.status == "error"
    assert result.error is not None
    assert (result.error.type, result.error.line) == ("NameError", 3)


async def test_streams_go_to_stdout_and_stderr(executor: JupyterExecutor, folder: Path) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint('out2')\n"
    result = await run(executor, code, folder)
    assert result.stdout == "out\nout2\n"
    assert result.stderr == "err\n"


async def test_a_matplotlib_figure_is_a_png_output(executor: JupyterExecutor, folder: Path) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nNone\n"
    result = await run(executor, code, folder)
    assert result.status == "ok", result.message
    pictures = [output for output in result.outputs if "image/png" in output["data"]]
    assert len(pictures) == 1
    assert pictures[0]["output_type"] == "display_data"
    assert base64.b64decode(pictures[0]["data"]["image/png"]).startswith(b"\x89PNG")
    again = await run(executor, "1\n", folder)
    assert again.outputs == ()  # the figure was closed, as Jupyter's inline backend does


async def test_a_rich_trailing_value_is_an_execute_result(
    executor: JupyterExecutor, folder: Path
) -> None:
    code = (
        "class Table:\n"
        "    def _repr_html_(self):\n"
        "        return '<table><tr><td>1</td></tr></table>'\n"
        "    def __repr__(self):\n"
        "        return 'Table()'\n"
        "Table()\n"
    )
    result = await run(executor, code, folder)
    assert result.value == "Table()"
    assert [output["output_type"] for output in result.outputs] == ["execute_result"]
    data = result.outputs[0]["data"]
    assert data["text/html"].startswith("<table>")
    assert data["text/plain"] == "Table()"


async def test_display_adds_display_data(executor: JupyterExecutor, folder: Path) -> None:
    code = "from IPython.display import HTML, display\ndisplay(HTML('<b>hi</b>'))\n"
    result = await run(executor, code, folder)
    assert [output["data"].get("text/html") for output in result.outputs] == ["<b>hi</b>"]


async def test_input_says_why_it_cannot_work(executor: JupyterExecutor, folder: Path) -> None:
    result = await run(executor, "answer = input('name? ')\n", folder)
    assert result.status == "error"
    assert result.error is not None
    assert result.error.type == "EOFError"
    assert "no standard input" in result.error.message
    assert result.error.line == 1


async def test_top_level_await_runs_on_the_kernels_loop(
    executor: JupyterExecutor, folder: Path
) -> None:
    result = await run(executor, "import asyncio\nawait asyncio.sleep(0)\n6 * 7\n", folder)
    assert result.status == "ok", result.message
    assert result.value == "42"


async def test_a_timeout_interrupts_and_keeps_the_state(
    executor: JupyterExecutor, folder: Path
) -> None:
    before = await run(executor, "survivor = 'still here'\n", folder)
    result = await run(
        executor, "import time\nwhile True:\n    time.sleep(0.01)\n", folder, timeout=1
    )
    assert result.status == "timeout"
    assert result.error is not None and result.error.line in (2, 3)
    assert result.extra["jupyter"]["state_lost"] is False
    after = await run(executor, "survivor\n", folder)
    assert after.value == "'still here'"
    assert kernel_pid(after) == kernel_pid(before)


async def test_cancel_interrupts_and_keeps_the_state(
    executor: JupyterExecutor, folder: Path
) -> None:
    cancel = asyncio.Event()
    running = asyncio.ensure_future(
        executor.run(
            request_for("import time\nkept_too = 1\nwhile True:\n    time.sleep(0.01)\n", folder),
            cancel,
        )
    )
    await asyncio.sleep(1.0)
    cancel.set()
    result = await running
    assert result.status == "cancelled"
    after = await run(executor, "kept_too\n", folder)
    assert after.value == "1"


async def test_huge_output_is_truncated(executor: JupyterExecutor, folder: Path) -> None:
    result = await run(
        executor, "print('y' * 20_000_000)\nprinted = True\n", folder, max_output_bytes=100_000
    )
    assert result.truncated
    assert result.status == "limit"
    assert len(result.stdout.encode()) < 110_000
    assert "omitted" in result.stdout


async def test_endless_output_is_interrupted_and_the_state_kept(
    executor: JupyterExecutor, folder: Path
) -> None:
    await run(executor, "still = 'there'\n", folder)
    result = await run(
        executor, "i = 0\nwhile True:\n    print(i)\n    i += 1\n", folder, max_output_bytes=10_000
    )
    assert result.status == "limit"
    assert result.truncated
    after = await run(executor, "still\n", folder)
    assert after.value == "'there'"


async def test_a_kernel_restarted_behind_our_back_gets_the_helper_again(
    executor: JupyterExecutor, folder: Path
) -> None:
    (connection,) = executor.connections()
    await connection.restart()  # as a notebook's Restart would: the helper is gone
    result = await run(executor, "def f():\n    raise KeyError('k')\n\nf()\n", folder)
    assert result.status == "error"
    assert result.error is not None and (result.error.type, result.error.line) == ("KeyError", 2)


async def test_a_dying_kernel_is_reported_and_the_next_run_works(
    executor: JupyterExecutor, folder: Path
) -> None:
    before = await run(executor, "doomed = 1\n", folder)
    result = await run(executor, "import os\nos._exit(3)\n", folder)
    assert result.status == "error"
    assert result.extra["jupyter"]["state_lost"] is True
    assert "state" in result.message and "lost" in result.message
    after = await run(executor, "'doomed' in globals()\n", folder)
    assert after.status == "ok", after.message
    assert after.value == "False"
    assert "New kernel" in after.message
    assert kernel_pid(after) != kernel_pid(before)


async def test_a_kernel_that_ignores_interrupts_is_restarted(
    executor: JupyterExecutor, folder: Path
) -> None:
    await run(executor, "lost_soon = 1\n", folder)
    result = await run(executor, SIGINT_IGNORING_LOOP, folder, timeout=1)
    assert result.status == "timeout"
    assert result.extra["jupyter"]["state_lost"] is True
    assert "restarted" in result.message
    after = await run(executor, "'lost_soon' in globals()\n", folder)
    assert after.value == "False"


async def test_restart_clears_the_state(executor: JupyterExecutor, folder: Path) -> None:
    await run(executor, "cleared = 1\n", folder)
    assert await executor.restart() == 1
    after = await run(executor, "'cleared' in globals()\n", folder)
    assert after.status == "ok" and after.value == "False"


async def test_close_stops_the_kernel(folder: Path) -> None:
    jupyter = JupyterExecutor()
    result = await run(jupyter, "1\n", folder)
    pid = kernel_pid(result)
    (connection,) = jupyter.connections()
    await jupyter.close()
    assert connection.state is KernelState.CLOSED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    closed = await run(jupyter, "1\n", folder)
    assert closed.status == "cancelled"


@pytest.fixture
def python_without_ipykernel(tmp_path: Path) -> str:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


async def test_an_interpreter_without_ipykernel_gets_the_install_command(
    tmp_path: Path, python_without_ipykernel: str
) -> None:
    python = python_without_ipykernel
    jupyter = JupyterExecutor()
    try:
        result = await jupyter.run(request_for("1\n", tmp_path, python=python))
    finally:
        await jupyter.close()
    assert result.status == "internal"
    assert result.message.count("\n") == 0
    assert f"{python} -m pip install ipykernel" in result.message


async def test_an_unknown_kernelspec_is_named(tmp_path: Path) -> None:
    jupyter = JupyterExecutor(kernel="no-such-kernel")
    try:
        result = await jupyter.run(request_for("1\n", tmp_path))
    finally:
        await jupyter.close()
    assert result.status == "internal"
    assert "no-such-kernel" in result.message and "kernelspec list" in result.message


async def test_the_kernel_sees_no_secrets(
    executor: JupyterExecutor, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_TOKEN", "server-token-value")
    fresh = JupyterExecutor()
    try:
        result = await run(
            fresh, "import os\nsorted(k for k in os.environ if 'TOKEN' in k.upper())\n", folder
        )
    finally:
        await fresh.close()
    assert result.status == "ok", result.message
    assert result.value == "[]"


async def test_the_kernel_runs_in_the_box_of_its_profile(
    executor: JupyterExecutor, folder: Path
) -> None:
    result = await run(executor, "1\n", folder)
    assert result.extra["sandbox"]["profile"] == "standard"


async def test_the_strict_box_is_refused_with_a_reason(folder: Path) -> None:
    jupyter = JupyterExecutor()
    try:
        result = await run(jupyter, "1\n", folder, sandbox="strict")
    finally:
        await jupyter.close()
    assert result.status == "internal"
    assert '"strict" sandbox' in result.message and "session executor" in result.message
    assert jupyter.connections() == []


EQUIVALENT_SNIPPETS = {
    "deep error": "def f(x):\n    return g(x)\n\n\ndef g(x):\n    return x['k']\n\n\nf({})\n",
    "syntax error": "a = 1\nif a\n    pass\n",
    "notes": "e = ValueError('bad')\ne.add_note('first note')\nraise e\n",
    "value": "print('a')\n[1, 2, 3]\n",
    "system exit": "import sys\nprint('before')\nsys.exit(3)\n",
}


@pytest.mark.parametrize("name", sorted(EQUIVALENT_SNIPPETS))
async def test_same_result_as_the_session_executor(
    executor: JupyterExecutor, folder: Path, name: str
) -> None:
    from codeexec_lsp.execution.session import SessionExecutor

    code = EQUIVALENT_SNIPPETS[name]
    session = SessionExecutor()
    try:
        expected = await run(session, code, folder)  # type: ignore[arg-type]
    finally:
        await session.close()
    actual = await run(executor, code, folder)
    assert (actual.status, actual.stdout, actual.value) == (
        expected.status,
        expected.stdout,
        expected.value,
    )
    if expected.error is None:
        assert actual.error is None
        return
    assert actual.error is not None
    fields = ("type", "message", "line", "column", "end_line", "end_column")
    assert [getattr(actual.error, f) for f in fields] == [
        getattr(expected.error, f) for f in fields
    ]
    assert actual.error.frames == expected.error.frames


async def test_an_abandoned_run_is_interrupted_and_the_kernel_kept(
    executor: JupyterExecutor, folder: Path
) -> None:
    await run(executor, "abandoned_keeps = 'kept'\n", folder)
    task = asyncio.ensure_future(run(executor, "while True:\n    pass\n", folder))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await run(executor, "abandoned_keeps\n", folder, timeout=20)
    assert after.status == "ok", after.message
    assert after.value == "'kept'"
