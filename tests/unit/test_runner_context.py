"""The module context code runs in (runner.py `package_context`, `enter_module_context`,
`_new_main_module`), called in this process through `run_request`.

A file inside a package of the workspace runs as `python -m pkg.sub.mod` would run it: its
relative imports resolve, `__package__`, `__spec__` and `__file__` are what `-m` gives, and
the top package's folder is first on sys.path. A file in no package runs as `python file.py`
does. Real package trees are built in tmp_path and the results compared with a real
`python -m` run where one exists. sys.path, sys.modules (`__main__` and the packages the
code imports) and the current directory are put back after each test.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.execution import runner

# What the code sees of its own context, as JSON (the run's trailing value is its repr).
CONTEXT_PROBE = """\
import json as _json, sys as _sys
_spec = globals().get("__spec__")
_context = _json.dumps({
    "name": __name__,
    "package": __package__,
    "spec": None if _spec is None else [_spec.name, _spec.parent, _spec.origin],
    "file": globals().get("__file__"),
    "path0": _sys.path[0],
})
_context
"""


@pytest.fixture(autouse=True)
def process_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """What a run changes in this process, saved and put back: sys.path, `__main__`, `_`,
    SIGINT, and the modules the code imported from the test's tree (the next test's tree
    reuses their names; modules from elsewhere, stdlib ones first imported here, stay)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    had_underscore = hasattr(builtins, "_")
    if had_underscore:
        monkeypatch.setattr(builtins, "_", vars(builtins)["_"])
    handler = signal.getsignal(signal.SIGINT)
    importlib.invalidate_caches()
    yield
    signal.signal(signal.SIGINT, handler)
    tree = str(tmp_path) + os.sep
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(tree):
            del sys.modules[name]
    if not had_underscore and hasattr(builtins, "_"):
        del builtins._


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def run(path: Path | str, code: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    return runner.run_request({"code": code, "path": str(path), "document": code}, namespace)


def value_of(outcome: dict[str, Any]) -> Any:
    assert outcome["status"] == "ok", outcome["error"]
    return ast.literal_eval(outcome["value"])  # the repr of a str or a tuple of plain values


def context_of(outcome: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(value_of(outcome))
    return result


def as_python_m(workspace: Path, module: str) -> dict[str, Any]:
    """What a real `python -m module`, run from the workspace, shows of its context (the
    module's file ends by printing the probe)."""
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


NESTED = {
    "pkg/__init__.py": "",
    "pkg/top.py": "y = 'top'\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/util.py": "x = 'util'\n",
}
IMPORTS = "from .util import x\nfrom ..top import y\nfrom . import util\n"


def test_a_file_deep_in_a_package_runs_as_python_m_would_run_it(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    module_code = IMPORTS + CONTEXT_PROBE
    write(workspace, {**NESTED, "pkg/sub/mod.py": module_code + "print(_context)\n"})
    mod = workspace / "pkg" / "sub" / "mod.py"
    expected = as_python_m(workspace, "pkg.sub.mod")
    assert expected["spec"] == ["pkg.sub.mod", "pkg.sub", str(mod)]  # the real -m run

    seen = context_of(run(mod, module_code))

    assert seen == expected
    assert seen == {
        "name": "__main__",
        "package": "pkg.sub",
        "spec": ["pkg.sub.mod", "pkg.sub", str(mod)],
        "file": str(mod),
        "path0": str(workspace),
    }
    # The relative imports found the package's own modules, by their full names.
    assert sys.modules["pkg.sub.util"].__file__ == str(workspace / "pkg" / "sub" / "util.py")
    assert sys.modules["pkg.top"].y == "top"


def test_a_package_s_init_runs_with_the_package_as_its_module(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    write(workspace, NESTED)
    init = workspace / "pkg" / "sub" / "__init__.py"

    seen = context_of(run(init, "from .util import x\n" + CONTEXT_PROBE))

    assert seen["package"] == "pkg.sub"
    assert seen["spec"] == ["pkg.sub", "pkg.sub", str(init)]  # a package is its own parent
    assert seen["path0"] == str(workspace)
    assert runner.package_context(str(init)) == ("pkg.sub", "pkg.sub", str(workspace))


def test_the_module_name_is_the_file_s_stem_under_its_package(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    write(workspace, {"a/__init__.py": "", "a/b/__init__.py": "", "a/b/c/__init__.py": ""})
    for name in ("mod.py", "data.v2.py", "__main__.py"):
        path = workspace / "a" / "b" / "c" / name
        stem = name[: -len(".py")]
        assert runner.package_context(str(path)) == ("a.b.c." + stem, "a.b.c", str(workspace))
    # A top-level package: one part, no dots.
    assert runner.package_context(str(workspace / "a" / "m.py")) == ("a.m", "a", str(workspace))


def test_the_loader_is_the_file_s_own(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    write(workspace, NESTED)
    mod = workspace / "pkg" / "sub" / "mod.py"
    source = "print('from disk')\n"
    mod.write_text(source, encoding="utf-8")

    seen = value_of(
        run(
            mod,
            "(__loader__ is __spec__.loader, __loader__.get_filename(), "
            "__loader__.get_source('pkg.sub.mod'), __spec__.has_location)",
        )
    )

    assert seen == (True, str(mod), source, True)


def test_the_walk_up_stops_at_a_folder_whose_name_cannot_be_imported(tmp_path: Path) -> None:
    """`my-lib` and `class` hold `__init__.py` but no import can name them: the package
    starts below them, and its folder is what goes on sys.path."""
    for blocker in ("my-lib", "class", "2024"):
        workspace = tmp_path / blocker
        write(workspace, {"__init__.py": "", **NESTED})
        mod = workspace / "pkg" / "sub" / "mod.py"
        assert runner.package_context(str(mod)) == ("pkg.sub.mod", "pkg.sub", str(workspace))


def test_the_walk_up_goes_past_the_workspace_while_folders_hold_init(tmp_path: Path) -> None:
    """The workspace is itself a package's folder: the package starts above it, as pytest
    and `python -m` from the parent folder see it."""
    write(tmp_path, {"outer/__init__.py": "", "outer/inner/__init__.py": ""})
    mod = tmp_path / "outer" / "inner" / "mod.py"
    assert runner.package_context(str(mod)) == ("outer.inner.mod", "outer.inner", str(tmp_path))


def test_a_folder_without_init_ends_the_package(tmp_path: Path) -> None:
    """A namespace package (no `__init__.py`) above a regular one is not guessed at."""
    write(tmp_path, {"ns/pkg/__init__.py": ""})
    mod = tmp_path / "ns" / "pkg" / "mod.py"
    assert runner.package_context(str(mod)) == ("pkg.mod", "pkg", str(tmp_path / "ns"))
    # A file directly in a namespace package's folder is in no package.
    assert runner.package_context(str(tmp_path / "ns" / "loose.py")) is None


def test_a_file_in_no_package_runs_as_python_file_py_would(tmp_path: Path) -> None:
    write(tmp_path, {"script.py": ""})
    script = tmp_path / "script.py"
    before = list(sys.path)

    outcome = run(script, "from . import x\n")
    seen = context_of(run(script, CONTEXT_PROBE))

    assert outcome["error"]["type"] == "ImportError"
    assert "no known parent package" in outcome["error"]["message"]
    assert seen == {
        "name": "__main__",
        "package": None,
        "spec": None,
        "file": str(script),
        "path0": before[0],
    }
    assert sys.path == before
    assert value_of(run(script, "__loader__ is None")) is True
    assert runner.package_context(str(script)) is None


def test_a_path_that_is_not_absolute_is_in_no_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsaved buffer's name, or anything not a real file's path, is not looked up
    relative to wherever the process happens to be."""
    write(tmp_path, NESTED)
    monkeypatch.chdir(tmp_path)
    for path in ("pkg/sub/mod.py", os.path.join("pkg", "__init__.py"), ""):
        assert runner.package_context(path) is None
        seen = context_of(run(path, CONTEXT_PROBE))
        assert (seen["package"], seen["spec"], seen["file"]) == (None, None, path)


def test_the_package_root_goes_first_on_sys_path_and_only_once(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    write(workspace, NESTED)
    mod = workspace / "pkg" / "sub" / "mod.py"
    before = list(sys.path)

    run(mod, "1")
    assert sys.path == [str(workspace), *before]
    run(mod, "1")  # a second run (a session, or the next run of a worker) adds nothing
    assert sys.path == [str(workspace), *before]

    # Already on sys.path further down (the user's PYTHONPATH): left where it is.
    sys.path[:] = [*before, str(workspace)]
    run(mod, "1")
    assert sys.path == [*before, str(workspace)]


def test_the_package_root_shadows_a_same_named_module_later_on_sys_path(
    tmp_path: Path,
) -> None:
    """`-m` run from the package's folder imports the workspace's own `helpers`, not one
    of the same name elsewhere on sys.path."""
    workspace = tmp_path / "ws"
    other = tmp_path / "elsewhere"
    write(workspace, {**NESTED, "helpers.py": "where = 'workspace'\n"})
    write(other, {"helpers.py": "where = 'elsewhere'\n"})
    sys.path.insert(0, str(other))

    seen = value_of(run(workspace / "pkg" / "sub" / "mod.py", "import helpers\nhelpers.where"))

    assert seen == "workspace"


def test_a_session_moves_to_each_file_s_own_context(tmp_path: Path) -> None:
    """One namespace, three files: each run gets its own file's package, spec, loader and
    file, none kept from the one before."""
    workspace = tmp_path / "ws"
    write(workspace, {**NESTED, "pkg/other/__init__.py": "", "pkg/other/util.py": "x = 2\n"})
    first = workspace / "pkg" / "sub" / "mod.py"
    second = workspace / "pkg" / "other" / "mod.py"
    loose = tmp_path / "loose.py"
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}

    in_first = context_of(run(first, "from .util import x\n" + CONTEXT_PROBE, namespace))
    in_second = context_of(run(second, "from .util import x\n" + CONTEXT_PROBE, namespace))
    assert namespace["x"] == 2
    in_loose = context_of(run(loose, CONTEXT_PROBE, namespace))

    assert (in_first["package"], in_first["spec"][0], in_first["file"]) == (
        "pkg.sub",
        "pkg.sub.mod",
        str(first),
    )
    assert (in_second["package"], in_second["spec"][0], in_second["file"]) == (
        "pkg.other",
        "pkg.other.mod",
        str(second),
    )
    assert (in_loose["package"], in_loose["spec"], in_loose["file"]) == (None, None, str(loose))
    assert namespace["__loader__"] is None
    assert namespace["__spec__"] is None
    assert namespace["__package__"] is None


def test_a_fresh_run_is_the_program_s_main_module(tmp_path: Path) -> None:
    """The code runs as `__main__`: the `if __name__ == "__main__"` block runs, `import
    __main__` is its own namespace, and what it defines can be pickled by reference."""
    script = tmp_path / "script.py"
    code = (
        "import pickle, sys, __main__\n"
        "class Point:\n"
        "    pass\n"
        "ran_main = False\n"
        "if __name__ == '__main__':\n"
        "    ran_main = True\n"
        "(ran_main, __main__.Point is Point, sys.modules['__main__'].__file__,\n"
        " type(pickle.loads(pickle.dumps(Point()))) is Point, len('abc'), __name__)\n"
    )

    seen = value_of(run(script, code))

    assert seen == (True, True, str(script), True, 3, "__main__")
    main = sys.modules["__main__"]
    assert main.__file__ == str(script)
    assert main.__builtins__ is builtins
    assert main.__dict__["ran_main"] is True


def test_each_fresh_run_gets_a_new_main_module(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    assert value_of(run(script, "leftover = 1\n'leftover' in globals()")) is True
    assert value_of(run(script, "'leftover' in globals()")) is False


def test_a_package_file_without_a_py_suffix_still_resolves_relative_imports(
    tmp_path: Path,
) -> None:
    """A script with no suffix (`pkg/sub/tool`) has no loader Python would pick, hence no
    spec: its package alone is enough for its relative imports, and the run goes on."""
    workspace = tmp_path / "ws"
    write(workspace, {**NESTED, "pkg/sub/tool": ""})
    tool = workspace / "pkg" / "sub" / "tool"

    seen = context_of(run(tool, "from .util import x\nfrom ..top import y\n" + CONTEXT_PROBE))

    assert seen == {
        "name": "__main__",
        "package": "pkg.sub",
        "spec": None,
        "file": str(tool),
        "path0": str(workspace),
    }
    assert value_of(run(tool, "from . import util\n(__loader__, util.x)")) == (None, "util")
