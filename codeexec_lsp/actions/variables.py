"""Live variables: hover on a name, the variables list, completion of attributes and keys.

The use cases behind `textDocument/hover` (on names outside run lines),
`textDocument/completion` and `codeexec.variables` (the list and the Markdown document it
opens), with no LSP types in or out. They ask the executor that would run the document
(`Inspects`: SessionExecutor does; any executor with the same `inspect` method, such as a
Jupyter kernel's, can) about the state a run of that document would see, and turn its
plain answers into plain results (variables.py formats them).

Why so: the session never starts for a hover (only a session that ran code holds
anything), never queues behind a run ("busy" at once), and every question has two
bounds: the worker's own budget (a per-object alarm, inspector.py) and a longer timeout
here, so a `__repr__` stuck in C code still leaves the editor an answer. Completion has
the tightest bounds: it is asked on every `.` and must never be what the user waits for.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import STATEFUL_EXECUTORS, build_request, workspace_for
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import InspectAnswer, RunRequest
from codeexec_lsp.variables import (
    Completion,
    Variable,
    attribute_completions,
    busy_markdown,
    completion_context,
    hover_markdown,
    key_completions,
    name_at,
    no_answer_markdown,
    variables_from,
    variables_markdown,
)

# (worker budget, server timeout) in seconds, per use.
HOVER_BOUNDS = (0.6, 1.2)
LIST_BOUNDS = (2.0, 3.0)
COMPLETION_BOUNDS = (0.3, 0.6)
BUILTIN_NAMES = frozenset(dir(builtins))


@runtime_checkable
class Inspects(Protocol):
    """An executor that keeps state between runs and can be asked about it: "none" when it
    holds none for `request` (never started for a question), "busy" while a run goes."""

    async def inspect(
        self, request: RunRequest, message: dict[str, Any], timeout: float
    ) -> InspectAnswer: ...


@dataclass(frozen=True)
class Place:
    """Where a document's variables live: the executor that would run it and a request
    for it (which session or kernel, by the executor's own key)."""

    inspector: Inspects
    request: RunRequest


def place_for(
    path: str, settings: Settings, folders: Sequence[str], executor: object
) -> Place | None:
    """Where a run of `path` would find its state now; None when the configured executor
    keeps none (local, http) or cannot be asked (a stale session of an earlier executor
    setting is not what the user runs in)."""
    if not isinstance(executor, Inspects):
        return None
    probe = snippet.for_lines("pass\n", path, 0, 0)
    request = build_request(probe, settings, workspace_for(path, folders))
    return Place(executor, request)


def session_place(
    document_path: str | None,
    settings: Settings,
    folders: Sequence[str],
    executor_for: Callable[[Settings], object],
) -> Place | None:
    """Where the variables a run of the document at `document_path` would see live; with no
    document, the first workspace folder's (else the current directory's). None for the
    executors that keep no state between runs, whose executor is then not even looked up
    (an http executor would be created for nothing)."""
    if settings.executor not in STATEFUL_EXECUTORS:
        return None
    if document_path is not None:
        path = document_path
    elif folders:
        path = str(Path(folders[0]) / "__variables__.py")
    else:
        path = str(Path.cwd() / "__variables__.py")
    return place_for(path, settings, folders, executor_for(settings))


async def _ask(
    place: Place, what: str, path: Sequence[str], bounds: tuple[float, float]
) -> InspectAnswer:
    budget, timeout = bounds
    message = {"what": what, "path": list(path), "budget_s": budget}
    return await place.inspector.inspect(place.request, message, timeout)


@dataclass(frozen=True)
class HoverAnswer:
    """Hover Markdown for the identifier at code-point columns start..end."""

    markdown: str
    start: int
    end: int


async def hover(place: Place | None, line: str, column: int) -> HoverAnswer | None:
    """The live value of the name at `column`; None when the session does not hold it."""
    found = name_at(line, column)
    if place is None or found is None:
        return None
    answer = await _ask(place, "value", found.path, HOVER_BOUNDS)
    if answer.status == "busy":
        if len(found.path) == 1 and found.path[0] in BUILTIN_NAMES:
            return None  # `print` while busy: most likely not a variable at all
        return HoverAnswer(busy_markdown(found.dotted), found.start, found.end)
    if answer.status == "timeout":
        markdown = no_answer_markdown(found.dotted, HOVER_BOUNDS[1])
        return HoverAnswer(markdown, found.start, found.end)
    variables = variables_from(answer.answer) if answer.status == "ok" else []
    if not variables:
        return None  # not held by the session (or an attribute that raised): say nothing
    return HoverAnswer(hover_markdown(variables[0]), found.start, found.end)


@dataclass(frozen=True)
class VariablesAnswer:
    """The session's variables, and a note when they could not all be listed."""

    variables: list[Variable] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"variables": [v.to_json() for v in self.variables]}
        if self.note:
            data["message"] = self.note
        return data


def listed_where(place: Place | None) -> str:
    """What a list of variables is about, for its heading and file name: the session's
    folder by name, or "no session"."""
    return Path(place.request.cwd).name if place is not None else "no session"


def variables_document(folder: Path, where: str, answer: VariablesAnswer) -> Path:
    """Write the list as a Markdown document the editor can open (as Explain's is): one
    file per session folder, so listing again replaces it. Raises OSError."""
    target = folder / f"{where or 'session'}-variables.md"
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(variables_markdown(where, answer.variables, answer.note), encoding="utf-8")
    return target


async def list_variables(place: Place | None, executor: str) -> VariablesAnswer:
    if place is None:
        return VariablesAnswer(
            note=f"Variables live in a session: the executor is {executor!r}, which keeps "
            'none between runs. Set codeexec.executor to "session" and run some code.'
        )
    answer = await _ask(place, "variables", (), LIST_BOUNDS)
    if answer.status == "none":
        return VariablesAnswer(note="No session is running here yet: run some code first.")
    if answer.status == "busy":
        return VariablesAnswer(note="(session busy) The session is running code; ask again.")
    if answer.status == "timeout":
        return VariablesAnswer(
            note=f"(could not list: the session did not answer within {LIST_BOUNDS[1]:g} s)"
        )
    error = answer.answer.get("error")
    note = f"(could not list them all: {error})" if isinstance(error, str) else ""
    return VariablesAnswer(variables_from(answer.answer), note)


@dataclass(frozen=True)
class CompletionAnswer:
    """Items and how much of the line before the cursor they replace (code points)."""

    items: list[Completion]
    replaces: int = 0


async def complete(place: Place | None, before_cursor: str) -> CompletionAnswer:
    """Attributes after `name.`, keys after `name[` / `name["`; nothing when the session is
    busy, slow, or does not hold the name (other servers' items then stand alone)."""
    context = completion_context(before_cursor)
    if place is None or context is None:
        return CompletionAnswer([])
    answer = await _ask(place, context.what, context.path, COMPLETION_BOUNDS)
    if answer.status != "ok":
        return CompletionAnswer([])
    if context.what == "attributes":
        items = attribute_completions(answer.answer.get("attributes") or [], context.prefix)
    else:
        items = key_completions(answer.answer.get("keys") or [], context.prefix, context.quote)
    return CompletionAnswer(items, len(context.prefix))
