"""The one place that knows how a box is built: confine first, then start the user's code.

Every process-based run (a fresh child, a session worker, a fix being verified, an
/execute request) is started through `launch()`. It does not start the user's
interpreter directly: it starts `python -I -S sandbox_child.py --launch ...` from the
*server's own* interpreter, which applies the namespaces, Landlock, capability drop,
seccomp and uid, writes what it applied to the result pipe, and only then `execve`s the
user's interpreter. So nothing the user's code can plant in the workspace (a wrapper
posing as `.venv/bin/python`, a `.pth` file, `sitecustomize`, `usercustomize`) runs before
the box exists: all of those layers survive `execve`. The server adds the cgroups (pids,
memory) while the interpreter starts; user code runs only once the server sends the
request, after that.

Interface: `Box` (what a run is confined to, hashable: a pre-started child or a worker is
kept for one box) and `launch(box, program, ...)` -> `Launched` (the process and its
guard). `report()` turns what the launcher wrote into the SandboxReport that `doctor`
and the hover show.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from codeexec_lsp.execution.base import Limits, Profile, RunRequest
from codeexec_lsp.execution.sandbox import (
    CHILD_PROGRAM,
    ProcessGuard,
    SandboxReport,
    SandboxSpec,
    build_report,
)

ReportForm = Literal["line", "json"]  # "sandbox {...}\n" (runner.py) or {"sandbox": ...}\n


@dataclass(frozen=True)
class Box:
    spec: SandboxSpec

    @classmethod
    def of(
        cls,
        cwd: str,
        env: Mapping[str, str],
        limits: Limits,
        profile: Profile,
        network: bool,
    ) -> Box:
        return cls(
            SandboxSpec.for_run(
                cwd,
                env,
                network,
                limits.max_processes,
                profile=profile,
                memory_mb=limits.memory_mb,
            )
        )

    @classmethod
    def for_request(cls, request: RunRequest) -> Box:
        return cls.of(
            request.cwd, request.env, request.limits, request.sandbox, request.network_allowed
        )

    @property
    def profile(self) -> Profile:
        return self.spec.profile

    @property
    def network(self) -> bool:
        return self.spec.network

    def guard(self) -> ProcessGuard:
        """The server's half for one child: its pids and memory cgroups."""
        return ProcessGuard(self.spec.max_processes, memory_mb=self.spec.memory_mb)

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        return self.spec.environment(env)

    def command(
        self, guard: ProcessGuard, report_fd: int, form: ReportForm, program: Sequence[str]
    ) -> list[str]:
        """The argv that confines, reports to `report_fd`, then execs `program`."""
        policy = self.spec.policy(guard)
        return [
            sys.executable,
            "-I",
            "-S",
            str(CHILD_PROGRAM),
            "--launch",
            str(report_fd),
            form,
            json.dumps(policy),
            "--",
            *program,
        ]

    def report(self, guard: ProcessGuard, child: Mapping[str, Any] | None) -> SandboxReport:
        return build_report(guard, child, self.network, self.profile)


def resolve(python: str, env: Mapping[str, str]) -> str:
    """The interpreter as a path (execv does not search PATH); unchanged if not found, so
    the launcher's error names what the user configured."""
    if "/" in python:
        return python
    return shutil.which(python, path=env.get("PATH")) or python


def _check_executable(path: str) -> None:
    """Say now, as an OSError, what the launcher's execv would fail on: the caller turns it
    into "could not start the interpreter ... check codeexec.python"."""
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied", path)


async def launch(
    box: Box,
    guard: ProcessGuard,
    program: Sequence[str],
    *,
    report_fd: int,
    form: ReportForm,
    cwd: str,
    env: Mapping[str, str],
    pass_fds: Sequence[int],
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
) -> asyncio.subprocess.Process:
    """Start `program` (its argv[0] the user's interpreter) inside `box`, in its own session
    (process group). Raises OSError when nothing can be started at all; an interpreter
    that cannot be exec'd makes the launcher exit with 127 and say why on stderr."""
    argv = [resolve(program[0], env), *program[1:]]
    _check_executable(argv[0])
    return await asyncio.create_subprocess_exec(
        *box.command(guard, report_fd, form, argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=box.environment(env),
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )
