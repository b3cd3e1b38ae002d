"""What each document shows from earlier runs and explanations, kept in step with edits.

Lines are 0-based and spans inclusive. A record disappears when a line it came from is
edited; records below an edit move with their lines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from codeexec_lsp.results import RunResult


class SpanRecord(Protocol):
    @property
    def first_line(self) -> int: ...

    @property
    def last_line(self) -> int: ...

    def shifted(self: Record, delta: int) -> Record: ...


Record = TypeVar("Record", bound=SpanRecord)
# Each record holds a run's output (up to maxOutputBytes): running many separate lines of
# one long file must not grow the server without bound. The oldest go first.
MAX_RECORDS_PER_DOCUMENT = 200


def _covers(record: SpanRecord, line: int) -> bool:
    return record.first_line <= line <= record.last_line


def _overlaps(record: SpanRecord, first: int, last: int) -> bool:
    return record.first_line <= last and first <= record.last_line


@dataclass(frozen=True)
class RunRecord:
    first_line: int
    last_line: int
    result: RunResult
    label: str  # e.g. "lines 3–7", "cell (lines 1–9)"
    path: str  # the file name tracebacks use for this document

    def shifted(self, delta: int) -> RunRecord:
        error = self.result.error
        if error is not None and delta:
            error = replace(
                error,
                line=None if error.line is None else error.line + delta,
                end_line=None if error.end_line is None else error.end_line + delta,
                frames=tuple(
                    replace(
                        frame,
                        line=frame.line + delta,
                        end_line=None if frame.end_line is None else frame.end_line + delta,
                    )
                    if frame.file == self.path
                    else frame
                    for frame in error.frames
                ),
            )
        return replace(
            self,
            first_line=self.first_line + delta,
            last_line=self.last_line + delta,
            result=replace(self.result, error=error),
        )


@dataclass(frozen=True)
class ExplanationRecord:
    first_line: int
    last_line: int
    markdown: str

    def shifted(self, delta: int) -> ExplanationRecord:
        return replace(self, first_line=self.first_line + delta, last_line=self.last_line + delta)


class SpanHistory(Generic[Record]):
    def __init__(self) -> None:
        self._records: dict[str, list[Record]] = {}

    def records(self, uri: str) -> list[Record]:
        return list(self._records.get(uri, []))

    def add(self, uri: str, record: Record) -> None:
        """A new record replaces every record it overlaps."""
        kept = [
            old
            for old in self._records.get(uri, [])
            if not _overlaps(old, record.first_line, record.last_line)
        ]
        self._records[uri] = [*kept, record][-MAX_RECORDS_PER_DOCUMENT:]

    def at_line(self, uri: str, line: int) -> Record | None:
        covering = [record for record in self._records.get(uri, []) if _covers(record, line)]
        return covering[-1] if covering else None

    def overlapping(self, uri: str, first: int, last: int) -> Record | None:
        found = [r for r in self._records.get(uri, []) if _overlaps(r, first, last)]
        return found[-1] if found else None

    def forget(self, uri: str) -> bool:
        return self._records.pop(uri, None) is not None

    def edit(self, uri: str, start_line: int, start_col: int, end_line: int, text: str) -> bool:
        """Apply one text change (start..end replaced by `text`); True if anything changed."""
        records = self._records.get(uri)
        if not records:
            return False
        delta = text.count("\n") - (end_line - start_line)
        # Inserting whole lines right before a result pushes it down rather than editing it.
        pure_line_insert = start_line == end_line and start_col == 0 and text.endswith("\n")
        updated: list[Record] = []
        for record in records:
            if record.last_line < start_line:
                updated.append(record)
            elif record.first_line > end_line or (
                pure_line_insert and record.first_line == start_line
            ):
                updated.append(record.shifted(delta) if delta else record)
            # else: the edit touched the lines this result came from; it is stale.
        changed = updated != records
        self._records[uri] = updated
        return changed


RunHistory = SpanHistory[RunRecord]
ExplanationHistory = SpanHistory[ExplanationRecord]
