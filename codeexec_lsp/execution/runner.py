"""The program a child interpreter runs to execute one snippet.

It runs under the *user's* interpreter, which may lack codeexec_lsp and be older than the
server's, so it uses the standard library only and stays valid Python 3.8.

Protocol: one JSON request on stdin; the user's stdout/stderr go straight to the process's
own fds (so output from C code and subprocesses is captured too); a line ``ready`` and then
one JSON result are written to the file descriptor given by ``--result-fd``. With
``--sandbox POLICY`` (sandbox_child.py) the process confines itself first, before it reads
the request, and reports what it applied in a first line ``sandbox {...}``.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import linecache
import os
import signal
import sys
import time
import traceback
import types
from typing import Any

RUNNER_FILE = os.path.abspath(__file__)
CO_COROUTINE = 0x0080  # inspect.CO_COROUTINE, without importing inspect at start-up
MAX_VALUE_CHARS = 100_000
# An exception's text comes from the code and can be any size (`raise ValueError("x" * 10**7)`);
# it travels to the server, into diagnostics and hovers, so it is clipped here, at the source.
MAX_MESSAGE_CHARS = 10_000
MAX_TRACEBACK_CHARS = 50_000
MAX_NAME_CHARS = 500  # a type, function or file name (type("x" * 10**6, ...) is legal)
MAX_FRAMES = 100  # the outermost quarter and the innermost rest are kept
NO_INPUT_MESSAGE = (
    "input() is not available: code run by codeexec has no standard input. "
    "Assign the value in the code instead."
)


class CPUTimeLimitExceeded(BaseException):
    """Raised from SIGXCPU so the traceback shows where the CPU time went."""


class _NoInput(io.TextIOBase):
    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        raise EOFError(NO_INPUT_MESSAGE)

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        raise EOFError(NO_INPUT_MESSAGE)


# --- compiling a snippet at its real place in the file -----------------------------------


class Compiled:
    def __init__(self, body: types.CodeType, last_expr: types.CodeType | None) -> None:
        self.body = body
        self.last_expr = last_expr


def register_document(filename: str, document: str) -> None:
    """Let tracebacks, warnings and inspect show lines of the (possibly unsaved) buffer."""
    lines = document.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # mtime None marks the entry as not backed by a file, so checkcache() keeps it.
    linecache.cache[filename] = (len(document), None, lines, filename)


def _shift_positions(tree: ast.AST, line_delta: int, column_bytes: int) -> None:
    for node in ast.walk(tree):
        if "lineno" not in node._attributes:
            continue
        if getattr(node, "lineno", None) is not None:
            node.lineno += line_delta  # type: ignore[attr-defined]
        if getattr(node, "end_lineno", None) is not None:
            node.end_lineno += line_delta  # type: ignore[attr-defined]
        if column_bytes:
            if getattr(node, "col_offset", None) is not None:
                node.col_offset += column_bytes  # type: ignore[attr-defined]
            if getattr(node, "end_col_offset", None) is not None:
                node.end_col_offset += column_bytes  # type: ignore[attr-defined]


def compile_snippet(
    code: str, filename: str, first_line: int = 1, column: int = 0, document: str = ""
) -> Compiled:
    """Compile dedented `code` as if it stood at `first_line`/`column` of `document`.

    Raises SyntaxError with the position already moved into the document.
    """
    doc_lines = document.splitlines()
    prefix = doc_lines[first_line - 1][:column] if 0 < first_line <= len(doc_lines) else ""
    column_bytes = len(prefix.encode("utf-8")) if prefix else column
    try:
        tree = ast.parse(code, filename, "exec")
    except SyntaxError as exc:
        _move_syntax_error(exc, first_line, column, doc_lines)
        raise
    _shift_positions(tree, first_line - 1, column_bytes)
    last_expr = None
    last_statement = tree.body[-1] if tree.body else None
    if isinstance(last_statement, ast.Expr):
        tree.body.pop()
        last_expr = ast.Expression(last_statement.value)
    flags = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
    try:
        body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        expr_code = (
            compile(last_expr, filename, "eval", flags=flags, dont_inherit=True)
            if last_expr is not None
            else None
        )
    except SyntaxError as exc:
        _explain_outside_function(exc)
        raise
    return Compiled(body, expr_code)


def _move_syntax_error(
    exc: SyntaxError, first_line: int, column: int, doc_lines: list[str]
) -> None:
    if exc.lineno is not None:
        exc.lineno += first_line - 1
        if getattr(exc, "end_lineno", None) is not None:
            exc.end_lineno += first_line - 1  # type: ignore[operator]
    # The dedented text lost `column` characters on every line; give them back.
    if exc.offset is not None and column:
        exc.offset += column
        if getattr(exc, "end_offset", None):
            exc.end_offset += column  # type: ignore[operator]
    if exc.lineno is not None and 0 < exc.lineno <= len(doc_lines):
        exc.text = doc_lines[exc.lineno - 1] + "\n"


def _explain_outside_function(exc: SyntaxError) -> None:
    for keyword in ("return", "yield", "await"):
        if exc.msg.startswith(f"'{keyword}' outside") or exc.msg.startswith(
            f"'{keyword}' with value"
        ):
            exc.msg = (
                f"'{keyword}' outside function: the selection runs as top-level code. "
                f"Select the whole function (with its def line), or leave out the '{keyword}'"
            )
            exc.args = (exc.msg, *exc.args[1:])
            return


# --- describing an exception in document terms --------------------------------------------


def _char_column(filename: str, line: int, byte_offset: int | None) -> int | None:
    """Python reports columns as UTF-8 byte offsets; users and LSP think in characters."""
    if byte_offset is None:
        return None
    text = linecache.getline(filename, line)
    return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "replace"))


def _first_code_column(filename: str, line: int) -> int | None:
    text = linecache.getline(filename, line)
    return len(text) - len(text.lstrip()) if text.strip() else None


def _trim_to_user_frames(tb: types.TracebackType | None, filename: str) -> Any:
    """Drop the runner's (and asyncio's) frames that sit above the user's first frame."""
    walker = tb
    while walker is not None:
        if walker.tb_frame.f_code.co_filename == filename:
            return walker
        walker = walker.tb_next
    walker = tb
    while walker is not None and walker.tb_frame.f_code.co_filename == RUNNER_FILE:
        walker = walker.tb_next
    return walker


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__", RUNNER_MODULE_NAME):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


RUNNER_MODULE_NAME = __name__


def clip(text: str, limit: int) -> str:
    """`text` within about `limit` characters: its head and tail, and how much was cut
    between them (the end of a traceback or message says the most, its start says where)."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    omitted = len(text) - head - tail
    return text[:head] + "\n… [" + format(omitted, ",") + " characters omitted] …\n" + text[-tail:]


def clip_frames(frames: list[dict[str, Any]], limit: int = MAX_FRAMES) -> list[dict[str, Any]]:
    """At most `limit` frames: where the call started and, above all, where it ended."""
    if len(frames) <= limit:
        return frames
    outer = limit // 4
    return frames[:outer] + frames[len(frames) - (limit - outer) :]


def _message(exc: BaseException) -> str:
    """str(exc) and its notes (add_note), one per line; a broken __str__ does not lose the run."""
    try:
        message = str(exc)
    except Exception as failure:
        message = "<str() failed: " + type(failure).__name__ + ">"
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, (list, tuple)):
        message = "\n".join([message, *(note for note in notes if isinstance(note, str))])
    return clip(message, MAX_MESSAGE_CHARS)


def describe_exception(exc: BaseException, filename: str) -> dict[str, Any]:
    """The RunResult `error` object for `exc`, located in `filename` (the document); its
    texts are clipped (MAX_* above), so the result stays small whatever the code raised."""
    if isinstance(exc, SyntaxError) and exc.filename == filename and exc.lineno:
        return _describe_syntax_error(exc, filename)
    tb = _trim_to_user_frames(exc.__traceback__, filename)
    exc.__traceback__ = tb
    summaries = traceback.extract_tb(tb) if tb is not None else []
    frames = []
    for summary in summaries:
        frame: dict[str, Any] = {
            "file": clip(summary.filename, MAX_NAME_CHARS),
            "line": summary.lineno,
            "name": clip(summary.name, MAX_NAME_CHARS),
        }
        if summary.filename == filename and summary.lineno is not None:
            colno = getattr(summary, "colno", None)
            end_colno = getattr(summary, "end_colno", None)
            end_line = getattr(summary, "end_lineno", None)
            frame["column"] = _char_column(filename, summary.lineno, colno)
            frame["end_line"] = end_line
            frame["end_column"] = (
                _char_column(filename, end_line, end_colno) if end_line is not None else None
            )
            if frame["column"] is None:
                frame["column"] = _first_code_column(filename, summary.lineno)
        frames.append(frame)
    here = next((f for f in reversed(frames) if f["file"] == filename), None)
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {
        "type": clip(_type_name(exc), MAX_NAME_CHARS),
        "message": _message(exc),
        "line": here["line"] if here else None,
        "column": here.get("column") if here else None,
        "end_line": here.get("end_line") if here else None,
        "end_column": here.get("end_column") if here else None,
        "traceback": clip(text, MAX_TRACEBACK_CHARS),
        "frames": clip_frames(frames),
    }


def _describe_syntax_error(exc: SyntaxError, filename: str) -> dict[str, Any]:
    line = exc.lineno or 1
    column = (exc.offset - 1) if exc.offset else _first_code_column(filename, line)
    end_line = getattr(exc, "end_lineno", None)
    end_offset = getattr(exc, "end_offset", None)
    end_column = end_offset - 1 if end_offset and end_line else None
    text = "".join(traceback.format_exception_only(type(exc), exc))
    return {
        "type": clip(type(exc).__name__, MAX_NAME_CHARS),
        "message": clip(str(exc.msg), MAX_MESSAGE_CHARS),
        "line": line,
        "column": column,
        "end_line": end_line if end_column is not None else None,
        "end_column": end_column,
        "traceback": clip(text, MAX_TRACEBACK_CHARS),
        "frames": [{"file": filename, "line": line, "name": "<module>", "column": column}],
    }


# --- the run ------------------------------------------------------------------------------


def apply_limits(limits: dict[str, Any]) -> dict[str, Any]:
    """Set hard rlimits (user code cannot raise them again); report what was applied."""
    applied: dict[str, Any] = {}
    try:
        import resource
    except ImportError:  # not POSIX
        return applied

    def set_limit(name: str, soft: int, hard: int | None = None) -> None:
        kind = getattr(resource, name, None)
        if kind is None:
            return
        hard = soft if hard is None else hard
        try:
            _, current_hard = resource.getrlimit(kind)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            resource.setrlimit(kind, (soft, hard))
            applied[name] = soft
        except (ValueError, OSError):
            pass

    if limits.get("memory_bytes"):
        set_limit("RLIMIT_AS", int(limits["memory_bytes"]))
    if limits.get("cpu_seconds"):
        cpu = max(1, int(limits["cpu_seconds"] + 0.999))
        # The soft limit raises CPUTimeLimitExceeded; the hard one is the backstop.
        set_limit("RLIMIT_CPU", cpu, cpu + 2)
    if limits.get("file_bytes"):
        set_limit("RLIMIT_FSIZE", int(limits["file_bytes"]))
    if limits.get("open_files"):
        set_limit("RLIMIT_NOFILE", int(limits["open_files"]))
    set_limit("RLIMIT_CORE", 0)
    return applied


def _raise_cpu_limit(signum: int, frame: Any) -> None:
    raise CPUTimeLimitExceeded("the CPU time limit was reached")


def _prepare_process(request: dict[str, Any]) -> None:
    sys.stdin = _NoInput()
    # A server started with SIGINT ignored (a background job) must not pass that on:
    # the interrupt is how a timeout or cancel finds where the code was.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A too-big file write then fails with OSError(EFBIG) instead of killing the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if hasattr(signal, "SIGXCPU"):
        signal.signal(signal.SIGXCPU, _raise_cpu_limit)
    runner_dir = os.path.dirname(RUNNER_FILE)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != runner_dir]
    for entry in reversed(request.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    sys.argv = [request["path"]]


def _new_main_module(path: str) -> dict[str, Any]:
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main.__dict__


def _evaluate(compiled: Compiled, namespace: dict[str, Any]) -> Any:
    is_coroutine = CO_COROUTINE

    async def run_async() -> Any:
        outcome = eval(compiled.body, namespace)
        if hasattr(outcome, "__await__"):
            await outcome
        if compiled.last_expr is None:
            return None
        value = eval(compiled.last_expr, namespace)
        if compiled.last_expr.co_flags & is_coroutine:
            value = await value
        return value

    uses_await = compiled.body.co_flags & is_coroutine or (
        compiled.last_expr is not None and compiled.last_expr.co_flags & is_coroutine
    )
    if uses_await:
        import asyncio  # only for top-level await: it costs ~35 ms to import

        return asyncio.run(run_async())
    exec(compiled.body, namespace)
    if compiled.last_expr is None:
        return None
    return eval(compiled.last_expr, namespace)


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the run
        text = f"<repr failed: {type(exc).__name__}: {exc}>"
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f"… [{len(text) - MAX_VALUE_CHARS} characters omitted]"
    return text


def _ignore_interrupts() -> None:
    """Once the user's code is over, a late interrupt would only lose its result."""
    for name in ("SIGINT", "SIGXCPU"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


_DISPLAY: list[types.ModuleType | None] = []


def rich_outputs() -> types.ModuleType | None:
    """display.py (rich outputs: the `display` builtin, `_repr_*_` forms, Matplotlib
    figures), loaded and installed once per process, before any user code. None if it
    cannot load: runs then go on without rich outputs."""
    if not _DISPLAY:
        try:
            module = load_sibling("display")
            module.install()
        except Exception:
            module = None
        _DISPLAY.append(module)
    return _DISPLAY[0]


def run_request(request: dict[str, Any], namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one request in this process; returns the result object (never raises).

    `namespace` is the `__main__` dict to run in (a session's, kept between runs);
    by default a fresh `__main__` module is made. The result's `outputs` are the run's rich
    outputs in nbformat's shape (display.py says what and within which limits).
    """
    path = request["path"]
    register_document(path, request.get("document") or request["code"])
    display = rich_outputs()
    if display is not None:
        display.begin_run()
    started = time.perf_counter()
    value: Any = None
    failure: BaseException | None = None
    try:
        compiled = compile_snippet(
            request["code"],
            path,
            request.get("first_line", 1),
            request.get("column", 0),
            request.get("document", ""),
        )
        if namespace is None:
            namespace = _new_main_module(path)
        value = _evaluate(compiled, namespace)
    except SystemExit as exc:
        failure = exc if exc.code not in (None, 0) else None
    except BaseException as exc:  # the user's code may raise anything, even KeyboardInterrupt
        failure = exc
    finally:
        _ignore_interrupts()
    duration_ms = (time.perf_counter() - started) * 1000
    # Figures shown or left open, displays, the value's rich forms: after the code, as
    # Jupyter's post-execute does (an error keeps what was shown before it).
    outputs = display.end_run(value, ok=failure is None) if display is not None else []
    if failure is not None:
        error = describe_exception(failure, path)
        return {
            "status": "error",
            "value": None,
            "error": error,
            "duration_ms": duration_ms,
            "outputs": outputs,
        }
    shown = _safe_repr(value) if value is not None else None
    return {
        "status": "ok",
        "value": shown,
        "error": None,
        "duration_ms": duration_ms,
        "outputs": outputs,
    }


def load_sibling(name: str) -> types.ModuleType:
    """Import a module of this directory by path under a private name: our directory must
    not be on sys.path, where user code could import our modules by accident."""
    import importlib.util

    path = os.path.join(os.path.dirname(RUNNER_FILE), name + ".py")
    spec = importlib.util.spec_from_file_location("_codeexec_" + name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered so its exception classes can be pickled and named like our own.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def confine(args: list[str]) -> dict[str, Any] | None:
    """Apply the sandbox the server asked for (``--sandbox JSON``) before any user code;
    returns what was applied, for the server to report."""
    if "--sandbox" not in args:
        return None
    policy = json.loads(args[args.index("--sandbox") + 1])
    try:
        sandbox = load_sibling("sandbox_child")
        report: dict[str, Any] = sandbox.apply(policy)
    except Exception as exc:  # never fatal: the server says what is missing
        return {"errors": [f"{type(exc).__name__}: {exc}"]}
    if report.get("subreaper"):
        import atexit

        # Registered before any user code, so it runs after the user's own exit hooks:
        # what the code left running (even after setsid()) goes with the run.
        atexit.register(sandbox.kill_descendants)
    return report


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    result_fd = int(args[args.index("--result-fd") + 1])
    os.set_inheritable(result_fd, False)
    result_pipe = os.fdopen(result_fd, "w", encoding="utf-8")
    confined = confine(args)
    if confined is not None:
        result_pipe.write("sandbox " + json.dumps(confined) + "\n")
        result_pipe.flush()
    rich_outputs()  # while a pre-started child waits for its request, not during the run
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    applied = apply_limits(request.get("limits", {}))
    _prepare_process(request)
    result_pipe.write("ready\n")
    result_pipe.flush()
    pid = os.getpid()
    outcome = run_request(request)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if os.getpid() != pid:
        # A bare os.fork() in user code: the copy must not report a result of its own.
        os._exit(0)
    outcome["limits_applied"] = applied
    result_pipe.write(json.dumps(outcome, default=str))
    result_pipe.close()


if __name__ == "__main__":
    main()
