"""Confining a child interpreter before any user code runs.

The launcher runs this file as ``python -I -S sandbox_child.py --launch ...`` under the
*server's* interpreter, applies the box, then execs the user's interpreter (see
launcher.py); runner.py and worker.py still load it by path under the user's interpreter
for the subreaper's clean-up, and `doctor` runs it with ``--probe``. So it uses the
standard library only and stays valid Python 3.8. The server decides what to ask for
(sandbox.py) and passes it as one JSON object; `apply` does each step it can and reports
each one, never raising: a missing mechanism must be said, not be fatal.

Order matters: namespaces need CAP_SYS_ADMIN, so they come before capabilities are
dropped and the uid is changed; Landlock comes after the uid switch (it needs no
privilege), and the seccomp filter last. The pids cgroup is not entered here: the server
moves the child in while the interpreter starts (see sandbox.ProcessGuard.adopt_now).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# Landlock (Linux 5.13+). These syscall numbers are the same on every architecture that
# has them (the unified table), except alpha, which we do not claim to support.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_WRITE_FILE = 1 << 1
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# seccomp: refuse the socket families that reach a network, and io_uring, which can open
# sockets without the socket() syscall.
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_ARCHES = {
    # machine: (AUDIT_ARCH_*, __NR_socket, __NR_io_uring_setup)
    "x86_64": (0xC000003E, 41, 425),
    "amd64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
    "arm64": (0xC00000B7, 198, 425),
}
X32_SYSCALL_BIT = 0x40000000
AF_INET, AF_INET6, AF_PACKET = 2, 10, 17

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
# In a user namespace these flags are locked: a remount that drops them is refused.
KEPT_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
# Device and kernel file systems stay writable under the mount-namespace fallback:
# /dev/null, ptys and /dev/shm are needed, and /proc holds no files anyone keeps.
MOUNTS_LEFT_WRITABLE = ("/dev", "/proc")

# Capabilities a root child gives up: each would let it undo a layer (leave the namespaces
# or the cgroup, raise its rlimits, make device nodes) or reach into other processes.
DROPPED_CAPABILITIES = (
    9,  # LINUX_IMMUTABLE
    12,  # NET_ADMIN
    16,  # SYS_MODULE
    17,  # SYS_RAWIO
    18,  # SYS_CHROOT
    19,  # SYS_PTRACE
    21,  # SYS_ADMIN
    22,  # SYS_BOOT
    24,  # SYS_RESOURCE
    25,  # SYS_TIME
    27,  # MKNOD
    30,  # AUDIT_CONTROL
    32,  # MAC_OVERRIDE
    33,  # MAC_ADMIN
    34,  # SYSLOG
    38,  # PERFMON
    39,  # BPF
    8,  # SETPCAP: last, it is what allows dropping the others
)
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _prctl(option: int, *args: int) -> int:
    """prctl is variadic: every argument must be passed at full width, or the kernel may
    see garbage in the upper half and refuse with EINVAL."""
    import ctypes

    padded = [ctypes.c_ulong(arg) for arg in (*args, 0, 0, 0, 0)[:4]]
    return int(_libc().prctl(ctypes.c_int(option), *padded))


def _last_error(what: str) -> str:
    import ctypes

    code = ctypes.get_errno()
    return f"{what}: {os.strerror(code)}" if code else f"{what} failed"


def _is_linux() -> bool:
    return sys.platform.startswith("linux")


# --- processes ---------------------------------------------------------------------------


def limit_processes(count: int) -> dict[str, Any]:
    """RLIMIT_NPROC counts every process and thread of the real uid, not just ours."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        if hard != resource.RLIM_INFINITY:
            count = min(count, hard)
        resource.setrlimit(resource.RLIMIT_NPROC, (count, count))
    except (ImportError, AttributeError, ValueError, OSError) as exc:
        return {"ok": False, "detail": f"RLIMIT_NPROC: {exc}"}
    return {"ok": True, "detail": f"RLIMIT_NPROC {count}"}


def become_subreaper() -> bool:
    """Orphans of the code (e.g. after setsid() and a double fork) become our children
    instead of init's, so they can still be found and killed (Linux 3.4+)."""
    if not _is_linux():
        return False
    try:
        return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False


def switch_user(uid: int, gid: int) -> dict[str, Any]:
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        return {"ok": False, "detail": f"could not switch to uid {uid}: {exc.strerror or exc}"}
    return {"ok": True, "detail": f"uid {uid}, gid {gid}"}


def process_table() -> dict[int, int]:
    """pid -> parent pid for every live process we can see (Linux /proc). Zombies are
    left out: they cannot be killed, fork or hold anything, only be reaped."""
    table: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[0] not in (b"Z", b"X"):
            table[int(name)] = int(fields[1])
    return table


def descendants(root: int, table: dict[int, int] | None = None) -> set[int]:
    if root <= 1:  # 0 is the kernel's own parent: "descendants" would be everything
        return set()
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, parent in table.items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child != root:
                found.add(child)
                todo.append(child)
    return found


def stop_and_kill_tree(root: int, include_root: bool, rounds: int = 20) -> int:
    """Kill `root`'s descendants (and `root`): stop them first, so none can fork or exit
    (which would hand its children to someone else) while the tree is being collected.
    A kept root is stopped too meanwhile, then continued."""
    if root <= 1:  # kill(-1) or kill(0) would reach far more than the tree
        return 0
    stop_root = root != os.getpid()
    if stop_root:
        _signal(root, signal.SIGSTOP)
    seen: set[int] = set()
    try:
        for _ in range(rounds):
            new = descendants(root) - seen - {os.getpid()}
            if not new:
                break
            for pid in new:
                _signal(pid, signal.SIGSTOP)
            seen |= new
        for pid in seen:
            _signal(pid, signal.SIGKILL)
    finally:
        if include_root:
            _signal(root, signal.SIGKILL)
        elif stop_root:
            _signal(root, signal.SIGCONT)
    return len(seen)


def reap_children() -> int:
    """Collect our exited children. Only where nobody else will wait for them: a subreaper
    that is exiting, or after the server killed a run's processes."""
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.kill(pid, number)


# --- network -----------------------------------------------------------------------------


def _unshare(flags: int) -> str | None:
    if _libc().unshare(flags) != 0:
        return _last_error("unshare")
    return None


def _map_own_ids(uid: int, gid: int) -> str | None:
    """In a new user namespace, keep our own uid and gid (files stay ours)."""
    try:
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    except OSError as exc:
        return f"user namespace id map: {exc.strerror or exc}"
    return None


class _State:
    """What earlier steps did that later ones depend on."""

    def __init__(self) -> None:
        self.own_user_namespace = False


def new_network_namespace(state: _State) -> str | None:
    return _unshare(CLONE_NEWNET)


def new_user_network_namespace(state: _State) -> str | None:
    uid, gid = os.getuid(), os.getgid()
    problem = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    if problem is None:
        problem = _map_own_ids(uid, gid)
        state.own_user_namespace = True
    return problem


def seccomp_filter() -> str | None:
    import ctypes

    machine = os.uname().machine.lower()
    if machine not in SECCOMP_ARCHES:
        return f"seccomp filter: no filter for the {machine or 'unknown'} architecture"
    arch, nr_socket, nr_io_uring = SECCOMP_ARCHES[machine]

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint32),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    deny = SECCOMP_RET_ERRNO | errno.EACCES
    program = [
        (load, 0, 0, 4),  # 0: the calling convention's architecture
        (jeq, 1, 0, arch),  # 1: ours: go on at 3
        (ret, 0, 0, deny),  # 2: another ABI (e.g. 32-bit calls) could bypass the checks
        (load, 0, 0, 0),  # 3: the syscall number
        (jge, 7, 0, X32_SYSCALL_BIT),  # 4: x32 calls -> 12
        (jeq, 6, 0, nr_io_uring),  # 5: -> 12
        (jeq, 0, 4, nr_socket),  # 6: socket -> 7, else -> 11
        (load, 0, 0, 16),  # 7: low word of the first argument: the address family
        (jeq, 3, 0, AF_INET),  # 8: -> 12
        (jeq, 2, 0, AF_INET6),  # 9: -> 12
        (jeq, 1, 0, AF_PACKET),  # 10: -> 12
        (ret, 0, 0, SECCOMP_RET_ALLOW),  # 11
        (ret, 0, 0, deny),  # 12
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*step) for step in program])
    fprog = SockFprog(len(program), filters)
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        return _last_error("no_new_privs")
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog)) != 0:
        return _last_error("seccomp filter")
    return None


NETWORK_STEPS = {
    "netns": ("network namespace", new_network_namespace),
    "userns": ("user+network namespace", new_user_network_namespace),
}


# --- file system -------------------------------------------------------------------------


def _landlock_abi() -> int:
    import ctypes

    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = int(
        libc.syscall(
            ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
        )
    )
    if abi < 0:
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            raise OSError(code, "Landlock is not in this kernel (needs Linux 5.13+)")
        if code == errno.EOPNOTSUPP:
            raise OSError(code, "Landlock is disabled (boot with lsm=...,landlock)")
        raise OSError(code, f"Landlock: {os.strerror(code)}")
    return abi


def landlock(writable: list[str], writable_files: list[str], scope: bool) -> dict[str, Any]:
    """Refuse every write outside `writable` (directories, recursively) and
    `writable_files`; reads and execution stay allowed everywhere."""
    import ctypes

    try:
        abi = _landlock_abi()
    except OSError as exc:
        return {"ok": False, "detail": exc.strerror or str(exc)}
    dir_rights = (
        FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_SYM
    )
    file_rights = FS_WRITE_FILE
    if abi >= 2:
        dir_rights |= FS_REFER
    if abi >= 3:
        dir_rights |= FS_TRUNCATE
        file_rights |= FS_TRUNCATE
    # Device nodes are handled but granted nowhere: a root child could otherwise make a
    # node for the disk inside the workspace and write to it.
    handled = dir_rights | FS_MAKE_CHAR | FS_MAKE_BLOCK
    scoped = 0
    if abi >= 6:
        scoped = SCOPE_SIGNAL | (SCOPE_ABSTRACT_UNIX_SOCKET if scope else 0)

    class RulesetAttr(ctypes.Structure):
        _fields_ = [
            ("handled_access_fs", ctypes.c_uint64),
            ("handled_access_net", ctypes.c_uint64),
            ("scoped", ctypes.c_uint64),
        ]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(handled, 0, scoped)
    # Older kernels know a shorter struct and refuse sizes they cannot check.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    ruleset = int(
        libc.syscall(
            ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
            ctypes.byref(attr),
            ctypes.c_size_t(size),
            ctypes.c_uint32(0),
        )
    )
    if ruleset < 0:
        return {"ok": False, "detail": _last_error("landlock_create_ruleset")}
    allowed: list[str] = []
    try:
        o_path = getattr(os, "O_PATH", 0o10000000)
        for paths, rights in ((writable, dir_rights), (writable_files, file_rights)):
            for path in paths:
                try:
                    fd = os.open(path, o_path | os.O_CLOEXEC)
                except OSError:
                    continue  # e.g. no /dev/tty without a terminal
                try:
                    is_dir = os.path.isdir(path)
                    rule = PathBeneath(rights if is_dir else file_rights, fd)
                    added = libc.syscall(
                        ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                        ctypes.c_int(ruleset),
                        ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                        ctypes.byref(rule),
                        ctypes.c_uint32(0),
                    )
                    if added == 0:
                        allowed.append(path)
                finally:
                    os.close(fd)
        if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
            return {"ok": False, "detail": _last_error("no_new_privs")}
        restricted = libc.syscall(
            ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)
        )
        if restricted != 0:
            return {"ok": False, "detail": _last_error("landlock_restrict_self")}
    finally:
        os.close(ruleset)
    scopes = []
    if scoped & SCOPE_SIGNAL:
        scopes.append("signals")
    if scoped & SCOPE_ABSTRACT_UNIX_SOCKET:
        scopes.append("abstract unix sockets")
    return {"ok": True, "abi": abi, "writable": allowed, "scoped": scopes, "detail": ""}


def _unescape_mount_path(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code in ("\\040", "\\011", "\\012", "\\134"):
        text = text.replace(code, chr(int(code[1:], 8)))
    return text


def _mounts() -> list[tuple[str, int]]:
    mounts: list[tuple[str, int]] = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            if len(fields) < 6:
                continue
            flags = 0
            for option in fields[5].split(","):
                flags |= KEPT_MOUNT_FLAGS.get(option, 0)
            mounts.append((_unescape_mount_path(fields[4]), flags))
    return mounts


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _mount(
    source: str | None, target: str, flags: int, fstype: str | None = None, data: str | None = None
) -> int:
    import ctypes

    return int(
        _libc().mount(
            os.fsencode(source) if source is not None else b"none",
            os.fsencode(target),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data is not None else None,
        )
    )


def _enter_mount_namespace(state: _State) -> str | None:
    """A private mount namespace (root, or our own user namespace); mounts made in it are
    invisible outside and go away with its last process."""
    if os.geteuid() == 0 or state.own_user_namespace:
        problem = _unshare(CLONE_NEWNS)
    else:
        uid, gid = os.getuid(), os.getgid()
        problem = _unshare(CLONE_NEWUSER | CLONE_NEWNS) or _map_own_ids(uid, gid)
        state.own_user_namespace = problem is None
    if problem is not None:
        return problem
    # Without this, the mounts below could propagate to the host's mounts.
    if _mount(None, "/", MS_REC | MS_PRIVATE) != 0:
        return _last_error("making mounts private")
    return None


def _tmpfs(target: str, mode: str = "1777") -> bool:
    return _mount("tmpfs", target, MS_NOSUID | MS_NODEV, "tmpfs", f"mode={mode}") == 0


def strict_mounts(state: _State, policy: dict[str, Any]) -> dict[str, Any]:
    """The strict box's file system, in a private mount namespace: a copy-on-write
    overlay of the workspace whose writes vanish with the namespace (read-only where the
    kernel offers no overlay), empty private /tmp, /var/tmp, /run and /dev/shm (pathname
    sockets of the host's daemons, other runs' leftovers and work dirs are not there), no
    terminals, and every other mount read-only."""
    workspace = os.path.realpath(str(policy.get("workspace") or os.getcwd()))
    private = [p for p in policy.get("private_dirs", ()) if isinstance(p, str) and os.path.isdir(p)]
    owner = policy.get("run_as")
    problem = _enter_mount_namespace(state)
    if problem is not None:
        return {"ok": False, "detail": problem}
    o_path = getattr(os, "O_PATH", 0o10000000)
    workspace_fd = os.open(workspace, o_path | os.O_DIRECTORY)
    # What the run needs from inside the private dirs (an interpreter in /tmp/venv, the
    # runner): shown again there, read-only (the read-only pass below).
    keep: list[tuple[str, int]] = []
    for path in dict.fromkeys(policy.get("keep", ())):
        if isinstance(path, str) and _under(path, private) and not _under(path, [workspace]):
            with contextlib.suppress(OSError):
                keep.append((path, os.open(path, o_path)))
    ours: list[str] = []  # mounts made here: left as they are by the read-only pass
    # The overlay's upper layer lives in a scratch tmpfs that the fresh /dev/shm below
    # then covers: the code sees its writes in the workspace, never the layer itself.
    scratch = "/dev/shm"
    workspace_mode = "none"
    detail = ""
    if _tmpfs(scratch, "700"):
        os.mkdir(scratch + "/upper")
        os.mkdir(scratch + "/work")
    for directory in private:
        if workspace == directory or _under(directory, [workspace]):
            continue  # a workspace of / or /tmp itself: it stays visible, read-only below
        if _tmpfs(directory):
            ours.append(directory)
    for path, fd in keep:
        with contextlib.suppress(OSError):
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                open(path, "a").close()
            _mount(f"/proc/self/fd/{fd}", path, MS_BIND | MS_REC)
        os.close(fd)
    if not os.path.isdir(workspace):
        os.makedirs(workspace, mode=0o755)  # the workspace was under a private dir
    lower = f"/proc/self/fd/{workspace_fd}"
    options = f"lowerdir={lower},upperdir={scratch}/upper,workdir={scratch}/work"
    if _mount("overlay", workspace, 0, "overlay", options) == 0:
        workspace_mode = "overlay"
    else:
        detail = _last_error("overlay") + "; the workspace is read-only instead"
        if _mount(lower, workspace, MS_BIND | MS_REC) == 0:
            workspace_mode = "read-only"
    os.close(workspace_fd)
    if workspace_mode == "overlay" and owner:
        with contextlib.suppress(OSError):  # the run's uid may write its (throwaway) copy
            os.chown(workspace, int(owner[0]), int(owner[1]))
    if workspace_mode != "none":
        ours.append(workspace)
    if _tmpfs("/dev/shm"):
        ours.append("/dev/shm")
    hidden = []
    if policy.get("hide_terminals"):
        if os.path.isdir("/dev/pts") and _tmpfs("/dev/pts", "755"):
            _mount(None, "/dev/pts", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
            hidden.append("/dev/pts")
        for device in ("/dev/tty", "/dev/ptmx", "/dev/console"):
            # A nodev bind over the node: opening it fails (EACCES) instead of reaching a
            # terminal; nothing else in /dev changes.
            if os.path.exists(device) and _mount("/dev/null", device, MS_BIND) == 0:
                _mount(None, device, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV | MS_NOSUID)
                hidden.append(device)
    failed = []
    for target, flags in _mounts():
        if target in ours or _under(target, [workspace, *ours, "/proc", "/dev/pts"]):
            continue
        if target in ("/dev", "/dev/null") or target in hidden:
            continue  # device nodes: /dev/null and friends must stay usable
        remount = MS_REMOUNT | MS_BIND | MS_RDONLY | flags
        if _mount(None, target, remount) != 0:
            failed.append(target)
    try:
        os.chdir(os.getcwd())  # our working directory is under the new mounts now
    except OSError as exc:
        return {"ok": False, "detail": f"working directory: {exc.strerror or exc}"}
    if "/" in failed:
        detail = "; ".join(part for part in (detail, "could not make / read-only") if part)
    return {
        "ok": workspace_mode != "none" and "/" not in failed,
        "workspace": workspace_mode,
        "private": [d for d in ours if d != workspace],
        "hidden": hidden,
        "readonly_failed": failed[:5],
        "detail": detail,
    }


def read_only_mounts(state: _State, writable: list[str]) -> dict[str, Any]:
    """The fallback where Landlock is missing: a private mount namespace where every mount
    is read-only except bind mounts of the writable directories (and /dev, /proc)."""
    if os.geteuid() == 0 or state.own_user_namespace:
        problem = _unshare(CLONE_NEWNS)
    else:
        uid, gid = os.getuid(), os.getgid()
        problem = _unshare(CLONE_NEWUSER | CLONE_NEWNS) or _map_own_ids(uid, gid)
        state.own_user_namespace = problem is None
    if problem is not None:
        return {"ok": False, "detail": problem}
    # Without this, the remounts below could propagate to the host's mounts.
    if _mount(None, "/", MS_REC | MS_PRIVATE) != 0:
        return {"ok": False, "detail": _last_error("making mounts private")}
    kept = [
        path
        for path in writable
        if os.path.isdir(path) and path != "/" and not _under(path, list(MOUNTS_LEFT_WRITABLE))
    ]
    bound = []
    for path in kept:
        if _mount(path, path, MS_BIND | MS_REC) == 0:
            bound.append(path)
    failed = []
    for target, flags in _mounts():
        if _under(target, bound) or _under(target, list(MOUNTS_LEFT_WRITABLE)):
            continue
        remount = MS_REMOUNT | MS_BIND | MS_RDONLY | flags
        if _mount(None, target, remount) != 0:
            failed.append(target)
    if "/" in failed:
        return {"ok": False, "detail": "could not make / read-only"}
    # Our working directory still points below the bind mount made over it, into the
    # now read-only file system: look it up again.
    try:
        os.chdir(os.getcwd())
    except OSError as exc:
        return {"ok": False, "detail": f"working directory: {exc.strerror or exc}"}
    detail = f"{len(failed)} mounts left writable: {', '.join(failed[:3])}" if failed else ""
    return {"ok": True, "writable": bound, "detail": detail}


# --- capabilities ------------------------------------------------------------------------


def _capability_sets() -> tuple[Any, Any]:
    """capget/capset's header and its two 32-bit words of sets (version 3): filled by
    capget, or all zero (no capability) for capset. ctypes only when a box drops some."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    # byref keeps the header alive as long as the reference is.
    return ctypes.byref(Header(LINUX_CAPABILITY_VERSION_3, 0)), (Data * 2)()


def drop_capabilities() -> dict[str, Any]:
    libc = _libc()
    for capability in DROPPED_CAPABILITIES:
        _prctl(PR_CAPBSET_DROP, capability)  # EINVAL: a capability this kernel lacks, fine
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header, data = _capability_sets()
    if libc.capget(header, data) != 0:
        return {"ok": False, "detail": _last_error("capget")}
    for capability in DROPPED_CAPABILITIES:
        word, bit = divmod(capability, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    if libc.capset(header, data) != 0:
        return {"ok": False, "detail": _last_error("capset")}
    return {"ok": True, "detail": ""}


# --- all of it ---------------------------------------------------------------------------


def _step(report: dict[str, Any], key: str, action: Any) -> Any:
    """Run one step; an unexpected failure is reported, never raised into the run."""
    try:
        return action()
    except Exception as exc:  # ctypes may be missing or a libc may lack a function
        report.setdefault("errors", []).append(f"{key}: {type(exc).__name__}: {exc}")
        return None


def _attempt(action: Any, *args: Any) -> str | None:
    """None when `action` worked, else why not (what it returned, or what it raised)."""
    try:
        problem = action(*args)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if problem is None else str(problem)


def _network(policy: dict[str, Any], state: _State, report: dict[str, Any]) -> None:
    network: dict[str, Any] = {"allowed": bool(policy.get("network")), "mechanism": None}
    network["missing"] = missing = []
    report["network"] = network
    if network["allowed"]:
        return
    for method in policy.get("network_methods", ()):
        if method not in NETWORK_STEPS:
            continue
        label, action = NETWORK_STEPS[method]
        problem = _attempt(action, state) if _is_linux() else "needs Linux"
        if problem is None:
            network["mechanism"] = method
            return
        missing.append(f"{label}: {problem}")


def _seccomp_if_needed(policy: dict[str, Any], report: dict[str, Any]) -> None:
    network = report["network"]
    if network["allowed"] or network["mechanism"] is not None:
        return
    if "seccomp" in policy.get("network_methods", ()):
        problem = _attempt(seccomp_filter) if _is_linux() else "needs Linux"
        if problem is None:
            network["mechanism"] = "seccomp"
            return
        network["missing"].append(f"seccomp: {problem}")
    network["detail"] = "; ".join(network["missing"]) or "no mechanism was asked for"


def _filesystem(policy: dict[str, Any], state: _State, report: dict[str, Any]) -> None:
    """Landlock comes after the uid switch, the mount fallback before it (it needs root or
    a user namespace): this picks the mount fallback only if Landlock is not there."""
    writable = [p for p in policy.get("writable", ()) if isinstance(p, str)]
    methods = list(policy.get("filesystem_methods", ()))
    fs: dict[str, Any] = {"mechanism": None, "detail": ""}
    fs["missing"] = missing = []
    report["filesystem"] = fs
    if not _is_linux():
        missing.append("needs Linux (Landlock or a mount namespace)")
    elif "landlock" in methods:
        try:
            fs["abi"] = _landlock_abi()
            return  # applied later, see apply()
        except OSError as exc:
            missing.append(exc.strerror or str(exc))
        except Exception as exc:
            missing.append(f"Landlock: {type(exc).__name__}: {exc}")
    if _is_linux() and "mountns" in methods:
        done = _step(report, "filesystem", lambda: read_only_mounts(state, writable))
        if done and done["ok"]:
            fs.update(mechanism="mountns", writable=done["writable"], detail=done["detail"])
            return
        if done:
            missing.append(f"mount namespace: {done['detail']}")
    fs["detail"] = "; ".join(missing) or "no mechanism was asked for"


def _strict_filesystem(policy: dict[str, Any], state: _State, report: dict[str, Any]) -> None:
    strict = policy.get("strict")
    if not isinstance(strict, dict):
        return
    if not _is_linux():
        report["mounts"] = {"ok": False, "detail": "needs Linux (mount namespaces)"}
        return
    merged = dict(strict, run_as=policy.get("run_as"))
    done = _step(report, "mounts", lambda: strict_mounts(state, merged))
    report["mounts"] = done or {"ok": False, "detail": "failed (see errors)"}


def drop_all_capabilities() -> dict[str, Any]:
    """Strict, staying root: every capability goes, from the bounding set too, so the
    exec'd interpreter starts with none (root without DAC_OVERRIDE is bound by file
    permissions like any user)."""
    for capability in range(64):
        if capability != 8:
            _prctl(PR_CAPBSET_DROP, capability)
    _prctl(PR_CAPBSET_DROP, 8)  # SETPCAP last: it is what allows dropping the others
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header, data = _capability_sets()
    if _libc().capset(header, data) != 0:
        return {"ok": False, "detail": _last_error("capset")}
    return {"ok": True, "detail": "all"}


def apply(policy: dict[str, Any]) -> dict[str, Any]:
    """Confine this process as `policy` asks; returns what was applied and why not."""
    report: dict[str, Any] = {"profile": policy.get("profile", "standard")}
    state = _State()
    if policy.get("nproc") and not policy.get("run_as"):
        report["nproc"] = limit_processes(int(policy["nproc"]))
    if policy.get("subreaper"):
        report["subreaper"] = bool(_step(report, "subreaper", become_subreaper))
    _network(policy, state, report)
    _strict_filesystem(policy, state, report)
    _filesystem(policy, state, report)
    run_as = policy.get("run_as")
    strict_uid = policy.get("strict_uid")
    if strict_uid and not run_as and _is_linux() and os.geteuid() == 0:
        uid, gid = int(strict_uid[0]), int(strict_uid[1])
        problem = unreachable_for_others([str(p) for p in policy.get("program", ())])
        mounts = report.get("mounts") or {}
        if problem is None and mounts.get("workspace") == "overlay":
            # The overlay's files keep their owners: another uid could not change them, so
            # the workspace writes that strict promises to throw away would be refused
            # instead (a fix that rewrites a data file could never be verified). Root with
            # every capability dropped, in the private mounts, keeps those writes working.
            problem = "the workspace's files keep their owners in its throwaway overlay"
        if problem is None:
            run_as = [uid, gid]
        else:
            report["run_as"] = {"ok": False, "detail": f"uid {uid}: {problem}"}
    if policy.get("drop_caps") and os.geteuid() == 0 and _is_linux():
        if policy.get("drop_all_caps") and not run_as:
            report["capabilities"] = _step(report, "capabilities", drop_all_capabilities)
        else:
            report["capabilities"] = _step(report, "capabilities", drop_capabilities)
    if run_as:
        if policy.get("nproc"):
            # Set while still root: for the new uid the limit is what bounds a fork bomb.
            report["nproc"] = limit_processes(int(policy["nproc"]))
        report["run_as"] = switch_user(int(run_as[0]), int(run_as[1]))
    fs = report["filesystem"]
    if "abi" in fs and fs["mechanism"] is None:
        writable = [p for p in policy.get("writable", ()) if isinstance(p, str)]
        files = [p for p in policy.get("writable_files", ()) if isinstance(p, str)]
        scope = bool(policy.get("scope_abstract", not report["network"]["allowed"]))
        done = _step(report, "filesystem", lambda: landlock(writable, files, scope))
        if done and done["ok"]:
            fs.update(
                mechanism="landlock",
                abi=done["abi"],
                writable=done["writable"],
                scoped=done["scoped"],
                detail="",
            )
        elif done:
            fs["missing"].append(f"Landlock: {done['detail']}")
            fs["detail"] = "; ".join(fs["missing"])
    _seccomp_if_needed(policy, report)
    return report


def unreachable_for_others(program: list[str]) -> str | None:
    """Why an unprivileged uid (with no groups) could not start `program` here, or None:
    the interpreter, the script and the working directory, through every parent."""
    import stat

    checks = []
    if program:
        try:
            with open(program[0], "rb") as head:
                if head.read(2) == b"#!":
                    return f"{program[0]} is a script: what it starts cannot be checked"
        except OSError as exc:
            return f"{program[0]}: {exc.strerror or exc}"
        # The path as given (a venv's `bin/python` link: exec walks its folders) and the
        # file it finally names: either may sit behind a folder closed to other users.
        checks.append((os.path.abspath(program[0]), stat.S_IXOTH))
        checks.append((os.path.realpath(program[0]), stat.S_IXOTH))
        script = next((a for a in program[1:] if a.endswith(".py") and os.path.isabs(a)), None)
        if script:
            checks.append((os.path.realpath(script), stat.S_IROTH))
    checks.append((os.getcwd(), stat.S_IXOTH))
    for path, needed in checks:
        try:
            if not os.stat(path).st_mode & needed:
                return f"{path} is not open to other users"
            parent = os.path.dirname(path)
            while parent and parent != "/":
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    return f"{parent} (holding {path}) is closed to other users"
                parent = os.path.dirname(parent)
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}"
    return None


def program_paths(program: list[str]) -> list[str]:
    """What the program needs to start: the interpreter's environment (a venv's root,
    where pyvenv.cfg is, and the real interpreter's prefix) and the script's folder."""
    found: list[str] = []
    hop = os.path.abspath(program[0])
    # Each link of the chain (a cached venv's python -> the server's venv's -> the real
    # one) can be an environment whose site-packages the interpreter reads.
    for _ in range(16):
        root = os.path.dirname(os.path.dirname(hop))
        if root not in ("", "/"):
            found.append(root)
        if not os.path.islink(hop):
            break
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
        hop = os.path.abspath(hop)
    for argument in program[1:]:
        if argument.endswith(".py") and os.path.isabs(argument):
            found.append(os.path.dirname(argument))
            break
    return list(dict.fromkeys(found))


def launch(argv: list[str]) -> None:
    """``--launch FD FORMAT POLICY -- PROGRAM ARGS...``: confine this process as POLICY
    asks, write what was applied to FD (before anything the user controls runs, so that
    line can be trusted), then exec PROGRAM (the user's interpreter) inside the box.

    Started as ``python -I -S`` from the server's own interpreter: no ``site``, no
    ``.pth``, no PYTHON* variables, nothing from the workspace runs before the box exists.
    """
    split = argv.index("--")
    head, program = argv[:split], argv[split + 1 :]
    index = head.index("--launch")
    fd, form, policy = int(head[index + 1]), head[index + 2], json.loads(head[index + 3])
    policy["program"] = program
    if isinstance(policy.get("strict"), dict):
        kept = [p for p in policy["strict"].get("keep", ()) if isinstance(p, str)]
        policy["strict"]["keep"] = kept + program_paths(program)
    report = apply(policy)
    text = json.dumps({"sandbox": report}) if form == "json" else "sandbox " + json.dumps(report)
    data = (text + "\n").encode("utf-8")
    while data:
        data = data[os.write(fd, data) :]
    try:
        os.execv(program[0], program)
    except OSError as exc:
        os.write(2, f"codeexec: cannot start {program[0]}: {exc.strerror or exc}\n".encode())
        os._exit(127)


def kill_descendants() -> None:
    """At exit of a subreaper runner: what the code started goes with it, and is reaped
    here, so that no zombie holds a slot of the uid's RLIMIT_NPROC for the next run."""
    import time

    stop_and_kill_tree(os.getpid(), include_root=False)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        reap_children()
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        time.sleep(0.002)


def _network_check() -> str:
    """What connecting to the loopback does now: refused means the network is reachable."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            probe.connect(("127.0.0.1", 9))
    except (ConnectionRefusedError, socket.timeout):  # noqa: UP041 (3.8: not TimeoutError)
        return "reachable"
    except OSError as exc:
        return f"blocked: {exc.strerror or exc}"
    return "reachable"


def main(argv: list[str]) -> None:
    """`--probe POLICY`: apply POLICY to this throwaway process and print the report,
    with a check that each layer really holds, for `doctor`. `--launch`: see launch()."""
    if "--launch" in argv:
        launch(argv)
        return
    policy = json.loads(argv[argv.index("--probe") + 1])
    policy["program"] = [sys.executable, os.path.abspath(__file__)]
    report = apply(policy)
    if not policy.get("network"):
        report["network"]["check"] = _network_check()
    sys.stdout.write(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
