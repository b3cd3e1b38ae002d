"""What a hover shows: which answer wins on a line, and how its parts are put together.

Three answers can compete for one position: the result of a run on that line, an
explanation of it, and the live value of the name under the cursor. The order is a promise
(an editor waiting for a run's hover must never take "(session busy)" for it), so it lives
here on plain values, tested in process; the server only turns the request into a line and
a column and the answer into an LSP Hover. The live value is asked for last and only when
needed: it reads the document and may ask the session, so it comes in as a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from codeexec_lsp import present, present_outputs
from codeexec_lsp.actions.variables import Place
from codeexec_lsp.actions.variables import hover as variable_hover
from codeexec_lsp.positions import from_client, to_client
from codeexec_lsp.run_history import ExplanationHistory, ExplanationRecord, RunHistory, RunRecord

SEPARATOR = "\n\n---\n\n"  # between a run's result and its explanation

# The hovered line's text (no line break) and where its variables live, or None when the
# document cannot be read or is not Python.
PythonLine = Callable[[], tuple[str, Place | None] | None]


@dataclass(frozen=True)
class Shown:
    """Hover Markdown, and the client-unit columns it is about on the hovered line (a live
    name's span; None for a run line, where the hover is about the whole run)."""

    markdown: str
    span: tuple[int, int] | None = None


def recorded_markdown(
    record: RunRecord | None,
    explanation: ExplanationRecord | None,
    image_style: present_outputs.ImageStyle,
) -> str | None:
    """The run's result (its outputs under it, images as the client can show them) and the
    explanation below, apart by a rule; None when there is neither."""
    parts = []
    if record is not None:
        parts.append(present.hover_markdown(record))
        if record.result.outputs:
            parts[-1] += "\n\n" + present_outputs.hover_outputs_markdown(
                record.result.outputs, image_style, value=record.result.value
            )
    if explanation is not None:
        parts.append(present.explanation_markdown(explanation.markdown))
    return SEPARATOR.join(parts) if parts else None


def run_going(going: Iterable[tuple[str, int, int]], uri: str, line: int) -> bool:
    """Whether a run still going (or queued) covers `line`: keys are (uri, first, last)."""
    return any(key[0] == uri and key[1] <= line <= key[2] for key in list(going))


async def hover(
    uri: str,
    line: int,
    character: int,
    encoding: str,
    *,
    history: RunHistory,
    explanations: ExplanationHistory,
    going: Iterable[tuple[str, int, int]],
    image_style: present_outputs.ImageStyle,
    python_line: PythonLine,
) -> Shown | None:
    """The hover at (`line`, client column `character`) of `uri`.

    A run line (or an explained one): that run's result and the explanation. The lines of
    a run still going (or queued): nothing until it ends. Anywhere else: the live value of
    the name under the cursor in the session a run of this document would use; nothing
    when the session does not hold it.
    """
    recorded = recorded_markdown(
        history.at_line(uri, line), explanations.at_line(uri, line), image_style
    )
    if recorded is not None:
        return Shown(recorded)
    if run_going(going, uri, line):
        return None
    found = python_line()
    if found is None:
        return None
    text, place = found
    answer = await variable_hover(place, text, from_client(text, character, encoding))
    if answer is None:
        return None
    span = (to_client(text, answer.start, encoding), to_client(text, answer.end, encoding))
    return Shown(answer.markdown, span)
