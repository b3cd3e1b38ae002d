"""Show output: which run a page is about, where the page goes, and keeping it current.

The server only translates (command arguments in; `window/showDocument` and a message out):
the choice between a finished run and one still going, the page's file name, writing it and
following a running run until it ends live here, on plain values, so they can be tested in
process without an editor. Refusals are plain exceptions the server turns into replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from codeexec_lsp import present_outputs
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.run_history import RunHistory, RunRecord

log = logging.getLogger(__name__)

# Runs still going, keyed (uri, first line, last line) -> (label, what they showed so far).
LiveRuns = Mapping[tuple[str, int, int], tuple[str, LiveOutput]]

NOTHING_TO_SHOW = (
    "codeexec Show output: no finished run here, and none going. Run these lines, "
    "then Show output (while they run it shows the output so far)."
)


class NothingToShow(Exception):
    """No run going and none finished on those lines: the user must run them first."""

    def __init__(self) -> None:
        super().__init__(NOTHING_TO_SHOW)


class PageNotWritten(Exception):
    """The page file could not be written; the message names the file and the reason."""

    def __init__(self, target: Path, error: OSError) -> None:
        self.target = target
        super().__init__(
            f"codeexec Show output: could not write {target}: {error.strerror or error}"
        )


@dataclass(frozen=True)
class GoingRun:
    """A run still going: its lines, label and what it has shown so far."""

    first_line: int
    last_line: int
    label: str
    live: LiveOutput


@dataclass(frozen=True)
class OutputPage:
    """The page written, and whether a task keeps rewriting it until its run ends."""

    path: Path
    following: bool


def choose_run(
    uri: str,
    span: tuple[int, int] | None,
    live_runs: LiveRuns,
    history: RunHistory,
) -> RunRecord | GoingRun:
    """A run still going on those lines (the latest started), else the last finished run
    overlapping `span`, else (no span) the document's latest run; NothingToShow if none."""
    going = [
        GoingRun(first, last, label, live)
        for (live_uri, first, last), (label, live) in list(live_runs.items())
        if live_uri == uri and (span is None or (first <= span[1] and span[0] <= last))
    ]
    if going:
        return going[-1]
    if span is not None:
        record = history.overlapping(uri, span[0], span[1])
    else:
        records = history.records(uri)
        record = records[-1] if records else None
    if record is not None:
        return record
    raise NothingToShow()


def page_path(folder: Path, document_path: str, first_line: int, last_line: int) -> Path:
    """One file per lines, so the live page becomes the whole result at the same address."""
    return folder / f"{_stem(document_path)}-lines-{first_line + 1}-{last_line + 1}.html"


def _stem(document_path: str) -> str:
    return document_path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py") or "output"


def _write(target: Path, page: str) -> None:
    """A page is small: writing it in the event loop is quicker than handing it to a thread."""
    target.write_text(page, encoding="utf-8")


def _live_page(title: str, live: LiveOutput, ended: bool = False) -> str:
    return present_outputs.live_output_page(
        title,
        live.elapsed(),
        live.stdout,
        live.stderr,
        live.outputs,
        None if ended else live.waiting_for,
        (live.omitted("stdout"), live.omitted("stderr")),
        ended=ended,
    )


def write_output_page(
    uri: str,
    span: tuple[int, int] | None,
    live_document_path: str,
    live_runs: LiveRuns,
    history: RunHistory,
    folder: Path,
) -> OutputPage:
    """Write the whole result of a run as one HTML page (a finished run's page names the
    file its record ran as; a going run's, `live_document_path`). While the run goes the page
    holds its output so far and a task rewrites it (the page reloads itself) until the run
    ends, then writes the whole result there."""
    found = choose_run(uri, span, live_runs, history)
    path = found.path if isinstance(found, RunRecord) else live_document_path
    title = f"{_stem(path)}.py, {found.label}"
    target = page_path(folder, path, found.first_line, found.last_line)
    if isinstance(found, RunRecord):
        page = present_outputs.output_page(found.result, title)
    else:
        page = _live_page(title, found.live)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise PageNotWritten(target, exc) from exc
    if isinstance(found, RunRecord):
        return OutputPage(target, following=False)
    live = found.live
    if not live.followers:  # one follower per run, however often the page is asked for
        follower = asyncio.ensure_future(follow_run(uri, found, title, target, live_runs, history))
        live.followers.add(follower)
        follower.add_done_callback(live.followers.discard)
    return OutputPage(target, following=True)


async def follow_run(
    uri: str,
    run: GoingRun,
    title: str,
    target: Path,
    live_runs: LiveRuns,
    history: RunHistory,
) -> None:
    """Rewrite the page every LIVE_PAGE_REFRESH_S while the run is registered as going, then
    once more with its recorded result (or, if it left no record, what it showed, ended)."""
    key = (uri, run.first_line, run.last_line)
    earlier = [record.result for record in history.records(uri)]
    try:
        while True:
            await asyncio.sleep(present_outputs.LIVE_PAGE_REFRESH_S)
            if live_runs.get(key, (None, None))[1] is not run.live:
                break
            _write(target, _live_page(title, run.live))
        # The server records the result as it unregisters the run (no await between).
        recorded = [
            record
            for record in history.records(uri)
            if (record.first_line, record.last_line) == (run.first_line, run.last_line)
            and not any(record.result is result for result in earlier)
        ]
        final = (
            present_outputs.output_page(recorded[-1].result, title)
            if recorded
            else _live_page(title, run.live, ended=True)
        )
        _write(target, final)
    except OSError as exc:  # the page stays as it was; the hover has the result
        log.warning("could not update the output page %s: %s", target, exc)
