"""The launcher's own promise, found unguarded by mutation testing (tools/MUTATION.md,
launcher.py): nothing from the user's environment runs before the box exists. The launcher
is started isolated (`python -I`), so a module on the user's PYTHONPATH that shadows one
the launcher imports runs only in the user's code, once confined, never in the launcher."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.execution.launcher import Box
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.sandbox import _memory_parent

# Shadows the stdlib json (which both the launcher and the runner import): notes which
# program imported it, then hands over the real module.
PLANTED_JSON = """\
import importlib
import os
import sys

with open(os.environ["PLANTED_MARKER"], "a") as marker:
    marker.write(os.path.basename(sys.argv[0]) + "\\n")
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules["json"]
sys.modules["json"] = importlib.import_module("json")
"""


async def test_a_module_on_the_users_pythonpath_never_runs_in_the_launcher(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "json.py").write_text(PLANTED_JSON)
    marker = tmp_path / "imported-by.txt"
    source = tmp_path / "main.py"
    code = "import json\nprint(json.dumps([1, 2]))\n"
    source.write_text(code)
    environ = {**os.environ, "PYTHONPATH": str(planted), "PLANTED_MARKER": str(marker)}
    request = build_request(
        snippet.whole_file(code, str(source)), Settings(), tmp_path, environ=environ
    )
    result = await LocalExecutor().run(request)
    assert result.status == "ok", result
    assert result.stdout == "[1, 2]\n"
    importers = marker.read_text().split() if marker.exists() else []
    # Only the user's code imported it: it got its PYTHONPATH, the launcher did not.
    assert importers and all(name == "runner.py" for name in importers), importers


# Writes which program started, from a .pth file in the interpreter's site-packages: such
# a file runs at every start of that interpreter that imports `site`.
PLANTED_PTH = (
    "import os, sys; os.environ.get('PLANTED_MARKER') and open(os.environ['PLANTED_MARKER'], "
    "'a').write(os.path.basename(sys.argv[0] or '-c') + '\\n')\n"
)


async def test_a_pth_file_in_the_servers_own_site_packages_never_runs_in_the_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher skips `site` (`python -S`): a .pth file that code running as the user
    could write into the server's environment never runs before the box exists. The
    server's interpreter is, here, a fresh environment holding such a file."""
    environment = tmp_path / "server-env"
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "venv", "--without-pip", str(environment)],
        check=True,
        capture_output=True,
    )
    server_python = environment / "bin" / "python"
    found = await asyncio.to_thread(
        subprocess.run,
        [str(server_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    site_packages = found.stdout.strip()
    (Path(site_packages) / "planted.pth").write_text(PLANTED_PTH)
    marker = tmp_path / "started.txt"
    # The plant works: any start of that interpreter that imports `site` runs it.
    await asyncio.to_thread(
        subprocess.run,
        [str(server_python), "-c", "pass"],
        check=True,
        env={**os.environ, "PLANTED_MARKER": str(marker)},
    )
    assert set(marker.read_text().split()) == {"-c"}
    source = tmp_path / "main.py"
    source.write_text("print(6 * 7)\n")
    request = build_request(
        snippet.whole_file("print(6 * 7)\n", str(source)),
        Settings(python=sys.executable),
        tmp_path,
        environ={**os.environ, "PLANTED_MARKER": str(marker)},
    )
    monkeypatch.setattr(sys, "executable", str(server_python))  # the launcher's interpreter
    result = await LocalExecutor().run(request)
    assert (result.status, result.stdout) == ("ok", "42\n"), result
    assert set(marker.read_text().split()) == {"-c"}  # nothing more: not the launcher


def test_a_launcher_that_never_reported_still_names_the_profile_asked_for(
    tmp_path: Path,
) -> None:
    """The launcher died before saying what it applied (or said something unreadable): the
    report shown on hover and by `doctor` still says which profile the run asked for."""
    for profile in ("strict", "standard"):
        box = Box.of(str(tmp_path), {}, Limits(), profile, network=False)
        report = box.report(box.guard(), None)
        assert report.profile == profile
        assert report.to_json()["profile"] == profile


MEMFD_HOG = """\
import os
fd = os.memfd_create("hog")
block = b"x" * (1 << 20)
for _ in range(300):
    os.write(fd, block)
print("wrote 300 MB")
"""


async def test_the_memory_bound_reaches_the_box_and_counts_memfd_pages(tmp_path: Path) -> None:
    """memoryMb becomes the box's memory cgroup, which counts what no rlimit sees: pages
    of a memfd (or of /dev/shm). 300 MB of them under memoryMb=128 stop the run."""
    if _memory_parent()[0] is None:
        pytest.skip(f"no memory cgroup on this machine: {_memory_parent()[1]}")
    source = tmp_path / "hog.py"
    source.write_text(MEMFD_HOG)
    request = build_request(
        snippet.whole_file(MEMFD_HOG, str(source)), Settings(memory_mb=128), tmp_path
    )
    result = await LocalExecutor().run(request)
    assert (result.status, result.stdout) == ("limit", ""), result
    assert result.message == (
        "Memory limit: the run used more than 128 MB, counting files in /dev/shm, /tmp (tmpfs) "
        "and memfd (the codeexec.memoryMb setting); it was killed."
    )


async def test_an_interpreter_named_without_a_folder_is_found_on_the_runs_path(
    tmp_path: Path,
) -> None:
    """codeexec.python may be a bare name: it is looked up on the PATH the run gets (not
    the server's), since the launcher's execv does not search PATH itself."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "projectpython").symlink_to(sys.executable)
    source = tmp_path / "main.py"
    source.write_text("print(6 * 7)\n")
    request = RunRequest(
        snippet.whole_file("print(6 * 7)\n", str(source)),
        "projectpython",
        str(tmp_path),
        {"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    result = await LocalExecutor().run(request)
    assert (result.status, result.stdout) == ("ok", "42\n"), result
    missing = replace(request, python="nosuchpython")
    refused = await LocalExecutor().run(missing)
    assert (refused.status, refused.message) == (
        "internal",
        "Could not start the interpreter 'nosuchpython' (configured): No such file or "
        "directory. Check the codeexec.python setting.",
    )


async def test_an_interpreter_that_is_not_executable_is_named_with_the_reason(
    tmp_path: Path,
) -> None:
    not_executable = tmp_path / "python"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    source = tmp_path / "main.py"
    source.write_text("print(1)\n")
    request = RunRequest(
        snippet.whole_file("print(1)\n", str(source)),
        str(not_executable),
        str(tmp_path),
        {"PATH": "/usr/bin:/bin"},
    )
    result = await LocalExecutor().run(request)
    assert (result.status, result.message) == (
        "internal",
        f"Could not start the interpreter {str(not_executable)!r} (configured): Permission "
        "denied. Check the codeexec.python setting.",
    )


async def test_the_code_runs_in_a_session_of_its_own(tmp_path: Path) -> None:
    """Not in the server's session or process group: the server's terminal signals (Ctrl-C
    where it was started) do not reach the code, and the code's `os.killpg(0, ...)` (a
    common way to stop one's own children) does not reach the server."""
    code = "import os\nprint(os.getsid(0) == os.getpid() == os.getpgid(0), os.getsid(0))\n"
    source = tmp_path / "main.py"
    source.write_text(code)
    request = build_request(snippet.whole_file(code, str(source)), Settings(), tmp_path)
    result = await LocalExecutor().run(request)
    leader, session = result.stdout.split()
    assert leader == "True", result
    assert int(session) not in (os.getsid(0), os.getpgid(0))
