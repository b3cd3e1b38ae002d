"""The program a persistent session worker runs: many snippets, one shared ``__main__``.

Like runner.py, whose compiling, running and error mapping it reuses, it runs under the
*user's* interpreter, so it uses the standard library only and stays valid Python 3.8.

Arguments: ``--request-fd R --result-fd W [--parent-pid P] [--sandbox POLICY]`` (session.py
loads this file with ``python -c`` so its bytecode is cached, then calls ``main``). The box
is built before this interpreter starts (launcher.py), which writes its report as the
first line of the result pipe; ``--sandbox`` only asks for the subreaper's clean-up.

Protocol: one JSON object per line in both directions, on dedicated pipes (never stdin,
which user code sees as closed, like in runner.py).

- ``--request-fd``: first ``{"op": "start", "limits": {...}, "sys_path": [...]}``, then
  ``{"op": "run", "id", "marker", "code", "path", "document", "first_line", "column",
  "sys_path", "cpu_seconds"}`` per run; ``{"op": "reap"}`` after the server killed a
  run's processes (a fork bomb), so their zombies free their process slots. End of file
  ends the worker.
- ``--result-fd``: after the launcher's ``{"sandbox": {...}}`` line,
  ``{"ready": true, "pid", "limits_applied", "sandbox"}`` once the limits
  are in place; per run ``{"started": id}`` once an interrupt would reach the user's code, then
  one runner-style result (plus ``id``).
- Between runs, ``{"op": "inspect", "id", "what", "path", "budget_s"}`` asks what a
  variable holds (inspector.py); the answer is one ``{"inspected": id, ...}`` line.

The user's stdout/stderr stay the process's own fds 1 and 2 for its whole life, so output
from C code and subprocesses is captured too. After each run the worker writes the run's
``marker`` (a random token from the server) to both pipes, through private duplicates of
fds 1 and 2 that user code does not redirect, before reporting the result: the server cuts
each pipe into runs at these markers.

Output is block-buffered, as Python's own is into a pipe (a line per write would cost a
system call per line, at both ends): ``sys.stdout`` holds up to 64 KB, ``sys.stderr`` up to
a line. It is flushed at the end of each run (before the marker), before a fork or exec
(``os.register_at_fork`` and an audit hook for ``subprocess``, ``os.system``, ``os.exec*``
and ``os.posix_spawn``, so a child's output neither repeats nor overtakes what was printed
before it), and when the server asks with SIGURG (``FLUSH_SIGNAL``: every half second while
a run goes, so live progress shows recent output; its default action is to ignore it). An
interrupted run reports all it printed. A run that ignores SIGINT and is then killed loses
what it printed since the last flush: at most 64 KB, from its last half second.

A run may leave out ``document`` (``"document_cached": true``) when the document is the
one sent last for that path: a 10,000-line file is not sent again with every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import types
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# The text layer keeps up to 8 KB before it hands bytes to the binary buffer: 64 KB in all.
TEXT_CHUNK_BYTES = 8192
OUTPUT_BUFFER_BYTES = 64 * 1024 - TEXT_CHUNK_BYTES
FLUSH_SIGNAL = getattr(signal, "SIGURG", None)  # ignored by default: harmless if reset
# Events after which another process writes to our stdout (or replaces this one).
FLUSH_EVENTS = frozenset(
    ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.forkpty")
)


def _load_runner() -> types.ModuleType:
    """Import runner.py by path under a private name: our directory must not be on
    sys.path, where user code could import our modules by accident."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_codeexec_runner", os.path.join(HERE, "runner.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered so its exception classes can be pickled and named like runner's own.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _c_stdio_flusher() -> Callable[[], None]:
    """C code's printf output sits in libc's buffer (a pipe is not a terminal); a fresh
    process flushes it at exit, a session must flush it after every run."""
    try:
        import ctypes

        fflush = ctypes.CDLL(None).fflush
        fflush.argtypes = [ctypes.c_void_p]
    except (ImportError, OSError, AttributeError):
        return lambda: None

    def flush() -> None:
        fflush(None)

    return flush


def _arm_cpu_limit(cpu_seconds: float | None) -> dict[str, Any]:
    """A long-lived process has one CPU clock, so each run gets a soft RLIMIT_CPU at the
    time used so far plus its budget (SIGXCPU then raises CPUTimeLimitExceeded in the
    user's code). The hard limit stays open; the server's wall-clock timeout is the
    backstop for code that survives SIGXCPU."""
    try:
        import resource
    except ImportError:
        return {}
    if not cpu_seconds:
        return {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    budget = max(1, int(cpu_seconds + 0.999))
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(used + 0.999) + budget
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        return {}
    return {"RLIMIT_CPU": budget}


def _disarm_cpu_limit() -> None:
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _die_with_parent(parent: int) -> None:
    """Unlike a fresh run, a worker has no CPU rlimit to end it: if the server dies, even
    in the middle of a run, the kernel must take the worker along (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        return
    if os.getppid() != parent:  # the server died before the request above took effect
        os._exit(0)


def _write_marker(targets: tuple[tuple[int, int], ...], marker: bytes) -> None:
    """Each pipe gets the marker once: through our duplicate, else the standard fd."""
    for choices in targets:
        for target in choices:
            try:
                os.write(target, marker)  # shorter than PIPE_BUF: written at once
                break
            except OSError:
                continue  # user code closed it; without a marker the server waits briefly


def _buffered(fd: int, like: Any, buffer_bytes: int, line_buffering: bool) -> io.TextIOWrapper:
    """A text stream on `fd` with the encoding and error handler of `like` (the stream
    Python made), whatever -u or PYTHONUNBUFFERED said: the worker decides when to flush."""
    raw = io.FileIO(fd, "w", closefd=False)
    stream = io.TextIOWrapper(
        io.BufferedWriter(raw, buffer_size=buffer_bytes),
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or "strict",
        line_buffering=line_buffering,
    )
    stream._CHUNK_SIZE = TEXT_CHUNK_BYTES  # type: ignore[attr-defined]
    return stream


def _line_buffered() -> None:
    """In a forked child: a line at a time, as in a terminal, so output printed just before
    an ``os._exit()`` (the usual end of a forked child) is not lost with its buffer."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]


class Worker:
    def __init__(self, runner: types.ModuleType, results: Any) -> None:
        self.runner = runner
        self.results = results
        self.namespace: dict[str, Any] = {}
        self.limits_applied: dict[str, Any] = {}
        self.sandbox: dict[str, Any] | None = None
        self.pid = os.getpid()
        self.output_fds = (os.dup(1), os.dup(2))  # os.dup: not inherited by user children
        self.flush_c_stdio = _c_stdio_flusher()
        self.documents: dict[str, str] = {}  # path -> the text sent last for it
        # Python's own streams stay referenced: collecting them would close fds 1 and 2.
        self.original_streams = (sys.stdout, sys.stderr)
        sys.stdout = _buffered(1, sys.stdout, OUTPUT_BUFFER_BYTES, False)
        sys.stderr = _buffered(2, sys.stderr, OUTPUT_BUFFER_BYTES, True)
        sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr  # type: ignore[misc]
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self.flush_output, after_in_child=_line_buffered)
        if hasattr(sys, "addaudithook"):
            sys.addaudithook(self._flush_before_spawn)
        self.listen_for_flush()

    def flush_output(self) -> None:
        """Everything printed so far, Python's and C's, into the pipes."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            self.flush_c_stdio()

    def _flush_before_spawn(self, event: str, args: Any) -> None:
        if event in FLUSH_EVENTS:
            self.flush_output()

    def _flush_requested(self, signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):  # e.g. a reentrant call: the next tick will do
            self.flush_output()

    def listen_for_flush(self) -> None:
        """(Re)install the SIGURG handler: a run may have replaced it. Restarting system
        calls: a flush request must not make a read or write in user code fail."""
        if FLUSH_SIGNAL is None:
            return
        with contextlib.suppress(ValueError, OSError):
            signal.signal(FLUSH_SIGNAL, self._flush_requested)
            signal.siginterrupt(FLUSH_SIGNAL, False)

    def send(self, message: dict[str, Any]) -> None:
        self.results.write(json.dumps(message, default=str) + "\n")
        self.results.flush()

    def start(self, request: dict[str, Any]) -> None:
        limits = dict(request.get("limits", {}))
        limits.pop("cpu_seconds", None)  # per run, see _arm_cpu_limit
        self.limits_applied = self.runner.apply_limits(limits)
        self.runner._prepare_process({"path": "", "sys_path": request.get("sys_path", [])})
        self.namespace = self.runner._new_main_module("")
        del self.namespace["__file__"]  # set per run, to the file being run
        self.send(
            {
                "ready": True,
                "pid": os.getpid(),
                "limits_applied": self.limits_applied,
                "sandbox": self.sandbox,
            }
        )
        # Rich outputs load once per process: now, while the server reads `ready`, rather
        # than inside the first run.
        self.runner.rich_outputs()

    def run(self, request: dict[str, Any]) -> None:
        runner = self.runner
        path = request["path"]
        if "document" in request:
            self.documents[path] = request["document"]
        elif request.get("document_cached"):
            request["document"] = self.documents.get(path, "")
        self.listen_for_flush()
        self.namespace["__file__"] = path
        sys.argv = [path]
        for entry in reversed(request.get("sys_path", [])):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        cpu_applied = _arm_cpu_limit(request.get("cpu_seconds"))
        try:
            if hasattr(signal, "SIGXCPU"):
                signal.signal(signal.SIGXCPU, runner._raise_cpu_limit)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            # From here an interrupt lands in this run; the server waits for this line
            # before sending one, so it never hits the idle worker or the next run.
            self.send({"started": request.get("id")})
            outcome = runner.run_request(request, self.namespace)
        except KeyboardInterrupt as exc:
            # The interrupt landed just before or after the user's code, outside
            # run_request's own handler; still report it rather than die.
            runner._ignore_interrupts()
            outcome = {
                "status": "error",
                "value": None,
                "error": runner.describe_exception(exc, path),
                "duration_ms": 0.0,
            }
        finally:
            if os.getpid() != self.pid:
                # A bare os.fork() in user code: the copy must not answer as the worker.
                self.flush_output()
                os._exit(0)
            runner._ignore_interrupts()
            _disarm_cpu_limit()
        self.flush_output()
        out, err = self.output_fds
        _write_marker(((out, 1), (err, 2)), request["marker"].encode("utf-8"))
        outcome["id"] = request.get("id")
        outcome["limits_applied"] = dict(self.limits_applied, **cpu_applied)
        self.send(outcome)

    def inspect(self, request: dict[str, Any]) -> None:
        """Between runs: what the session's variables hold, for hover, completion and the
        variables list (inspector.py bounds the time and size; its answer carries
        ``"inspected"``, never a run's ``id``, so it cannot pass for a run result)."""
        try:
            # Loaded once, on first use: sessions nobody inspects never pay for it.
            inspector = sys.modules.get("_codeexec_inspector") or self.runner.load_sibling(
                "inspector"
            )
            answer = inspector.inspect_request(request, self.namespace)
        except Exception as exc:  # the session must outlive a failed look
            answer = {"inspected": request.get("id"), "error": f"{type(exc).__name__}: {exc}"}
        # What a __repr__ printed belongs between runs, not to the next run's output.
        self.flush_output()
        self.send(answer)


def _reap_children() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _fd_argument(args: list[str], name: str) -> int:
    fd = int(args[args.index(name) + 1])
    os.set_inheritable(fd, False)  # user code's children must not hold our pipes
    return fd


def main(argv: list[str] | None = None) -> None:
    # Only user code may be interrupted; while idle, a stray SIGINT must not end the session.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = sys.argv[1:] if argv is None else argv
    if "--parent-pid" in args:
        _die_with_parent(int(args[args.index("--parent-pid") + 1]))
    requests = os.fdopen(_fd_argument(args, "--request-fd"), "rb")
    results = os.fdopen(_fd_argument(args, "--result-fd"), "w", encoding="utf-8")
    worker = Worker(_load_runner(), results)
    worker.sandbox = worker.runner.confine(args)
    while True:
        line = requests.readline()
        if not line:
            return
        request = json.loads(line.decode("utf-8"))
        if request.get("op") == "start":
            worker.start(request)
        elif request.get("op") == "run":
            worker.run(request)
        elif request.get("op") == "inspect":
            worker.inspect(request)
        elif request.get("op") == "reap":
            # Only now: reaping in ordinary times would steal exit statuses that user
            # code still means to wait() for.
            _reap_children()


if __name__ == "__main__":
    main()
