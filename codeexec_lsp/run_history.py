"""The run results shown in each document, kept in step with the user's edits.

Lines are 0-based and spans inclusive. A result disappears when a line it came from is
edited; results below an edit move with their lines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codeexec_lsp.results import RunResult


@dataclass(frozen=True)
class RunRecord:
    first_line: int
    last_line: int
    result: RunResult
    label: str  # e.g. "lines 3–7", "cell (lines 1–9)"
    path: str  # the file name tracebacks use for this document

    def covers(self, line: int) -> bool:
        return self.first_line <= line <= self.last_line

    def overlaps(self, first: int, last: int) -> bool:
        return self.first_line <= last and first <= self.last_line

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


class RunHistory:
    def __init__(self) -> None:
        self._records: dict[str, list[RunRecord]] = {}

    def records(self, uri: str) -> list[RunRecord]:
        return list(self._records.get(uri, []))

    def add(self, uri: str, record: RunRecord) -> None:
        """A new result replaces the results of every run it overlaps."""
        kept = [
            old
            for old in self._records.get(uri, [])
            if not old.overlaps(record.first_line, record.last_line)
        ]
        self._records[uri] = [*kept, record]

    def at_line(self, uri: str, line: int) -> RunRecord | None:
        covering = [record for record in self._records.get(uri, []) if record.covers(line)]
        return covering[-1] if covering else None

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
        updated: list[RunRecord] = []
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
