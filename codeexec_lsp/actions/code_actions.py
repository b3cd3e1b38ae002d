"""Which code actions are offered where: the decision behind `textDocument/codeAction`.

The server translates the request into plain values (the range and diagnostics as the
client sent them, as JSON) and each Offer back into an LSP CodeAction; which actions appear
on which lines, their titles and arguments are decided here, so they can be tested in
process without an editor. Listing is instant: nothing runs and no model is called until
an action is picked, so everything here only looks at what the server already holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codeexec_lsp import snippet
from codeexec_lsp.run_history import RunHistory

if TYPE_CHECKING:  # a pending fix exists only once Fix with LLM has loaded it
    from codeexec_lsp.actions.fix import FixOutcome

# The commands the actions invoke (also what editor configurations bind keys to).
RUN = "codeexec.run"
EXPLAIN = "codeexec.explain"
FIX = "codeexec.fix"
APPLY_FIX = "codeexec.applyFix"
RESTART = "codeexec.restart"
SHOW_OUTPUT = "codeexec.showOutput"
# The kinds they are offered under (a client may ask for some kinds only).
KIND_RUN = "codeexec.run"
KIND_RUN_FILE = "codeexec.runFile"
KIND_EXPLAIN = "codeexec.explain"
KIND_FIX = "quickfix.codeexec.fix"
KIND_RESTART = "codeexec.restart"
KIND_SHOW_OUTPUT = "codeexec.showOutput"
KINDS = [KIND_RUN, KIND_RUN_FILE, KIND_EXPLAIN, KIND_FIX, KIND_RESTART, KIND_SHOW_OUTPUT]


@dataclass(frozen=True)
class Diagnostic:
    """A diagnostic the client sent with the request: as the fix command takes it (range,
    message, source, code) and whether it is a mere hint (never worth a fix)."""

    json: dict[str, Any]
    hint: bool = False


@dataclass(frozen=True)
class Offer:
    """One code action: a command with its arguments; `diagnostic` is the index (in the
    diagnostics given) of the one it fixes, for the action's own `diagnostics` field."""

    title: str
    kind: str
    command: str
    arguments: list[Any] = field(default_factory=list)
    diagnostic: int | None = None


def offers(
    uri: str,
    source: str,
    range_: dict[str, Any],
    diagnostics: Sequence[Diagnostic] = (),
    *,
    version: int | None = None,
    pending_fix: tuple[int | None, FixOutcome] | None = None,
    going: Iterable[tuple[str, int, int]] = (),
    history: RunHistory,
    executor: str,
    only: Sequence[str] | None = None,
) -> list[Offer]:
    """The actions for `range_` (LSP range JSON) of the document `uri` holding `source`.

    Always Run / Run file / Explain, named after what a run there means (a cursor in a
    `# %%` cell runs the cell, elsewhere the statement; a selection runs the selection).
    Fix with LLM for the first diagnostic that is more than a hint, or for a selection
    without one. Apply unverified fix while a fix made for this very `version` waits
    for lines overlapping the range. Show output where a run (from `history`) ended or
    one (keys of `going`: uri, first line, last line) still goes: its page follows the
    run. Restart session with the session executor. `only` keeps the kinds asked for.
    """
    start, end = range_["start"], range_["end"]
    first, last = start["line"], end["line"]
    target = [uri, range_]
    if start == end:
        unit = "cell" if snippet.cell_span(source, first) is not None else "statement"
    else:
        unit = "selection"
    found = [
        Offer(f"Run {unit}", KIND_RUN, RUN, [*target]),
        Offer("Run file", KIND_RUN_FILE, RUN, [uri]),
        Offer(f"Explain {unit}", KIND_EXPLAIN, EXPLAIN, [*target]),
    ]
    worth_fixing = [i for i, diagnostic in enumerate(diagnostics) if not diagnostic.hint]
    for index in worth_fixing[:1]:
        arguments = [*target, diagnostics[index].json]
        found.append(Offer("Fix with LLM", KIND_FIX, FIX, arguments, diagnostic=index))
    if not worth_fixing and unit == "selection":
        found.append(Offer("Fix with LLM", KIND_FIX, FIX, [*target]))
    if pending_fix is not None and _fix_waits(pending_fix, version, first, last):
        found.append(Offer("Apply unverified fix", KIND_FIX, APPLY_FIX, [uri]))
    running_here = any(
        going_uri == uri and going_first <= last and first <= going_last
        for going_uri, going_first, going_last in list(going)
    )
    ran_here = history.overlapping(uri, first, last) is not None
    if running_here or ran_here:
        found.append(Offer("Show output", KIND_SHOW_OUTPUT, SHOW_OUTPUT, [*target]))
    if executor == "session":
        found.append(Offer("Restart session", KIND_RESTART, RESTART, []))
    if only:
        found = [offer for offer in found if any(kind_matches(offer.kind, k) for k in only)]
    return found


def _fix_waits(
    pending_fix: tuple[int | None, FixOutcome], version: int | None, first: int, last: int
) -> bool:
    from codeexec_lsp.actions.fix_session import still_applicable

    fixed_version, outcome = pending_fix
    span = outcome.target
    if not still_applicable(version, fixed_version, outcome) or span is None:
        return False
    return span.start_line <= last and first <= span.end_line


def kind_matches(kind: str, wanted: str) -> bool:
    """LSP's rule for `only`: a kind matches itself and every kind below it (`a.b` in `a`)."""
    return kind == wanted or kind.startswith(f"{wanted}.")
