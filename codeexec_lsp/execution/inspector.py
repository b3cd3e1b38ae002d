"""Looks at a live session's variables, inside the session worker, between runs.

Why it is built this way:

- It runs in the *user's* interpreter (loaded by worker.py as runner.py is), so it uses the
  standard library only and stays valid Python 3.8.
- Looking at an object runs the user's code (``__repr__``, ``__len__``, properties,
  ``keys()``), which may hang or print. Each object gets its own wall-clock alarm
  (``signal.setitimer``; the handler raises a BaseException so a broad ``except
  Exception`` in user code cannot swallow it), and all of one request share a budget.
  What does not finish is reported as "could not show", never left running: the worker's
  state is untouched either way. Output printed meanwhile is thrown away, so it can never
  be mistaken for the next run's output. The server keeps its own timeout as a backstop
  (code stuck in C ignores the alarm).
- Every answer is bounded: how many names, attributes and keys, how long a summary and a
  preview are. The reply is one JSON line on the result pipe, told apart from run results
  by its ``"inspected"`` key.

- In an IPython kernel (the Jupyter executor) the same code answers a silent execute's
  ``user_expressions`` (`kernel_install_code`, `kernel_expression`, `answer_from_kernel`):
  nothing is run as a cell, nothing lands in the user's namespace or history.

Request: ``{"op": "inspect", "id", "what": "variables" | "value" | "attributes" | "keys",
"path": [name, attribute, ...], "budget_s"}``. Answer: ``{"inspected": id, ...}`` with
``"variables": [...]`` (what ``variables``/``value`` found: name, type, kind, summary,
preview), ``"attributes": [{"name", "kind"}]``, ``"keys": [{"key", "type"}]``, or
``"missing": true`` when the session holds no such name.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

MAX_NAMES = 200
MAX_ATTRIBUTES = 400
MAX_KEYS = 200
MAX_SUMMARY_CHARS = 120
MAX_PREVIEW_CHARS = 1200
MAX_PREVIEW_LINES = 12
PER_OBJECT_S = 0.5  # one hanging __repr__ must not use up the whole budget
DEFAULT_BUDGET_S = 1.0


class _TookTooLong(BaseException):
    """Raised by the alarm; a BaseException so user code's `except Exception` lets it by."""


class _OutOfBudget(_TookTooLong):
    """The request's budget was used up before this object's turn."""


class _Discard:
    """Where output printed while we look goes: nowhere (and no memory)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _on_alarm(signum: int, frame: Any) -> None:
    raise _TookTooLong()


class _Clock:
    """The request's budget, and a per-object alarm that never outlives it."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.monotonic() + max(0.05, budget_s)
        # Signal handlers can only be set in the main thread (a kernel might not call us
        # there): elsewhere only the budget and the server's timeout bound us.
        self.has_alarm = hasattr(signal, "setitimer") and (
            threading.current_thread() is threading.main_thread()
        )

    def left(self) -> float:
        return self.deadline - time.monotonic()

    @contextlib.contextmanager
    def bounded(self) -> Iterator[None]:
        """Run the body under an alarm of at most PER_OBJECT_S (and the budget left)."""
        seconds = min(PER_OBJECT_S, self.left())
        if seconds <= 0:
            raise _OutOfBudget()
        if not self.has_alarm:
            yield
            return
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        started = time.monotonic()
        users_timer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
            if users_timer > 0:  # the user's own alarm, re-armed for what it had left
                left = users_timer - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def _one_line(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_block(text: str) -> str:
    lines = text.splitlines()
    clipped = len(lines) > MAX_PREVIEW_LINES or len(text) > MAX_PREVIEW_CHARS
    text = "\n".join(line[:160] for line in lines[:MAX_PREVIEW_LINES])[:MAX_PREVIEW_CHARS]
    return text + ("\n…" if clipped else "")


def _short_repr() -> Any:
    import reprlib

    shortened = reprlib.Repr()
    shortened.maxstring = 100
    shortened.maxother = MAX_PREVIEW_CHARS
    shortened.maxlist = shortened.maxtuple = shortened.maxset = shortened.maxdict = 30
    shortened.maxfrozenset = shortened.maxdeque = shortened.maxarray = 30
    return shortened


def _type_name(value: Any) -> str:
    return type(value).__name__


def _module_of(value: Any) -> str:
    return getattr(type(value), "__module__", "") or ""


def _is_dataframe(value: Any) -> bool:
    return _module_of(value).startswith("pandas") and _type_name(value) == "DataFrame"


def _is_series(value: Any) -> bool:
    return _module_of(value).startswith("pandas") and _type_name(value) == "Series"


def _kind(value: Any) -> str:
    import types

    if isinstance(value, types.ModuleType):
        return "module"
    if isinstance(value, type):
        return "class"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return "function"
    return "value"


def _signature(value: Any) -> str:
    import inspect

    try:
        return str(inspect.signature(value))
    except (TypeError, ValueError):
        return "(…)"


def _describe(value: Any) -> tuple[str, str | None]:
    """(summary, preview): one line, and a few lines more where that helps (tables)."""
    kind = _kind(value)
    if kind == "module":
        return str(getattr(value, "__name__", "?")), None
    if kind == "class":
        return "class " + str(getattr(value, "__qualname__", "?")) + _signature(value), None
    if kind == "function":
        return str(getattr(value, "__name__", "?")) + _signature(value), None
    if _is_dataframe(value):
        rows, columns = value.shape
        preview = value.head(5).to_string(max_cols=8, max_colwidth=24)
        return f"{rows:,} rows × {columns:,} columns", _clip_block(preview)
    if _is_series(value):
        summary = f"{len(value):,} values, dtype {value.dtype}"
        return summary, _clip_block(value.head(5).to_string())
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        size = "×".join(str(n) for n in shape) or "scalar"
        return f"{size} {dtype}", _clip_block(repr(value))
    # reprlib: a million-item list is summed up from its first items, not repr'd whole.
    text = _short_repr().repr(value)
    if isinstance(value, (str, bytes)) and len(value) > 60:
        return _one_line(text, 80) + f" ({len(value):,} characters)", None
    if isinstance(value, (list, tuple, dict, set, frozenset)) and len(text) > 80:
        count = len(value)
        noun = "item" if count == 1 else "items"
        return f"{count:,} {noun}: {_one_line(text, 80)}", None
    preview = _clip_block(text) if "\n" in text.strip() else None
    return _one_line(text), preview


def _variable(name: str, value: Any, clock: _Clock) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": _type_name(value), "kind": _kind(value)}
    try:
        with clock.bounded():
            summary, preview = _describe(value)
    except _OutOfBudget:
        summary, preview = "(not shown: no time left to look at it)", None
    except _TookTooLong:
        summary, preview = f"(could not show: it took longer than {PER_OBJECT_S:g} s)", None
    except Exception as exc:
        summary = f"(could not show: {type(exc).__name__}: {_one_line(str(exc), 60)})"
        preview = None
    entry["summary"] = _one_line(summary)
    if preview:
        entry["preview"] = preview
    return entry


def user_names(namespace: dict[str, Any]) -> list[str]:
    """The names a user would call theirs: not ``_``-prefixed (REPL and module dunders)."""
    return sorted(name for name in namespace if not name.startswith("_"))[:MAX_NAMES]


def _resolve(namespace: dict[str, Any], path: list[str], clock: _Clock) -> tuple[bool, Any]:
    """The object `a.b.c` names, with getattr only (bounded: a property is user code)."""
    if not path or path[0] not in namespace:
        return False, None
    value = namespace[path[0]]
    for attribute in path[1:]:
        with clock.bounded():
            try:
                value = getattr(value, attribute)
            except Exception:
                return False, None
    return True, value


def _attribute_kind(owner: Any, name: str) -> str:
    import inspect
    import types

    try:
        found = inspect.getattr_static(owner, name)
    except AttributeError:
        return "field"
    if isinstance(found, property):
        return "property"
    if isinstance(found, types.ModuleType):
        return "module"
    if isinstance(found, type):
        return "class"
    if callable(found) or isinstance(found, (staticmethod, classmethod)):
        return "method"
    return "field"


def _attributes(value: Any, clock: _Clock) -> list[dict[str, str]]:
    with clock.bounded():
        names = [name for name in dir(value) if isinstance(name, str)]
    # Public names first, so the cap drops private ones.
    names.sort(key=lambda name: (name.startswith("_"), name))
    found = []
    for name in names[:MAX_ATTRIBUTES]:
        try:
            kind = _attribute_kind(value, name)
        except Exception:
            kind = "field"
        found.append({"name": name, "kind": kind})
    return found


def _keys(value: Any, clock: _Clock) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with clock.bounded():
        if _is_dataframe(value):
            for column, dtype in list(value.dtypes.items())[:MAX_KEYS]:
                if isinstance(column, (str, int)) and not isinstance(column, bool):
                    found.append({"key": column, "type": str(dtype)})
            return found
        keys = getattr(value, "keys", None)
        if not callable(keys) or isinstance(value, type):
            return found
        for key in keys():
            if len(found) >= MAX_KEYS:
                break
            if isinstance(key, (str, int)) and not isinstance(key, bool):
                try:
                    kind = _type_name(value[key]) if isinstance(value, dict) else ""
                except Exception:
                    kind = ""
                found.append({"key": key, "type": kind})
    return found


def inspect_request(request: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """Answer one inspect request (see the module docstring); never raises."""
    answer: dict[str, Any] = {"inspected": request.get("id")}
    clock = _Clock(float(request.get("budget_s") or DEFAULT_BUDGET_S))
    what = request.get("what")
    path = [str(part) for part in request.get("path") or []]
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _Discard()
    try:
        if what == "variables":
            answer["variables"] = [
                _variable(name, namespace[name], clock) for name in user_names(namespace)
            ]
            return answer
        found, value = _resolve(namespace, path, clock)
        if not found:
            answer["missing"] = True
        elif what == "value":
            answer["variables"] = [_variable(".".join(path), value, clock)]
        elif what == "attributes":
            answer["attributes"] = _attributes(value, clock)
        elif what == "keys":
            answer["keys"] = _keys(value, clock)
        else:
            answer["error"] = f"unknown inspect request {what!r}"
    except _TookTooLong:
        answer["error"] = "it took longer than the time allowed"
    except Exception as exc:
        answer["error"] = f"{type(exc).__name__}: {_one_line(str(exc), 80)}"
    finally:
        sys.stdout, sys.stderr = saved
    return answer


# --- in an IPython kernel (Jupyter) ----------------------------------------------------------

KERNEL_MODULE = "_codeexec_inspector"
KERNEL_EXPRESSION_KEY = "codeexec_variables"


def in_ipython(request_json: str) -> str:
    """Called in an IPython kernel: answer `request_json` about the shell's user namespace,
    without IPython's own names (In, Out, exit...), as JSON text."""
    from IPython import get_ipython  # type: ignore[import-not-found,unused-ignore]

    shell = get_ipython()
    hidden = getattr(shell, "user_ns_hidden", {})
    namespace = {
        name: value
        for name, value in shell.user_ns.items()
        if name not in hidden or hidden[name] is not value
    }
    return json.dumps(inspect_request(json.loads(request_json), namespace), default=str)


def kernel_install_code() -> str:
    """A one-statement cell that installs this file as the module KERNEL_MODULE, once per
    kernel (a restarted kernel gets it again), binding no name in the user's namespace."""
    with open(__file__, encoding="utf-8") as source_file:
        source = source_file.read()
    module = f"__import__('types').ModuleType({KERNEL_MODULE!r})"
    return (
        f"{KERNEL_MODULE!r} in __import__('sys').modules or exec(compile({source!r}, "
        f"{KERNEL_MODULE!r}, 'exec'), vars(__import__('sys').modules.setdefault("
        f"{KERNEL_MODULE!r}, {module})))"
    )


def kernel_expression(request: dict[str, Any]) -> str:
    """The user_expression that answers `request` in a kernel that ran kernel_install_code."""
    return f"__import__('sys').modules[{KERNEL_MODULE!r}].in_ipython({json.dumps(request)!r})"


def kernel_execute_content(request: dict[str, Any]) -> dict[str, Any]:
    """An execute_request's content: silent (no output, no history, no execution count),
    the install as its code and the question as its one user_expression."""
    return {
        "code": kernel_install_code(),
        "silent": True,
        "store_history": False,
        "user_expressions": {KERNEL_EXPRESSION_KEY: kernel_expression(request)},
        "allow_stdin": False,
        "stop_on_error": False,
    }


def answer_from_kernel(reply_content: dict[str, Any], inspection: Any) -> dict[str, Any]:
    """The inspector's answer from an execute_reply's content; an answer carrying "error"
    when the kernel could not evaluate it (never raises)."""
    import ast

    failed = {"inspected": inspection, "error": "the kernel did not answer the question"}
    expressions = reply_content.get("user_expressions")
    if not isinstance(expressions, dict):
        return failed
    result = expressions.get(KERNEL_EXPRESSION_KEY)
    if not isinstance(result, dict) or result.get("status") != "ok":
        if isinstance(result, dict) and result.get("ename"):
            failed["error"] = "{}: {}".format(result.get("ename"), result.get("evalue"))
        return failed
    text = (result.get("data") or {}).get("text/plain")
    if not isinstance(text, str):
        return failed
    try:
        answer = json.loads(ast.literal_eval(text))
    except (ValueError, TypeError, SyntaxError):
        return failed
    return answer if isinstance(answer, dict) else failed
