"""The editor's open documents, with their lines split once per version, as LSP splits them.

pygls' `TextDocument.lines` splits the whole text on every access, with `str.splitlines`,
which also ends a line at a form feed or U+2028 (lines.py), where the editor does not. The
server reads the lines for each code action, run, diagnostic and inlay hint, and a
10,000-line file costs about a millisecond per split: reading the same version again must
cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pygls.workspace import TextDocument, Workspace

from codeexec_lsp.lines import split_lines


class CachedLinesDocument(TextDocument):
    """A TextDocument whose `lines` are computed once per text (per version: every change
    gives the document a new text object)."""

    _lines_for: str | None = None
    _lines: Sequence[str] = ()

    @property
    def lines(self) -> Sequence[str]:
        source = self.source
        if self._lines_for is not source:
            self._lines = tuple(split_lines(source, keepends=True))
            self._lines_for = source
        return self._lines


class CachedLinesWorkspace(Workspace):
    """pygls' workspace, making CachedLinesDocuments."""

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return CachedLinesDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


def cache_lines(workspace: Any) -> None:
    """Make `workspace` (pygls', created at `initialize`) keep its documents' lines. Call it
    before any document is opened; documents it already holds keep splitting each time."""
    if type(workspace) is Workspace:
        workspace.__class__ = CachedLinesWorkspace
