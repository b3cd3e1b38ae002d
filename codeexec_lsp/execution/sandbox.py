"""How executed code is confined, and the server's half of it (DESIGN.md principle 8).

Two profiles, built by launcher.py before the user's interpreter starts:

- `standard` (the user's own runs): network on; writes wherever the user may except the
  kernel's files (/proc, /sys, device nodes); a Landlock domain that keeps the server out
  of reach (its /proc environ, memory and fds cannot be read, it cannot be traced or
  signalled); root's admin capabilities dropped; all the limits.
- `strict` (fix verification, every /execute request, opt-in): no network (a network
  namespace, else a user + network namespace, else a seccomp filter); a private mount
  namespace with a copy-on-write overlay of the workspace (read-only where the kernel has
  no overlay), empty private /tmp, /var/tmp, /run and /dev/shm that vanish with the run,
  no terminals, everything else read-only; Landlock write limits and scoping of signals
  and abstract Unix sockets; every capability dropped, and a separate uid on a root
  server where the interpreter allows it.

In both, processes are bounded by a pids cgroup per run (per session worker), else a
separate uid (CODEEXEC_RUN_AS, honoured whenever it is set), else a supervisor that counts
the run's process tree; memory by a memory cgroup (which counts tmpfs and memfd pages),
besides the child's RLIMIT_AS. Each layer is reported (by `doctor` and on the hover of a
run) rather than assumed, with why a better mechanism was not available.

The steps that happen in the child, before the user's interpreter is exec'd, are in
sandbox_child.py (stdlib only, run by the launcher under the server's interpreter).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from codeexec_lsp.execution import sandbox_child
from codeexec_lsp.execution.base import Profile

log = logging.getLogger("codeexec_lsp.sandbox")

CHILD_PROGRAM = Path(__file__).with_name("sandbox_child.py")
# Tried in this order; tests shorten them to exercise the fallbacks.
NETWORK_METHODS: tuple[str, ...] = ("netns", "userns", "seccomp")
FILESYSTEM_METHODS: tuple[str, ...] = ("landlock", "mountns")
CGROUP_MOUNT = Path("/sys/fs/cgroup")
CGROUP_DIR = "codeexec"
RUN_AS_ENV = "CODEEXEC_RUN_AS"  # "uid[:gid]": run code as this user (root servers only)
WATCH_INTERVAL_S = 0.02
KILL_TIMEOUT_S = 3.0
USER_TASKS_CACHE_S = 10.0
ProcessMechanism = Literal["cgroup", "uid", "supervisor", "group"]
NETWORK_NAMES = {
    "netns": "network namespace",
    "userns": "user + network namespace",
    "seccomp": "seccomp filter refusing inet sockets",
}


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    applied: bool
    mechanism: str = ""  # what does it ("pids cgroup v1", "Landlock ABI 7"), if anything
    detail: str = ""  # the bound it gives, or why it is not there
    missing: tuple[str, ...] = ()  # why better mechanisms were not used
    short: str = ""  # for the one-line summary, e.g. "processes ≤ 256 (pids cgroup)"

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "mechanism": self.mechanism,
            "detail": self.detail,
            "missing": list(self.missing),
            "short": self.short,
        }


@dataclass(frozen=True)
class SandboxReport:
    """What one child got. `filesystem` is the write confinement (strict), or in the
    standard profile the Landlock domain that keeps the server out of reach; `mounts` is
    the strict profile's private mount namespace; `memory` the memory cgroup."""

    processes: Layer
    network: Layer
    filesystem: Layer
    network_allowed: bool = False
    notes: tuple[str, ...] = ()
    profile: str = "standard"
    mounts: Layer = Layer(False, "", "not asked for (standard profile)")
    memory: Layer = Layer(False, "", "not asked for")
    run_as: str = ""  # "uid 65534, gid 65534" when the code ran as another user

    def summary(self) -> str:
        """One line for the hover of a run, e.g. "strict · network off · workspace writes
        thrown away (overlay) · processes ≤ 256 (pids cgroup)"."""
        parts = [self.profile]
        if self.network_allowed:
            parts.append("network on")
        elif self.network.applied:
            parts.append("network off")
        else:
            parts.append("⚠ network NOT blocked")
        if self.profile == "strict":
            if self.mounts.applied:
                parts.append(self.mounts.short)
            if self.filesystem.applied:
                parts.append("writes limited to the workspace and private temp dirs")
            elif not self.mounts.applied:
                parts.append("⚠ writes NOT limited")
        elif self.filesystem.applied:
            parts.append("server out of reach")
        else:
            parts.append("⚠ server's processes NOT out of reach")
        if self.processes.applied:
            parts.append(self.processes.short or self.processes.mechanism)
        else:
            parts.append("⚠ processes NOT bounded")
        if self.memory.applied:
            parts.append(self.memory.short)
        if self.run_as:
            parts.append(f"as {self.run_as.split(',')[0]}")
        return " · ".join(parts)

    def lines(self) -> list[str]:
        """For `doctor`: each layer, what does it, and why anything better is missing."""

        def describe(name: str, layer: Layer, off: str = "") -> list[str]:
            if off:
                head = off
            elif layer.applied:
                head = f"{layer.detail or 'off'} ({layer.mechanism})"
            else:
                head = "NOT applied" + (f": {layer.detail}" if layer.detail else "")
            out = [f"  {name:<11} {head}"]
            out += [f"  {'':<11}   not used: {reason}" for reason in layer.missing]
            return out

        allowed = "allowed (profile standard, or codeexec.network)" if self.network_allowed else ""
        result = [f"  {'profile':<11} {self.profile}"]
        result += describe("processes", self.processes)
        result += describe("memory", self.memory)
        result += describe("network", self.network, allowed)
        result += describe("filesystem", self.filesystem)
        if self.profile == "strict":
            result += describe("mounts", self.mounts)
        result += [f"  {'':<11} {note}" for note in self.notes]
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "processes": self.processes.to_json(),
            "memory": self.memory.to_json(),
            "network": self.network.to_json(),
            "filesystem": self.filesystem.to_json(),
            "mounts": self.mounts.to_json(),
            "network_allowed": self.network_allowed,
            "notes": list(self.notes),
            "run_as": self.run_as,
            "summary": self.summary(),
        }


# --- what a child is asked for -----------------------------------------------------------


# Kernel interfaces a standard run does not write, even as root (see SandboxSpec.for_run).
STANDARD_UNWRITABLE = ("proc", "sys", "dev")
STANDARD_DEVICE_DIRS = ("/dev/shm", "/dev/pts", "/dev/mqueue")
STANDARD_WRITABLE_FILES = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
)


def standard_writable_dirs() -> tuple[str, ...]:
    """Every top-level directory but the kernel's: writes anywhere the user may."""
    try:
        names = sorted(os.listdir("/"))
    except OSError:
        return ("/",)
    return tuple(
        f"/{name}"
        for name in names
        if name not in STANDARD_UNWRITABLE and os.path.isdir(f"/{name}")
    )


# Strict runs get empty private copies of these (a private mount namespace): other runs'
# leftovers, the API's other work dirs and the host daemons' pathname sockets live there.
STRICT_PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run")
STRICT_WRITABLE_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
STRICT_TEMP = "/tmp"
# A root server runs strict code as this uid (unless CODEEXEC_RUN_AS names one), where the
# interpreter is open to other users; the launcher checks and reports.
STRICT_UID = (65534, 65534)


@dataclass(frozen=True)
class SandboxSpec:
    """What a child is confined to. Hashable: a pre-started child or a session worker is
    confined when it starts, so this is part of what it is kept for."""

    network: bool
    writable: tuple[str, ...]
    max_processes: int
    profile: Profile = "standard"
    workspace: str = ""
    memory_mb: int = 0  # a memory cgroup's bound (counts tmpfs and memfd pages); 0: none

    @classmethod
    def for_run(
        cls,
        cwd: str,
        env: Mapping[str, str],
        network: bool,
        max_processes: int,
        profile: Profile = "standard",
        memory_mb: int = 0,
    ) -> SandboxSpec:
        workspace = os.path.realpath(cwd)
        writable: tuple[str, ...]
        if profile == "strict":
            writable = (workspace, *STRICT_PRIVATE_DIRS, "/dev/shm", "/dev/mqueue")
        else:
            # The user's own code writes wherever the user may (principle 8): Landlock is
            # still applied, for what it scopes (ptrace, /proc of the server, signals), and
            # keeps the kernel's own files out of reach: a root child writing /sys could
            # leave its cgroups (and their limits), /proc/sysrq-trigger could stop the
            # machine, /dev/vda is the disk.
            writable = (*standard_writable_dirs(), *STANDARD_DEVICE_DIRS)
        return cls(
            network, tuple(dict.fromkeys(writable)), max_processes, profile, workspace, memory_mb
        )

    def policy(self, guard: ProcessGuard) -> dict[str, Any]:
        """The JSON object sandbox_child.apply() takes."""
        strict = self.profile == "strict"
        policy: dict[str, Any] = {
            **guard.child_policy(strict=strict),
            "profile": self.profile,
            "network": self.network,
            "network_methods": list(NETWORK_METHODS),
            "writable": list(self.writable),
            "writable_files": list(STRICT_WRITABLE_FILES if strict else STANDARD_WRITABLE_FILES),
            "filesystem_methods": [m for m in FILESYSTEM_METHODS if m == "landlock" or strict],
            "drop_caps": True,
            "drop_all_caps": strict,
            "strict_uid": list(STRICT_UID) if strict else None,
            "scope_abstract": strict or not self.network,
        }
        if strict:
            # The mount namespace does what the mountns fallback did, and more.
            policy["filesystem_methods"] = [m for m in FILESYSTEM_METHODS if m == "landlock"]
            policy["strict"] = {
                "workspace": self.workspace,
                "private_dirs": list(STRICT_PRIVATE_DIRS),
                "hide_terminals": True,
                # The server's own environment stays visible (read-only) even if it lives
                # under /tmp: the default interpreter, and environments built on it (the
                # API's library cache) read its site-packages.
                "keep": [sys.prefix],
            }
        return policy

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment the boxed code gets: a strict run's temp files go to its
        private /tmp, whatever the server's TMPDIR says."""
        if self.profile != "strict":
            return dict(env)
        result = {k: v for k, v in env.items() if k not in ("TMPDIR", "TEMP", "TMP")}
        result["TMPDIR"] = STRICT_TEMP
        return result


# --- processes: the server's half ----------------------------------------------------------


@dataclass(frozen=True)
class ProcessPlan:
    mechanism: ProcessMechanism
    cgroup_parent: Path | None = None
    cgroup_version: int = 0
    run_as: tuple[int, int] | None = None
    missing: tuple[str, ...] = ()
    memory_parent: Path | None = None  # where memory cgroups go (they count tmpfs, memfd)
    memory_missing: str = ""


_LEAF_NUMBERS = itertools.count(1)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _cgroup_problem(exc: OSError, path: Path) -> str:
    if isinstance(exc, PermissionError) or exc.errno == 30:  # EROFS: a container's mount
        return f"no write access to {path} (needs root, or a cgroup delegated to this user)"
    return f"{path}: {exc.strerror or exc}"


def _own_cgroup(controller: str) -> str:
    """Our cgroup in a v1 hierarchy, relative to its root."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/cgroup") as lines:
        for line in lines:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return "/"


def _make_leaf(parent: Path, limit: int) -> Path:
    leaf = parent / f"{os.getpid()}-{next(_LEAF_NUMBERS)}"
    leaf.mkdir()
    try:
        _write(leaf / "pids.max", str(limit))
    except OSError:
        leaf.rmdir()
        raise
    return leaf


def _cgroup_pids(cgroup: Path) -> list[int]:
    try:
        return [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _sweep_stale(parent: Path) -> None:
    """Leaves of servers that died without cleaning up (name: "<server pid>-<n>")."""
    with contextlib.suppress(OSError):
        for leaf in parent.iterdir():
            owner = leaf.name.split("-", 1)[0]
            if not owner.isdigit() or int(owner) == os.getpid() or _alive(int(owner)):
                continue
            for pid in _cgroup_pids(leaf):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                leaf.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_parent(parent: Path, version: int) -> str | None:
    """Make `parent` (codeexec/) and prove a leaf with a pids limit can be made in it."""
    try:
        if version == 2:
            control = parent.parent / "cgroup.subtree_control"
            if "pids" not in control.read_text().split():
                _write(control, "+pids")
        parent.mkdir(exist_ok=True)
        if version == 2 and "pids" not in (parent / "cgroup.subtree_control").read_text():
            _write(parent / "cgroup.subtree_control", "+pids")
        _sweep_stale(parent)
        _make_leaf(parent, 1).rmdir()
    except OSError as exc:
        return _cgroup_problem(exc, Path(exc.filename) if exc.filename else parent)
    return None


def _cgroup_parent() -> tuple[Path | None, int, str]:
    if not sys.platform.startswith("linux"):
        return None, 0, "needs Linux"
    if (CGROUP_MOUNT / "cgroup.controllers").exists():
        if "pids" not in (CGROUP_MOUNT / "cgroup.controllers").read_text().split():
            return None, 0, "the cgroup v2 hierarchy has no pids controller"
        # The server's own cgroup holds processes (us), so by cgroup v2's rules it cannot
        # hand controllers to children: our cgroups go under the hierarchy's root.
        parent = CGROUP_MOUNT / CGROUP_DIR
        problem = _try_parent(parent, 2)
        return (None, 0, problem) if problem else (parent, 2, "")
    hierarchy = CGROUP_MOUNT / "pids"
    if not (hierarchy / "cgroup.procs").exists():
        return None, 0, "no pids controller is mounted under /sys/fs/cgroup"
    # Nested under our own cgroup, so limits set on the server (e.g. a container's) hold.
    own = hierarchy / _own_cgroup("pids").lstrip("/")
    problem = "no cgroup"
    for base in dict.fromkeys((own, hierarchy)):
        if base.is_dir():
            problem = _try_parent(base / CGROUP_DIR, 1) or ""
            if not problem:
                return base / CGROUP_DIR, 1, ""
    return None, 0, problem


def _run_as() -> tuple[tuple[int, int] | None, str]:
    value = os.environ.get(RUN_AS_ENV, "").strip()
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not value:
        if root:
            return None, f"separate uid: not asked for (set {RUN_AS_ENV}=uid[:gid])"
        return None, ""
    if not root:
        return None, f"separate uid: {RUN_AS_ENV} is set, but only a root server can switch"
    uid_text, _, gid_text = value.partition(":")
    try:
        uid = int(uid_text)
        if gid_text:
            gid = int(gid_text)
        else:
            import pwd

            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                gid = uid
    except ValueError:
        return None, f"separate uid: {RUN_AS_ENV}={value!r} is not uid[:gid]"
    if uid == 0:
        return None, f"separate uid: {RUN_AS_ENV} names root"
    return (uid, gid), ""


def _memory_parent() -> tuple[Path | None, str]:
    """Where per-run memory cgroups can be made: memory.max / memory.limit_in_bytes count
    tmpfs and memfd pages, which RLIMIT_AS does not."""
    if not sys.platform.startswith("linux"):
        return None, "needs Linux"
    if (CGROUP_MOUNT / "cgroup.controllers").exists():
        parent = CGROUP_MOUNT / CGROUP_DIR
        try:
            if "memory" not in (CGROUP_MOUNT / "cgroup.controllers").read_text().split():
                return None, "the cgroup v2 hierarchy has no memory controller"
            control = CGROUP_MOUNT / "cgroup.subtree_control"
            if "memory" not in control.read_text().split():
                _write(control, "+memory")
            parent.mkdir(exist_ok=True)
            if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                _write(parent / "cgroup.subtree_control", "+memory")
        except OSError as exc:
            return None, _cgroup_problem(exc, Path(exc.filename) if exc.filename else parent)
        return parent, ""
    hierarchy = CGROUP_MOUNT / "memory"
    if not (hierarchy / "cgroup.procs").exists():
        return None, "no memory controller is mounted under /sys/fs/cgroup"
    own = hierarchy / _own_cgroup("memory").lstrip("/")
    problem = "no cgroup"
    for base in dict.fromkeys((own, hierarchy)):
        parent = base / CGROUP_DIR
        try:
            parent.mkdir(exist_ok=True)
            _sweep_stale(parent)
            probe = parent / f"{os.getpid()}-probe"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
            return parent, ""
        except OSError as exc:
            problem = _cgroup_problem(exc, Path(exc.filename) if exc.filename else parent)
    return None, problem


@functools.cache
def process_plan() -> ProcessPlan:
    """The best process bound this server can give, decided once per server. A uid asked
    for with CODEEXEC_RUN_AS is used whenever it is set, whatever bounds the processes."""
    missing: list[str] = []
    memory_parent, memory_missing = _memory_parent()
    run_as, run_as_problem = _run_as()
    parent, version, problem = _cgroup_parent()
    if parent is not None:
        return ProcessPlan(
            "cgroup",
            cgroup_parent=parent,
            cgroup_version=version,
            run_as=run_as,
            missing=(run_as_problem,) if run_as_problem and os.environ.get(RUN_AS_ENV) else (),
            memory_parent=memory_parent,
            memory_missing=memory_missing,
        )
    missing.append(f"pids cgroup: {problem}")
    if run_as_problem:
        missing.append(run_as_problem)
    if run_as is not None:
        return ProcessPlan(
            "uid",
            run_as=run_as,
            missing=tuple(missing),
            memory_parent=memory_parent,
            memory_missing=memory_missing,
        )
    if os.path.exists("/proc/self/stat"):
        return ProcessPlan(
            "supervisor",
            missing=tuple(missing),
            memory_parent=memory_parent,
            memory_missing=memory_missing,
        )
    missing.append("supervisor: needs /proc (Linux)")
    return ProcessPlan("group", missing=tuple(missing))


_user_tasks_cache: tuple[float, int] | None = None


def _user_tasks() -> int | None:
    """Processes and threads of our real uid: what RLIMIT_NPROC counts."""
    global _user_tasks_cache
    now = time.monotonic()
    if _user_tasks_cache is not None and now - _user_tasks_cache[0] < USER_TASKS_CACHE_S:
        return _user_tasks_cache[1]
    if not os.path.isdir("/proc/self/task"):
        return None
    uid, total = str(os.getuid()), 0
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            with contextlib.suppress(OSError), open(f"/proc/{name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
                if fields.get("Uid", "").split()[:1] == [uid]:
                    total += int(fields.get("Threads", "1").strip() or 1)
    _user_tasks_cache = (now, total)
    return total


@functools.cache
def _children_files() -> bool:
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")  # CONFIG_PROC_CHILDREN


def count_tree(root: int, most: int) -> int:
    """How many processes `root`'s tree holds (itself included), counted no further than
    past `most`: a fork bomb's tree can be huge, and reading all of /proc takes long
    enough for it to grow a lot more."""
    if not _children_files():
        return len(sandbox_child.descendants(root)) + 1
    count, todo = 1, [root]
    while todo:
        pid = todo.pop()
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                with open(f"/proc/{pid}/task/{thread}/children") as handle:
                    children = handle.read().split()
            except OSError:
                continue
            count += len(children)
            if count > most:
                return count
            todo.extend(int(child) for child in children)
    return count


class ProcessGuard:
    """The server's half of the process bound for one child: a run, or a session worker."""

    def __init__(self, limit: int, plan: ProcessPlan | None = None, memory_mb: int = 0) -> None:
        self.limit = limit
        self.memory_mb = memory_mb
        self.plan = plan if plan is not None else process_plan()
        self.memory_cgroup: Path | None = None
        self.memory_entered = False
        self.memory_problem = self.plan.memory_missing
        if memory_mb and self.plan.memory_parent is not None:
            self.memory_cgroup = self._make_memory_leaf(self.plan.memory_parent, memory_mb)
        self.mechanism: ProcessMechanism = self.plan.mechanism
        self.missing = list(self.plan.missing)
        self.cgroup: Path | None = None
        self.entered: bool | None = None  # whether the child was moved into the cgroup
        self.enter_problem = ""
        self.supervisor_hits = 0
        self._pids_events: int | None = None  # pids.events, kept open while the cgroup exists
        self._memory_events: int | None = None  # the same for the memory cgroup
        if self.mechanism == "cgroup" and self.plan.cgroup_parent is not None:
            try:
                self.cgroup = _make_leaf(self.plan.cgroup_parent, limit)
            except OSError as exc:
                self.missing.append(f"pids cgroup: {_cgroup_problem(exc, self.plan.cgroup_parent)}")
                self.mechanism = "supervisor" if os.path.exists("/proc/self/stat") else "group"

    def _make_memory_leaf(self, parent: Path, memory_mb: int) -> Path | None:
        leaf = parent / f"{os.getpid()}-m{next(_LEAF_NUMBERS)}"
        limit = str(memory_mb * 1024 * 1024)
        try:
            leaf.mkdir()
            name = "memory.max" if (leaf / "memory.max").exists() else "memory.limit_in_bytes"
            _write(leaf / name, limit)
            if (leaf / "memory.swap.max").exists():
                _write(leaf / "memory.swap.max", "0")
        except OSError as exc:
            self.memory_problem = _cgroup_problem(exc, leaf)
            with contextlib.suppress(OSError):
                leaf.rmdir()
            return None
        return leaf

    def memory_events(self) -> int:
        """How often the memory cgroup killed a process of the run for going over.

        Read twice per run, like pids.events: the file (v2's memory.events, else v1's
        memory.oom_control) is opened once per cgroup and read with pread."""
        if self.memory_cgroup is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            if self._memory_events is None:
                for name in ("memory.events", "memory.oom_control"):
                    with contextlib.suppress(OSError):
                        path = self.memory_cgroup / name
                        self._memory_events = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                        break
            if self._memory_events is not None:
                for line in os.pread(self._memory_events, 4096, 0).decode().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    @property
    def tracks_tree(self) -> bool:
        """Without a cgroup, the run's processes are found through the subreaper's tree."""
        return self.mechanism in ("uid", "supervisor")

    def child_policy(self, strict: bool = False) -> dict[str, Any]:
        nproc: int | None = None
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if self.mechanism == "uid":
            nproc = self.limit  # a dedicated uid: its count is (nearly) ours alone
        elif not root and self.mechanism in ("supervisor", "group"):
            # Per uid, so it must leave room for everything else the user runs.
            tasks = _user_tasks()
            nproc = tasks + self.limit if tasks is not None else None
        return {
            "run_as": list(self.plan.run_as) if self.plan.run_as else None,
            "nproc": nproc,
            "subreaper": self.tracks_tree,
        }

    def adopt_now(self, pid: int) -> None:
        """Move the child into its cgroup. Done by the server, not the child: the first
        move into a fresh cgroup waits for an RCU grace period (~10 ms on cgroup v1),
        which the server can overlap with the child's interpreter start-up. Its user
        code only runs after this, once the server sends the request."""
        if self.memory_cgroup is not None:
            try:
                _write(self.memory_cgroup / "cgroup.procs", str(pid))
                self.memory_entered = True
            except OSError as exc:
                self.memory_problem = f"could not move the child into {self.memory_cgroup}: {exc}"
                self.memory_cgroup = None
        if self.cgroup is None:
            return
        try:
            _write(self.cgroup / "cgroup.procs", str(pid))
            self.entered = True
        except OSError as exc:
            self.entered = False
            self.enter_problem = f"could not move the child into {self.cgroup}: {exc.strerror}"

    async def adopt(self, pid: int) -> None:
        await asyncio.to_thread(self.adopt_now, pid)

    @property
    def counts_refusals(self) -> bool:
        """Whether limit_events() sees every fork the bound refused (a cgroup does; a
        uid's RLIMIT_NPROC leaves no trace but the error)."""
        return self.mechanism == "cgroup" and bool(self.entered)

    def limit_events(self) -> int:
        """How often the limit was hit: forks the cgroup refused, or supervisor kills.

        Read twice per run: the file is opened once per cgroup and read with pread (one
        system call instead of open/fstat/read/close through pathlib)."""
        if self.cgroup is None:
            return self.supervisor_hits
        with contextlib.suppress(OSError, ValueError):
            if self._pids_events is None:
                self._pids_events = os.open(self.cgroup / "pids.events", os.O_RDONLY | os.O_CLOEXEC)
            for line in os.pread(self._pids_events, 4096, 0).decode().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        return 0

    def _close_pids_events(self) -> None:
        events, self._pids_events = getattr(self, "_pids_events", None), None
        if events is not None:
            with contextlib.suppress(OSError):
                os.close(events)

    def _close_memory_events(self) -> None:
        events, self._memory_events = getattr(self, "_memory_events", None), None
        if events is not None:
            with contextlib.suppress(OSError):
                os.close(events)

    def __del__(self) -> None:
        self._close_pids_events()
        self._close_memory_events()

    def watcher(self, pid: int) -> asyncio.Task[None] | None:
        """A task that ends when `pid`'s tree grows past the limit (supervisor only: a
        cgroup or an unprivileged uid's RLIMIT_NPROC are enforced by the kernel)."""
        if self.mechanism != "supervisor":
            return None
        return asyncio.ensure_future(self._watch(pid))

    async def _watch(self, pid: int) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if count_tree(pid, self.limit) > self.limit:
                self.supervisor_hits += 1
                return

    def _remaining(self, pid: int, keep_root: bool) -> list[int]:
        if self.cgroup is not None:
            return [p for p in _cgroup_pids(self.cgroup) if not (keep_root and p == pid)]
        if self.tracks_tree and pid > 1:  # pid 0 or 1 would stand for the whole machine
            return sorted(sandbox_child.descendants(pid))
        return []

    def kill_now(self, pid: int, keep_root: bool = False) -> None:
        """One pass at killing what the child started (and the child, unless `keep_root`).
        Call it before killing the child itself: a subreaper's orphans are only found
        while it lives."""
        if self.cgroup is not None:
            if not keep_root and (self.cgroup / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    _write(self.cgroup / "cgroup.kill", "1")
            for member in self._remaining(pid, keep_root):
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)
        elif self.tracks_tree and pid > 1:
            sandbox_child.stop_and_kill_tree(pid, include_root=not keep_root)

    async def kill(self, pid: int, keep_root: bool = False) -> None:
        """Kill until nothing of the child's is left (a fork bomb refills its slots while
        the first round of kills is delivered)."""
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while True:
            self.kill_now(pid, keep_root)
            if not self._remaining(pid, keep_root) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.005)

    def _remove_memory_leaf(self) -> None:
        self._close_memory_events()
        leaf, self.memory_cgroup = self.memory_cgroup, None
        if leaf is None:
            return
        for member in _cgroup_pids(leaf):
            with contextlib.suppress(OSError):
                os.kill(member, signal.SIGKILL)
        for _ in range(200):
            try:
                leaf.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.005)

    async def release(self, pid: int) -> None:
        """After the child is gone: kill any leftovers and remove the cgroups."""
        await self.kill(pid)
        await asyncio.to_thread(self._remove_memory_leaf)
        self._close_pids_events()
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is None:
            return
        for _ in range(200):  # the last killed processes leave the cgroup as they exit
            try:
                cgroup.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                for member in _cgroup_pids(cgroup):
                    with contextlib.suppress(OSError):
                        os.kill(member, signal.SIGKILL)
                await asyncio.sleep(0.005)
        log.warning("could not remove %s; a later server start removes it", cgroup)

    def close_now(self) -> None:
        """release() for a child that has exited, without an event loop (doctor's probe)."""
        self._remove_memory_leaf()
        if self.cgroup is not None:
            for member in _cgroup_pids(self.cgroup):
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)
        self._close_pids_events()
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is not None:
            for _ in range(200):
                try:
                    cgroup.rmdir()
                    return
                except OSError:
                    time.sleep(0.005)

    def layer(self, child: Mapping[str, Any]) -> Layer:
        missing = tuple(self.missing)
        bound = f"processes ≤ {self.limit}"
        if self.mechanism == "cgroup":
            if self.entered:
                version = self.plan.cgroup_version
                short = f"{bound} (pids cgroup)"
                return Layer(True, f"pids cgroup v{version}", bound, missing, short)
            reason = self.enter_problem or "the child was not placed in it"
            return Layer(False, "pids cgroup", reason, missing)
        nproc = child.get("nproc") or {}
        nproc_note = f"; {nproc['detail']}" if nproc.get("ok") else ""
        subreaper = child.get("subreaper")
        if self.mechanism == "uid":
            switched = child.get("run_as") or {}
            if switched.get("ok") and nproc.get("ok"):
                mechanism = f"separate uid ({switched['detail']})"
                return Layer(True, mechanism, bound, missing, f"{bound} (separate uid)")
            reason = switched.get("detail") or nproc.get("detail") or "no report"
            return Layer(False, "separate uid", reason, missing)
        if self.mechanism == "supervisor":
            escapes = "" if subreaper else "; children that call setsid() may escape"
            detail = f"{bound}, counted every {WATCH_INTERVAL_S * 1000:.0f} ms{nproc_note}"
            if not nproc.get("ok"):
                # Nothing in the kernel stops root's forks between two counts.
                detail += (
                    "; best effort only: a fast fork bomb can outrun the count (give the "
                    f"server a pids cgroup, or set {RUN_AS_ENV})"
                )
                short = f"⚠ {bound} (supervisor, best effort)"
            else:
                short = f"{bound} (supervisor)"
            return Layer(True, "supervisor", detail + escapes, missing, short)
        return Layer(
            False,
            "process group",
            "no process limit; children that call setsid() can outlive the run" + nproc_note,
            missing,
        )


# --- putting it together -------------------------------------------------------------------

_warned: set[str] = set()


def _network_layer(child: Mapping[str, Any], allowed: bool) -> Layer:
    network = child.get("network")
    if allowed:
        return Layer(False, "", "allowed")
    if not isinstance(network, Mapping):
        return Layer(False, "", "the child did not report")
    method = network.get("mechanism")
    missing = tuple(str(reason) for reason in network.get("missing", ()))
    if method:
        return Layer(True, NETWORK_NAMES.get(str(method), str(method)), "", missing)
    return Layer(False, "", str(network.get("detail") or "no mechanism was available"))


def _filesystem_layer(child: Mapping[str, Any], profile: str) -> Layer:
    fs = child.get("filesystem")
    if not isinstance(fs, Mapping):
        return Layer(False, "", "the child did not report")
    paths = [str(path) for path in fs.get("writable", ())]
    devices = [path for path in paths if path.startswith("/dev/")]
    writable = ", ".join(path for path in paths if path not in devices)
    if devices:
        writable += f" and {len(devices)} device paths such as /dev/null and /dev/shm"
    method = fs.get("mechanism")
    missing = tuple(str(reason) for reason in fs.get("missing", ()))
    if method == "landlock":
        if profile == "standard":
            detail = (
                "writes wherever the user may, except /proc, /sys and device nodes; the "
                "server's /proc (environment, memory, fds) cannot be read, nor its "
                "processes traced or signalled"
            )
            return Layer(True, f"Landlock ABI {fs.get('abi')}", detail, missing)
        return Layer(True, f"Landlock ABI {fs.get('abi')}", f"writes only in {writable}", missing)
    if method == "mountns":
        detail = f"writes only in {writable}" + (f"; {fs['detail']}" if fs.get("detail") else "")
        return Layer(True, "read-only mount namespace", detail, missing)
    if profile == "standard":
        detail = str(fs.get("detail") or "no mechanism was available")
        detail += (
            "; without Landlock, code of the same uid can read the server's /proc "
            f"(set {RUN_AS_ENV} to run code as another uid)"
        )
        return Layer(False, "", detail)
    return Layer(False, "", str(fs.get("detail") or "no mechanism was available"))


def _mounts_layer(child: Mapping[str, Any], profile: str) -> Layer:
    if profile != "strict":
        return Layer(False, "", "not asked for (standard profile)")
    mounts = child.get("mounts")
    if not isinstance(mounts, Mapping):
        return Layer(False, "", "the child did not report")
    workspace = mounts.get("workspace")
    private = ", ".join(str(p) for p in mounts.get("private", ()))
    hidden = ", ".join(str(p) for p in mounts.get("hidden", ()))
    if workspace == "overlay":
        what = "workspace writes thrown away at the end (overlay)"
    elif workspace == "read-only":
        what = "workspace read-only (this kernel offered no overlay)"
    else:
        return Layer(False, "", str(mounts.get("detail") or "no private mount namespace"))
    detail = f"{what}; private, emptied {private}; everything else read-only"
    if hidden:
        detail += f"; no terminals ({hidden})"
    if mounts.get("detail"):
        detail += f"; {mounts['detail']}"
    short = what.replace(" at the end", "")
    return Layer(bool(mounts.get("ok")), "private mount namespace", detail, (), short)


def _memory_layer(guard: ProcessGuard, child: Mapping[str, Any]) -> Layer:
    if not guard.memory_mb:
        return Layer(False, "", "not asked for")
    bound = f"memory ≤ {guard.memory_mb} MB"
    if guard.memory_entered:
        detail = f"{bound}, tmpfs and memfd pages included"
        return Layer(True, "memory cgroup", detail, (), f"{bound} (memory cgroup)")
    reason = guard.memory_problem or "no memory cgroup"
    return Layer(
        False,
        "",
        f"only RLIMIT_AS ({bound} of address space): tmpfs and memfd pages are not counted "
        f"({reason})",
    )


def build_report(
    guard: ProcessGuard,
    child: Mapping[str, Any] | None,
    network_allowed: bool,
    profile: str = "standard",
) -> SandboxReport:
    """What was applied to one child, from the server's side and the child's report."""
    child = child or {}
    profile = str(child.get("profile") or profile)
    notes = []
    capabilities = child.get("capabilities")
    if isinstance(capabilities, Mapping):
        if capabilities.get("ok") and capabilities.get("detail") == "all":
            notes.append("every capability of root dropped")
        elif capabilities.get("ok"):
            notes.append(
                "root's admin capabilities dropped (SYS_ADMIN, SYS_PTRACE, SYS_RESOURCE, ...)"
            )
        else:
            notes.append(f"capabilities not dropped: {capabilities.get('detail')}")
    switched = child.get("run_as")
    if isinstance(switched, Mapping) and guard.mechanism != "uid":
        source = RUN_AS_ENV if os.environ.get(RUN_AS_ENV) else f"strict profile, {RUN_AS_ENV} unset"
        notes.append(
            f"runs as {switched.get('detail')} ({source})"
            if switched.get("ok")
            else f"separate uid NOT applied: {switched.get('detail')}"
        )
    elif guard.plan.missing and not switched and os.environ.get(RUN_AS_ENV):
        notes += [m for m in guard.plan.missing if m.startswith("separate uid")]
    fs = child.get("filesystem")
    if isinstance(fs, Mapping) and fs.get("scoped"):
        notes.append(f"Landlock also refuses {' and '.join(fs['scoped'])} outside the run")
    notes += [f"error: {error}" for error in child.get("errors", ())]
    report = SandboxReport(
        processes=guard.layer(child),
        network=_network_layer(child, network_allowed),
        filesystem=_filesystem_layer(child, profile),
        network_allowed=network_allowed,
        notes=tuple(notes),
        profile=profile,
        mounts=_mounts_layer(child, profile),
        memory=_memory_layer(guard, child),
        run_as=str(switched.get("detail", ""))
        if isinstance(switched, Mapping) and switched.get("ok")
        else "",
    )
    _warn_once(report)
    return report


def _warn_once(report: SandboxReport) -> None:
    """Say plainly, once per server, which layer could not be applied (not on every run)."""
    layers = (
        ("network", report.network, not report.network_allowed),
        ("file system", report.filesystem, True),
        ("processes", report.processes, True),
    )
    for name, layer, wanted in layers:
        if wanted and not layer.applied and name not in _warned:
            _warned.add(name)
            log.warning("sandbox: %s NOT confined for executed code: %s", name, layer.detail)


def probe(
    python: str | None = None, cwd: str | None = None, profile: Profile = "strict"
) -> SandboxReport:
    """What a run gets here: the server's process bound, and the child-side layers applied
    for real in a throwaway child of `python` (default: the server's), for `profile` (the
    strict one by default: it uses every mechanism, so it shows what the machine lacks)."""
    python = python or sys.executable
    cwd = cwd or os.getcwd()
    network = profile == "standard"
    spec = SandboxSpec.for_run(
        cwd, os.environ, network=network, max_processes=256, profile=profile, memory_mb=1024
    )
    guard = ProcessGuard(spec.max_processes, memory_mb=spec.memory_mb)
    policy = spec.policy(guard)
    child: dict[str, Any] = {}
    try:
        with subprocess.Popen(
            [python, "-I", "-S", str(CHILD_PROGRAM), "--probe", json.dumps(policy)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            start_new_session=True,
        ) as process:
            guard.adopt_now(process.pid)
            stdout, _ = process.communicate(timeout=30)
        child = json.loads(stdout or "{}")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        child = {"errors": [f"the probe child failed: {exc}"]}
    finally:
        guard.close_now()
    report = build_report(guard, child, network_allowed=network, profile=profile)
    check = (child.get("network") or {}).get("check")
    if check and check != "reachable" and report.network.applied:
        return report
    if check == "reachable":
        return replace(
            report,
            network=Layer(
                False, report.network.mechanism, "a loopback connection still got through"
            ),
        )
    return report
