"""A file inside a package of the workspace runs as `python -m pkg.sub.mod` would: its
relative imports work, `__name__` is "__main__", `__package__`/`__spec__` come from where
the file lies, `__file__` is its real path. Through the session and local executors, the
editor's `codeexec.run`, and `codeexec-lsp run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult
from tests.e2e.conftest import open_document, run

Executor = SessionExecutor | LocalExecutor

MODULE = (
    "from .util import x\n"
    "from ..top import y\n"
    "print(x, y, __name__, __package__, __spec__.name)\n"
    "__file__\n"
)
OUTSIDE = "print(__package__, __spec__)\nfrom .util import x\n"


def make_project(root: Path) -> Path:
    """root/pkg/sub/mod.py importing its sibling and its parent package relatively."""
    sub = root / "pkg" / "sub"
    sub.mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "top.py").write_text("y = 'top'\n")
    (sub / "__init__.py").write_text("")
    (sub / "util.py").write_text("x = 5\n")
    module = sub / "mod.py"
    module.write_text(MODULE)
    (root / "script.py").write_text(OUTSIDE)
    return module


@pytest.fixture(autouse=True)
def interruptible_children() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(params=["session", "local"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    chosen: Executor = SessionExecutor() if request.param == "session" else LocalExecutor()
    try:
        yield chosen
    finally:
        await chosen.close()


def request_for(path: Path, workspace: Path) -> RunRequest:
    """The whole file, as the editor's Run file would send it."""
    return build_request(snippet.whole_file(path.read_text(), str(path)), Settings(), workspace)


async def run_file(executor: Executor, path: Path, workspace: Path) -> RunResult:
    return await executor.run(request_for(path, workspace))


async def test_relative_imports_resolve_as_python_dash_m(
    executor: Executor, tmp_path: Path
) -> None:
    module = make_project(tmp_path)
    result = await run_file(executor, module, tmp_path)
    assert result.status == "ok", result.error
    assert result.stdout == "5 top __main__ pkg.sub pkg.sub.mod\n"
    assert result.value == repr(str(module))


@pytest.fixture
def dash_m_project(tmp_path: Path) -> tuple[Path, str]:
    """The project, its module printing what it sees, and what `python -m pkg.sub.mod`
    prints run from the project's folder."""
    module = make_project(tmp_path)
    module.write_text("from .util import x\nprint(x, __name__, __package__, __spec__.name)\n")
    expected = subprocess.run(
        [sys.executable, "-m", "pkg.sub.mod"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return module, expected


async def test_the_same_as_python_dash_m_itself(
    executor: Executor, tmp_path: Path, dash_m_project: tuple[Path, str]
) -> None:
    module, expected = dash_m_project
    result = await run_file(executor, module, tmp_path)
    assert result.stdout == expected


async def test_a_package_below_the_workspace_root_is_found_from_the_file(
    executor: Executor, tmp_path: Path
) -> None:
    """src layout: the package's parent (src/) is not the workspace root, nor on sys.path
    until the run puts it there, as `python -m` run from src/ would have it."""
    src = tmp_path / "src"
    src.mkdir()
    module = make_project(src)
    result = await run_file(executor, module, tmp_path)
    assert result.status == "ok", result.error
    assert result.stdout == "5 top __main__ pkg.sub pkg.sub.mod\n"


async def test_a_file_in_no_package_gets_no_package(executor: Executor, tmp_path: Path) -> None:
    make_project(tmp_path)
    result = await run_file(executor, tmp_path / "script.py", tmp_path)
    assert result.stdout == "None None\n"
    assert result.error is not None and result.error.type == "ImportError"
    assert "no known parent package" in result.error.message
    assert result.error.line == 2


async def test_a_session_run_of_another_file_drops_the_previous_package(
    tmp_path: Path,
) -> None:
    module = make_project(tmp_path)
    session = SessionExecutor()
    try:
        inside = await run_file(session, module, tmp_path)
        outside = await run_file(session, tmp_path / "script.py", tmp_path)
        again = await run_file(session, module, tmp_path)
    finally:
        await session.close()
    assert inside.status == "ok", inside.error
    assert outside.stdout == "None None\n"
    assert outside.error is not None and outside.error.type == "ImportError"
    assert again.stdout == "5 top __main__ pkg.sub pkg.sub.mod\n"


async def test_a_selection_from_the_module_imports_relatively(tmp_path: Path) -> None:
    module = make_project(tmp_path)
    document = module.read_text()
    session = SessionExecutor()
    try:
        code = snippet.for_lines(document, str(module), 0, 0)
        first = await session.run(build_request(code, Settings(), tmp_path))
        second = await session.run(
            build_request(snippet.for_lines("x * 2\n", str(module), 0, 0), Settings(), tmp_path)
        )
    finally:
        await session.close()
    assert first.status == "ok", first.error
    assert second.value == "10"


async def test_codeexec_run_in_the_editor(client: LanguageClient, workspace: Path) -> None:
    module = make_project(workspace)
    uri = open_document(client, module, module.read_text())
    result = await run(client, uri)
    assert result["status"] == "ok", result
    assert result["stdout"] == "5 top __main__ pkg.sub pkg.sub.mod\n"
    assert result["value"] == repr(str(module))


def test_codeexec_lsp_run_from_the_shell(tmp_path: Path) -> None:
    make_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'pkg'\nversion = '0'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", "run", "pkg/sub/mod.py", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert result["stdout"] == "5 top __main__ pkg.sub pkg.sub.mod\n"
    assert result["value"] == repr(str(tmp_path / "pkg" / "sub" / "mod.py"))


async def test_a_packages_init_and_main_run_as_the_package(
    executor: Executor, tmp_path: Path
) -> None:
    """`pkg/sub/__init__.py` is the package itself; `pkg/sub/__main__.py` is what
    `python -m pkg.sub` runs: both import their siblings relatively."""
    module = make_project(tmp_path)
    # Importing `.util` imports the package, so its __init__ also runs as itself: only the
    # run as __main__ prints.
    shows = (
        "from .util import x\n"
        "if __name__ == '__main__':\n"
        "    print(x, __package__, __spec__.name)\n"
    )
    init = module.with_name("__init__.py")
    init.write_text(shows)
    main = module.with_name("__main__.py")
    main.write_text(shows)
    as_init = await run_file(executor, init, tmp_path)
    as_main = await run_file(executor, main, tmp_path)
    assert as_init.stdout == "5 pkg.sub pkg.sub\n", as_init.error
    assert as_main.stdout == "5 pkg.sub pkg.sub.__main__\n", as_main.error
