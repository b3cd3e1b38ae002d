"""Live variables from a Jupyter kernel: hover, completion and the list ask the kernel the
same questions as a session worker (a silent execute whose user_expression runs
inspector.py's kernel half), through the same use cases the server calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from codeexec_lsp.actions import variables
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.jupyter import JupyterExecutor
from tests.jupyter.conftest import request_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor() -> AsyncIterator[JupyterExecutor]:
    jupyter = JupyterExecutor()
    try:
        yield jupyter
    finally:
        await jupyter.close()


def place(executor: JupyterExecutor, folder: Path) -> variables.Place | None:
    settings = Settings(executor="jupyter")  # type: ignore[call-arg]
    return variables.place_for(str(folder / "other.py"), settings, [str(folder)], executor)


async def test_no_kernel_no_answer_and_none_is_started(
    executor: JupyterExecutor, tmp_path: Path
) -> None:
    assert await variables.hover(place(executor, tmp_path), "n + 1", 0) is None
    assert executor.connections() == []


async def test_hover_list_and_completion_read_the_kernel(
    executor: JupyterExecutor, tmp_path: Path
) -> None:
    code = "n = 42\nnames = ['a']\nd = {'key': 1}\n"
    result = await executor.run(request_for(code, tmp_path, executor="jupyter"))
    assert result.status == "ok", result.message
    where = place(executor, tmp_path)
    shown = await variables.hover(where, "print(n)", 6)
    assert shown is not None and "n: int = 42" in shown.markdown
    assert await variables.hover(where, "missing", 2) is None
    listed = await variables.list_variables(where, "jupyter")
    assert {"n", "names", "d"} <= {v.name for v in listed.variables}
    attributes = await variables.complete(where, "names.")
    assert "append" in [item.label for item in attributes.items]
    keys = await variables.complete(where, 'd["')
    assert "key" in [item.label for item in keys.items]
    # The question left nothing behind: the kernel's namespace has no helper names.
    after = await executor.run(
        request_for("sorted(k for k in dir() if 'codeexec' in k)\n", tmp_path, executor="jupyter")
    )
    assert after.value == "[]", after.value


async def test_a_repr_that_hangs_is_cut_off_and_the_state_stays(
    executor: JupyterExecutor, tmp_path: Path
) -> None:
    code = (
        "import time\nclass Slow:\n    def __repr__(self):\n        time.sleep(3600)\n"
        "slow = Slow()\nkept = 7\n"
    )
    assert (await executor.run(request_for(code, tmp_path, executor="jupyter"))).status == "ok"
    shown = await variables.hover(place(executor, tmp_path), "slow", 1)
    assert shown is not None and "slow" in shown.markdown
    again = await executor.run(request_for("kept\n", tmp_path, executor="jupyter"))
    assert again.status == "ok" and again.value == "7", again.message


async def test_a_future_import_stays_in_effect_in_the_kernel(
    executor: JupyterExecutor, tmp_path: Path
) -> None:
    """As in a session (and IPython itself): `from __future__ import annotations` run once
    holds for the kernel's later runs (lives here: this module's kernel is a fresh one)."""
    annotated = "def f(x: NotDefinedAnywhere) -> None:\n    pass\nf.__annotations__['x']\n"
    without = await executor.run(request_for(annotated, tmp_path, executor="jupyter"))
    assert without.error is not None and without.error.type == "NameError"
    future = "from __future__ import annotations\n"
    assert (await executor.run(request_for(future, tmp_path, executor="jupyter"))).status == "ok"
    later = await executor.run(request_for(annotated, tmp_path, executor="jupyter"))
    assert (later.status, later.value) == ("ok", "'NotDefinedAnywhere'"), later.message
