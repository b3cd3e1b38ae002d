"""The kernel-side half of a run: code we install in an IPython kernel with one silent
execute per kernel start (or restart), and the one-line cell each run executes.

Why a helper at all: nothing built into IPython puts errors on the file's real lines
(`Cell In[1], line 8`; `run_cell` takes no filename; a bare `exec(compile(...))` numbers
lines from the snippet and loses the trailing value). So the helper does what runner.py
does in our own processes, with runner.py's very functions (its source is installed as
the module `_codeexec_runner`, so every executor compiles and describes errors alike):

- it reads our request from the `execute_request`'s `metadata` (Jupyter Server, Kernel
  Gateway and Enterprise Gateway pass it through unchanged), so the code travels as data;
- compiles the snippet under the document's real path at its real line and column, and
  registers the document in `linecache`; IPython syntax (`%timeit`, `!echo`) is
  translated by IPython's own transformers only when plain Python does not parse;
- runs it in the kernel's `user_ns` (the state a notebook on the same kernel shares) and
  returns the trailing value, so IPython's display machinery shows it (rich reprs,
  `_`), as it would in a notebook;
- answers with one `display_data` of REPORT_MIME: the value's repr, the duration and the
  structured error (type, message, line, column, frames), then re-raises the error so the
  kernel, and any notebook watching, sees the run fail as usual.

Nothing lands in the user's namespace: the helper lives in `sys.modules`.
"""

from __future__ import annotations

from pathlib import Path

from codeexec_lsp.execution import runner
from codeexec_lsp.execution.jupyter.protocol import REPORT_MIME

HELPER_MODULE = "_codeexec_kernel"
RUNNER_MODULE = "_codeexec_runner"
# The cells a run executes: one short line, so the kernel parses almost nothing per run.
RUN_CELL = f"__import__({HELPER_MODULE!r}).run()"
RUN_CELL_ASYNC = f"await __import__({HELPER_MODULE!r}).run_async()"

_KERNEL_SIDE = '''
import builtins
import sys
import time

import _codeexec_runner as runner

REPORT_MIME = %(mime)r
_REQUEST_KEY = "codeexec"


def _shell():
    from IPython import get_ipython

    return get_ipython()


def _request():
    kernel = getattr(_shell(), "kernel", None)
    parent = kernel.get_parent("shell") if kernel is not None else None
    metadata = (parent or {}).get("metadata") or {}
    request = metadata.get(_REQUEST_KEY)
    if not isinstance(request, dict):
        raise RuntimeError("codeexec: the run request did not reach the kernel (metadata)")
    return request


def _publish(report):
    from IPython.display import publish_display_data

    publish_display_data({REPORT_MIME: report})


def _no_input(*args, **kwargs):
    raise EOFError(runner.NO_INPUT_MESSAGE)


def _with_ipython_syntax(code):
    """IPython's translation of magics and shell escapes, its lines kept where they were."""
    transformed = _shell().transform_cell(code)
    leading = len(code) - len(code.lstrip("\\n"))
    return "\\n" * leading + transformed.lstrip("\\n")


_FUTURE_FLAGS = [0]  # `from __future__` imports stay in effect for later runs, as in IPython


def _compile(request):
    compiled = _compile_once(request)
    _FUTURE_FLAGS[0] = compiled.future_flags
    return compiled


def _compile_once(request):
    path = request["path"]
    code = request["code"]
    where = (
        path,
        request.get("first_line", 1),
        request.get("column", 0),
        request.get("document", ""),
    )
    try:
        return runner.compile_snippet(code, *where, future_flags=_FUTURE_FLAGS[0])
    except SyntaxError as plain_error:
        try:
            translated = _with_ipython_syntax(code)
        except Exception:
            raise plain_error
        if translated == code:
            raise
        try:
            return runner.compile_snippet(translated, *where, future_flags=_FUTURE_FLAGS[0])
        except SyntaxError:
            raise plain_error from None


class _Run:
    def __init__(self):
        self.request = _request()
        self.path = self.request["path"]
        runner.register_document(self.path, self.request.get("document") or self.request["code"])
        self.started = time.perf_counter()
        self.saved_input = builtins.input
        builtins.input = _no_input

    def ok(self, value):
        builtins.input = self.saved_input
        shown = runner._safe_repr(value) if value is not None else None
        _publish({"value": shown, "error": None, "duration_ms": self._elapsed()})
        return value

    def failed(self, exc):
        builtins.input = self.saved_input
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            _publish({"value": None, "error": None, "duration_ms": self._elapsed()})
            return False
        error = runner.describe_exception(exc, self.path)
        _publish({"value": None, "error": error, "duration_ms": self._elapsed()})
        return True

    def _elapsed(self):
        return (time.perf_counter() - self.started) * 1000


def run():
    state = _Run()
    try:
        compiled = _compile(state.request)
        namespace = _shell().user_ns
        exec(compiled.body, namespace)
        value = eval(compiled.last_expr, namespace) if compiled.last_expr is not None else None
    except BaseException as exc:
        if state.failed(exc):
            raise
        return None
    return state.ok(value)


async def run_async():
    state = _Run()
    try:
        compiled = _compile(state.request)
        namespace = _shell().user_ns
        outcome = eval(compiled.body, namespace)
        if hasattr(outcome, "__await__"):
            await outcome
        value = None
        if compiled.last_expr is not None:
            value = eval(compiled.last_expr, namespace)
            if hasattr(value, "__await__") and compiled.last_expr.co_flags & runner.CO_COROUTINE:
                value = await value
    except BaseException as exc:
        if state.failed(exc):
            raise
        return None
    return state.ok(value)
'''

_INSTALLER = """
import sys, types
for _name, _source in ((RUNNER_NAME, RUNNER_SOURCE), (HELPER_NAME, HELPER_SOURCE)):
    _module = types.ModuleType(_name)
    _module.__file__ = "<" + _name + ">"
    sys.modules[_name] = _module
    exec(compile(_source, _module.__file__, "exec"), _module.__dict__)
"""


def kernel_side_source() -> str:
    return _KERNEL_SIDE % {"mime": REPORT_MIME}


def install_cell() -> str:
    """One cell that installs runner.py and the helper as modules, touching nothing in the
    user's namespace (it runs in a fresh dict)."""
    runner_source = Path(runner.__file__).read_text(encoding="utf-8")
    names = {
        "RUNNER_NAME": RUNNER_MODULE,
        "RUNNER_SOURCE": runner_source,
        "HELPER_NAME": HELPER_MODULE,
        "HELPER_SOURCE": kernel_side_source(),
    }
    return f"exec({_INSTALLER!r}, {names!r})"


def uses_await(code: str) -> bool:
    """Whether the snippet needs the kernel's event loop (top-level await): a cheap look,
    erring on the side of the async cell, which runs plain code just as well."""
    return "await" in code or "async " in code


def run_cell(code: str) -> str:
    return RUN_CELL_ASYNC if uses_await(code) else RUN_CELL


def request_metadata(
    code: str, path: str, document: str, first_line: int, column: int
) -> dict[str, object]:
    """What rides in the execute_request's metadata; `first_line` is 1-based."""
    return {
        "codeexec": {
            "code": code,
            "path": path,
            "document": document,
            "first_line": first_line,
            "column": column,
        }
    }


def helper_missing(error: dict[str, object] | None) -> bool:
    """The kernel answered our run cell without the helper: restarted by someone else (a
    notebook's Restart), or never installed. Reinstall and run again."""
    if not error:
        return False
    return str(error.get("ename")) == "ModuleNotFoundError" and HELPER_MODULE in str(
        error.get("evalue")
    )
