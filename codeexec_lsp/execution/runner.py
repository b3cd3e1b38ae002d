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
    def __init__(
        self, body: types.CodeType, last_expr: types.CodeType | None, future_flags: int = 0
    ) -> None:
        self.body = body
        self.last_expr = last_expr
        # The __future__ features in effect after this code (its own `from __future__
        # import ...` and those it inherited): a session passes them to its next run.
        self.future_flags = future_flags


# str.splitlines also ends a line at these; Python's compiler and LSP do not. A copy of
# codeexec_lsp/lines.py's split (this file runs alone in the child; a property test keeps
# the two equal).
_NOT_LINE_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _split_lines(text: str, keepends: bool = False) -> list[str]:
    """The lines the compiler numbers: only \\r\\n, \\r and \\n end one (a form feed,
    PEP 8's page break, does not)."""
    if not any(odd in text for odd in _NOT_LINE_BREAKS):
        return text.splitlines(keepends)
    lines: list[str] = []
    pending = ""
    for piece in text.splitlines(True):
        pending += piece
        if piece.endswith(("\n", "\r")):
            lines.append(pending)
            pending = ""
    if pending:
        lines.append(pending)
    if keepends:
        return lines
    return [line.rstrip("\r\n") if line.endswith(("\n", "\r")) else line for line in lines]


_registered: dict[str, str] = {}  # filename -> the text last put in linecache for it


def register_document(filename: str, document: str) -> None:
    """Let tracebacks, warnings and inspect show lines of the (possibly unsaved) buffer.

    A session passes the very same text object while the document is unchanged: then the
    entry is already there, and splitting a 10,000-line document again is most of what a
    small run in it costs."""
    entry = linecache.cache.get(filename)
    if _registered.get(filename) is document and entry is not None and entry[1:2] == (None,):
        return
    _registered[filename] = document
    lines = _split_lines(document, keepends=True)
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


def _future_feature_mask() -> int:
    """Every __future__ feature's compiler flag: the bits of co_flags that codeop (and so
    the Python REPL and IPython) carries from one input to the next."""
    import __future__

    mask = 0
    for name in __future__.all_feature_names:
        mask |= getattr(__future__, name).compiler_flag
    return mask


def compile_snippet(
    code: str,
    filename: str,
    first_line: int = 1,
    column: int = 0,
    document: str = "",
    *,
    future_flags: int = 0,
) -> Compiled:
    """Compile dedented `code` as if it stood at `first_line`/`column` of `document`.

    `future_flags`: __future__ features already in effect (a session's earlier
    `from __future__ import annotations`), as `Compiled.future_flags` returns them.
    Raises SyntaxError with the position already moved into the document.
    """
    # Split the document only when needed (a selection starting mid-line, an error): in a
    # big document the split costs more than compiling a small snippet.
    doc_lines = _split_lines(document) if column else []
    prefix = doc_lines[first_line - 1][:column] if 0 < first_line <= len(doc_lines) else ""
    column_bytes = len(prefix.encode("utf-8")) if prefix else column
    try:
        tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST | future_flags, dont_inherit=True)
    except SyntaxError as exc:
        _move_syntax_error(exc, first_line, column, doc_lines or _split_lines(document))
        raise
    _shift_positions(tree, first_line - 1, column_bytes)
    last_expr = None
    last_statement = tree.body[-1] if tree.body else None
    if isinstance(last_statement, ast.Expr):
        tree.body.pop()
        last_expr = ast.Expression(last_statement.value)
    flags = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0) | future_flags
    try:
        body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        in_effect = future_flags | (body.co_flags & _future_feature_mask())
        expr_code = (
            compile(
                last_expr,
                filename,
                "eval",
                flags=flags | in_effect,
                dont_inherit=True,
            )
            if last_expr is not None
            else None
        )
    except SyntaxError as exc:
        # The trailing expression left the tree for its own compile: look at both.
        statements = [*tree.body, last_statement] if last_expr is not None else tree.body
        doc_lines = doc_lines or _split_lines(document)
        if exc.text is None and exc.lineno and 0 < exc.lineno <= len(doc_lines):
            # Compiling a tree gives no source line: the traceback shows the document's.
            exc.text = doc_lines[exc.lineno - 1] + "\n"
        if _cut_from_a_function(doc_lines, first_line):
            _explain_outside_function(exc, statements)
        raise
    return Compiled(body, expr_code, in_effect)


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
        if (getattr(exc, "end_offset", None) or 0) > 0:  # -1: the parser does not know
            exc.end_offset += column  # type: ignore[operator]
    if exc.lineno is not None and 0 < exc.lineno <= len(doc_lines):
        exc.text = doc_lines[exc.lineno - 1] + "\n"
    if first_line != 1 and isinstance(exc.msg, str) and "on line " in exc.msg:
        # The parser names other lines in its message ("expected an indented block after
        # 'for' statement on line 2"), counted in the selection: count them in the file.
        import re

        exc.msg = re.sub(
            r"\bon line (\d+)\b",
            lambda match: "on line " + str(int(match.group(1)) + first_line - 1),
            exc.msg,
        )
        exc.args = (exc.msg, *exc.args[1:])


# What the compiler says about each keyword outside any function, and the nodes it means.
_OUTSIDE_FUNCTION = {
    "'return' outside function": ("return", (ast.Return,)),
    "'yield' outside function": ("yield", (ast.Yield, ast.YieldFrom)),
    "'await' outside function": ("await", (ast.Await,)),
}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _at_top_level(statements: list[Any], kinds: tuple[type, ...], line: int | None) -> bool:
    """Whether a `kinds` node on `line` stands in the selection's own top-level code: not
    in a def, lambda or class the selection holds (those errors are real in the file too)."""
    pending = list(statements)
    while pending:
        node = pending.pop()
        if isinstance(node, _SCOPES):
            continue
        if isinstance(node, kinds) and (line is None or getattr(node, "lineno", None) == line):
            return True
        pending.extend(ast.iter_child_nodes(node))
    return False


def _cut_from_a_function(doc_lines: list[str], first_line: int) -> bool:
    """Whether the selection starting at `first_line` lies inside a `def` of the document:
    the nearest less-indented line above its first code line, and so on outwards, is a def.
    Code at the file's top level (a whole-file run, a cell, the /execute API's snippets)
    is not: there a top-level `return` is an error in the file too, and keeps Python's
    message."""
    start = first_line - 1
    while 0 <= start < len(doc_lines) and not doc_lines[start].strip():
        start += 1
    if not 0 <= start < len(doc_lines):
        return False
    line = doc_lines[start]
    indent = len(line) - len(line.lstrip())
    for previous in reversed(doc_lines[:start]):
        code = previous.lstrip()
        if indent == 0:
            return False
        if not code or code.startswith("#"):
            continue
        depth = len(previous) - len(code)
        if depth < indent:
            if code.startswith(("def ", "async def ")):
                return True
            indent = depth
    return False


def _explain_outside_function(exc: SyntaxError, statements: list[Any]) -> None:
    """A `return`/`yield`/`await` at the top level of a selection cut out of a function
    (see _cut_from_a_function): say how to run it. Only then: `'await' outside async
    function` or `'return' with value in async generator` keep Python's message."""
    found = _OUTSIDE_FUNCTION.get(exc.msg) if isinstance(exc.msg, str) else None
    if found is None:
        return
    keyword, kinds = found
    if not _at_top_level(statements, kinds, exc.lineno):
        return
    exc.msg = (
        f"'{keyword}' outside function: the selection runs as top-level code. "
        f"Select the whole function (with its def line), or leave out the '{keyword}'"
    )
    exc.args = (exc.msg, *exc.args[1:])


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
        if isinstance(exc, SyntaxError):
            # As Python's traceback shows it: without str()'s "(file, line N)", which the
            # error's own line and frames already say (a user's compile() or ast.parse()).
            message = str(exc.msg or "<no detail available>")
        else:
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
    # "unexpected indent" has an end offset of -1 (unknown): no range, only a place.
    end_column = end_offset - 1 if end_offset is not None and end_offset > 0 and end_line else None
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
    enter_module_context(main.__dict__, path)
    return main.__dict__


def package_context(path: str) -> tuple[str, str, str] | None:
    """(module name, package, the directory holding the top package) of a file that lies
    in a package: its folder and those above it hold `__init__.py`, as far up as they go
    (names that cannot be imported end the walk). None for a file in no package.

    Walking up rather than stopping at the workspace root is what pytest's default import
    mode does too, and it is right when the workspace is itself a package's folder.
    Namespace packages (folders without `__init__.py`) are not guessed at."""
    if not path or not os.path.isabs(path):
        return None
    import keyword

    directory = os.path.dirname(path)
    parts: list[str] = []
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        name = os.path.basename(directory)
        if not name.isidentifier() or keyword.iskeyword(name):
            break
        parts.insert(0, name)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    if not parts:
        return None
    package = ".".join(parts)
    stem = os.path.splitext(os.path.basename(path))[0]
    module = package if stem == "__init__" else package + "." + stem
    return module, package, directory


def enter_module_context(namespace: dict[str, Any], path: str) -> None:
    """Make `namespace` (a `__main__`) run `path` as `python -m pkg.sub.mod` would run a
    file of a package, so its relative imports work: `__name__` stays "__main__",
    `__package__` and `__spec__` come from where the file lies (runpy sets the same), and
    the top package's folder goes first on sys.path (`-m` run from there has it as its
    current directory). A file in no package gets None for both, as `python file.py` does,
    so a session's run of another file does not keep the previous one's package."""
    namespace["__file__"] = path
    context = package_context(path)
    if context is None:
        namespace["__package__"] = None
        namespace["__spec__"] = None
        namespace["__loader__"] = None
        return
    module, package, root = context
    import importlib.util

    spec = importlib.util.spec_from_file_location(module, path)
    namespace["__package__"] = package
    namespace["__spec__"] = spec
    namespace["__loader__"] = spec.loader if spec is not None else None
    if root not in sys.path:
        sys.path.insert(0, root)


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


# A session's __future__ features (`from __future__ import annotations` run once stays in
# effect, as in the REPL and IPython), by the id of its namespace: one per worker process.
_SESSION_FUTURES: dict[int, int] = {}


def run_request(request: dict[str, Any], namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one request in this process; returns the result object (never raises).

    `namespace` is the `__main__` dict to run in (a session's, kept between runs: it
    also keeps the session's __future__ features, and `_` the last trailing value);
    by default a fresh `__main__` module is made. The result's `outputs` are the run's rich
    outputs in nbformat's shape (display.py says what and within which limits).
    """
    path = request["path"]
    register_document(path, request.get("document") or request["code"])
    display = rich_outputs()
    if display is not None:
        display.begin_run()
    session = namespace is not None
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
            future_flags=_SESSION_FUTURES.get(id(namespace), 0) if session else 0,
        )
        if namespace is None:
            namespace = _new_main_module(path)
        else:
            _SESSION_FUTURES[id(namespace)] = compiled.future_flags
            enter_module_context(namespace, path)
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
    if session and value is not None:
        # As the REPL's sys.displayhook does: `_` is the last trailing value, kept in
        # builtins, so a variable `_` the user assigned shadows it and stays theirs.
        builtins._ = value  # type: ignore[attr-defined]
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
