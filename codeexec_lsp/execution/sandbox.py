"""How executed code is confined, and the server's half of it.

Three layers, each with fallbacks, each reported (by `doctor` and on the hover of a run)
rather than assumed:

- processes: a pids cgroup per run (per session worker) bounds processes and threads even
  for root, and lets everything the run started be killed at the end, including children
  that called setsid(); else, for a root server told to (CODEEXEC_RUN_AS), a separate
  unprivileged uid whose RLIMIT_NPROC the kernel enforces; else a supervisor: the child
  becomes a subreaper so orphans stay in its process tree, and the server counts that tree
  and kills it (plus RLIMIT_NPROC for a non-root user); else only the process group.
- network: a new network namespace (root), else a user + network namespace, else a
  seccomp filter refusing inet sockets; `codeexec.network: true` leaves it on.
- file system: Landlock, else a read-only mount namespace; writes stay allowed in the
  working directory, the temp dir and a few devices. Reads are never restricted.

The steps that must happen inside the child, before user code, are in sandbox_child.py,
which runs under the user's interpreter (stdlib only).
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
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codeexec_lsp.execution import sandbox_child

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
WRITABLE_FILES = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
)
# /dev/shm: multiprocessing's locks and shared memory live there.
WRITABLE_DEVICE_DIRS = ("/dev/shm", "/dev/pts", "/dev/mqueue")

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
    processes: Layer
    network: Layer
    filesystem: Layer
    network_allowed: bool = False
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the hover of a run, e.g. "network off · writes limited to the
        workspace and temp dir · processes ≤ 256 (pids cgroup)"."""
        parts = []
        if self.network_allowed:
            parts.append("network on (codeexec.network)")
        elif self.network.applied:
            parts.append("network off")
        else:
            parts.append("⚠ network NOT blocked")
        if self.filesystem.applied:
            parts.append("writes limited to the workspace and temp dir")
        else:
            parts.append("⚠ writes NOT limited")
        if self.processes.applied:
            parts.append(self.processes.short or self.processes.mechanism)
        else:
            parts.append("⚠ processes NOT bounded")
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

        allowed = "allowed (codeexec.network is true)" if self.network_allowed else ""
        result = describe("processes", self.processes)
        result += describe("network", self.network, allowed)
        result += describe("filesystem", self.filesystem)
        result += [f"  {'':<11} {note}" for note in self.notes]
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "processes": self.processes.to_json(),
            "network": self.network.to_json(),
            "filesystem": self.filesystem.to_json(),
            "network_allowed": self.network_allowed,
            "notes": list(self.notes),
            "summary": self.summary(),
        }


# --- what a child is asked for -----------------------------------------------------------


def temp_dir(env: Mapping[str, str]) -> str:
    """The temp dir the child's `tempfile` will pick (its environment decides first)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = env.get(name)
        if value and os.path.isdir(value):
            return os.path.realpath(value)
    return os.path.realpath(tempfile.gettempdir())


@dataclass(frozen=True)
class SandboxSpec:
    """What a child is confined to. Hashable: a pre-started child or a session worker is
    confined when it starts, so this is part of what it is kept for."""

    network: bool
    writable: tuple[str, ...]
    max_processes: int

    @classmethod
    def for_run(
        cls, cwd: str, env: Mapping[str, str], network: bool, max_processes: int
    ) -> SandboxSpec:
        writable = (os.path.realpath(cwd), temp_dir(env), *WRITABLE_DEVICE_DIRS)
        return cls(network, tuple(dict.fromkeys(writable)), max_processes)

    def policy(self, guard: ProcessGuard) -> dict[str, Any]:
        """The JSON object sandbox_child.apply() takes."""
        return {
            **guard.child_policy(),
            "network": self.network,
            "network_methods": list(NETWORK_METHODS),
            "writable": list(self.writable),
            "writable_files": list(WRITABLE_FILES),
            "filesystem_methods": list(FILESYSTEM_METHODS),
            "drop_caps": True,
        }


# --- processes: the server's half ----------------------------------------------------------


@dataclass(frozen=True)
class ProcessPlan:
    mechanism: ProcessMechanism
    cgroup_parent: Path | None = None
    cgroup_version: int = 0
    run_as: tuple[int, int] | None = None
    missing: tuple[str, ...] = ()


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


@functools.cache
def process_plan() -> ProcessPlan:
    """The best process bound this server can give, decided once per server."""
    missing: list[str] = []
    parent, version, problem = _cgroup_parent()
    if parent is not None:
        return ProcessPlan("cgroup", cgroup_parent=parent, cgroup_version=version)
    missing.append(f"pids cgroup: {problem}")
    run_as, problem = _run_as()
    if problem:
        missing.append(problem)
    if run_as is not None:
        return ProcessPlan("uid", run_as=run_as, missing=tuple(missing))
    if os.path.exists("/proc/self/stat"):
        return ProcessPlan("supervisor", missing=tuple(missing))
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

    def __init__(self, limit: int, plan: ProcessPlan | None = None) -> None:
        self.limit = limit
        self.plan = plan if plan is not None else process_plan()
        self.mechanism: ProcessMechanism = self.plan.mechanism
        self.missing = list(self.plan.missing)
        self.cgroup: Path | None = None
        self.entered: bool | None = None  # whether the child was moved into the cgroup
        self.enter_problem = ""
        self.supervisor_hits = 0
        if self.mechanism == "cgroup" and self.plan.cgroup_parent is not None:
            try:
                self.cgroup = _make_leaf(self.plan.cgroup_parent, limit)
            except OSError as exc:
                self.missing.append(f"pids cgroup: {_cgroup_problem(exc, self.plan.cgroup_parent)}")
                self.mechanism = "supervisor" if os.path.exists("/proc/self/stat") else "group"

    @property
    def tracks_tree(self) -> bool:
        """Without a cgroup, the run's processes are found through the subreaper's tree."""
        return self.mechanism in ("uid", "supervisor")

    def child_policy(self) -> dict[str, Any]:
        nproc: int | None = None
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if self.mechanism == "uid":
            nproc = self.limit  # a dedicated uid: its count is (nearly) ours alone
        elif not root and self.mechanism in ("supervisor", "group"):
            # Per uid, so it must leave room for everything else the user runs.
            tasks = _user_tasks()
            nproc = tasks + self.limit if tasks is not None else None
        return {
            "run_as": list(self.plan.run_as)
            if self.mechanism == "uid" and self.plan.run_as
            else None,
            "nproc": nproc,
            "subreaper": self.tracks_tree,
        }

    def adopt_now(self, pid: int) -> None:
        """Move the child into its cgroup. Done by the server, not the child: the first
        move into a fresh cgroup waits for an RCU grace period (~10 ms on cgroup v1),
        which the server can overlap with the child's interpreter start-up. Its user
        code only runs after this, once the server sends the request."""
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
        """How often the limit was hit: forks the cgroup refused, or supervisor kills."""
        if self.cgroup is None:
            return self.supervisor_hits
        with contextlib.suppress(OSError, ValueError):
            for line in (self.cgroup / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        return 0

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

    async def release(self, pid: int) -> None:
        """After the child is gone: kill any leftovers and remove the cgroup."""
        await self.kill(pid)
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
        if self.cgroup is not None:
            for member in _cgroup_pids(self.cgroup):
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)
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
        return Layer(False, "", "allowed by codeexec.network")
    if not isinstance(network, Mapping):
        return Layer(False, "", "the child did not report")
    method = network.get("mechanism")
    missing = tuple(str(reason) for reason in network.get("missing", ()))
    if method:
        return Layer(True, NETWORK_NAMES.get(str(method), str(method)), "", missing)
    return Layer(False, "", str(network.get("detail") or "no mechanism was available"))


def _filesystem_layer(child: Mapping[str, Any]) -> Layer:
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
        return Layer(True, f"Landlock ABI {fs.get('abi')}", f"writes only in {writable}", missing)
    if method == "mountns":
        detail = f"writes only in {writable}" + (f"; {fs['detail']}" if fs.get("detail") else "")
        return Layer(True, "read-only mount namespace", detail, missing)
    return Layer(False, "", str(fs.get("detail") or "no mechanism was available"))


def build_report(
    guard: ProcessGuard, child: Mapping[str, Any] | None, network_allowed: bool
) -> SandboxReport:
    """What was applied to one child, from the server's side and the child's report."""
    child = child or {}
    notes = []
    capabilities = child.get("capabilities")
    if isinstance(capabilities, Mapping):
        notes.append(
            "root's admin capabilities dropped (SYS_ADMIN, SYS_PTRACE, SYS_RESOURCE, ...)"
            if capabilities.get("ok")
            else f"capabilities not dropped: {capabilities.get('detail')}"
        )
    fs = child.get("filesystem")
    if isinstance(fs, Mapping) and fs.get("scoped"):
        notes.append(f"Landlock also refuses {' and '.join(fs['scoped'])} outside the run")
    notes += [f"error: {error}" for error in child.get("errors", ())]
    report = SandboxReport(
        processes=guard.layer(child),
        network=_network_layer(child, network_allowed),
        filesystem=_filesystem_layer(child),
        network_allowed=network_allowed,
        notes=tuple(notes),
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


def probe(python: str | None = None, cwd: str | None = None) -> SandboxReport:
    """What a run gets here: the server's process bound, and the child-side layers applied
    for real in a throwaway child of `python` (default: the server's)."""
    python = python or sys.executable
    cwd = cwd or os.getcwd()
    spec = SandboxSpec.for_run(cwd, os.environ, network=False, max_processes=256)
    guard = ProcessGuard(spec.max_processes)
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
    report = build_report(guard, child, network_allowed=False)
    check = (child.get("network") or {}).get("check")
    if check and check != "reachable" and report.network.applied:
        return report
    if check == "reachable":
        return SandboxReport(
            report.processes,
            Layer(False, report.network.mechanism, "a loopback connection still got through"),
            report.filesystem,
            notes=report.notes,
        )
    return report
