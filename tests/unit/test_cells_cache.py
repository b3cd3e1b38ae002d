"""Cell markers, statements and lines are computed once per document text: the cached
answers must be the ones a fresh scan gives, for every version of the document."""

from __future__ import annotations

import random

from lsprotocol import types as lsp
from pygls.workspace import TextDocument, Workspace

from codeexec_lsp import documents, snippet


def reference_cell_span(document: str, line: int) -> tuple[int, int] | None:
    """The straightforward scan the cache replaced."""
    lines = document.splitlines()
    markers = [i for i, text in enumerate(lines) if snippet.CELL_MARKER.match(text)]
    if not markers:
        return None
    starts = [m for m in markers if m <= line]
    first = starts[-1] if starts else 0
    later = [m for m in markers if m > line]
    last = later[0] - 1 if later else len(lines) - 1
    return (first, max(first, last))


def random_document(rng: random.Random, lines: int) -> str:
    choices = ["x = 1", "# %%", "  # %% indented", "# In[3]:", "# not a marker", "", "y = 2"]
    return "\n".join(rng.choice(choices) for _ in range(lines)) + "\n"


def test_cell_spans_match_a_fresh_scan_for_every_version() -> None:
    rng = random.Random(7)
    document = random_document(rng, 300)
    for _ in range(30):
        for line in range(0, 300, 7):
            assert snippet.cell_span(document, line) == reference_cell_span(document, line)
        # An edit: a new text, as the editor's next version.
        lines = document.splitlines()
        lines.insert(rng.randrange(len(lines)), rng.choice(["# %%", "z = 3"]))
        del lines[rng.randrange(len(lines))]
        document = "\n".join(lines) + "\n"


def test_cells_before_the_first_marker_and_without_markers() -> None:
    document = "a = 1\nb = 2\n# %%\nc = 3\n"
    assert snippet.cell_span(document, 0) == (0, 1)
    assert snippet.cell_span(document, 3) == (2, 3)
    assert snippet.cell_span("a = 1\nb = 2\n", 1) is None


def test_one_text_is_split_and_scanned_once() -> None:
    document = "# %%\nx = 1\n" * 500
    assert snippet.document_lines(document) is snippet.document_lines(document)
    assert snippet.cell_markers(document) is snippet.cell_markers(document)
    edited = document.replace("x = 1", "x = 2", 1)
    assert snippet.document_lines(edited) == edited.splitlines()
    assert snippet.cell_markers(edited) == snippet.cell_markers(document)


def test_statement_spans_follow_the_text() -> None:
    first = "def f():\n    return 1\n\nx = f()\n"
    assert snippet.statement_span(first, 1) == (0, 1)
    assert snippet.statement_span(first, 3) == (3, 3)
    second = "@decorator\ndef f():\n    return 1\nx = f()\n"
    assert snippet.statement_span(second, 2) == (0, 2)
    broken = "def f(:\n    return 1\nx = 2\n"  # does not parse: indentation decides
    assert snippet.statement_span(broken, 1) == (0, 1)
    assert snippet.statement_span(broken, 2) == (2, 2)


def test_many_texts_do_not_grow_the_cache() -> None:
    for index in range(100):
        snippet.cell_span(f"# %%\nx = {index}\n", 1)
    assert len(snippet._PARSED) <= snippet._PARSED_KEPT


def test_cached_document_lines_follow_incremental_changes() -> None:
    workspace = Workspace(None)
    documents.cache_lines(workspace)
    item = lsp.TextDocumentItem(
        uri="file:///tmp/doc.py", language_id="python", version=1, text="a = 1\nb = 2\n"
    )
    workspace.put_text_document(item)
    document = workspace.get_text_document(item.uri)
    assert isinstance(document, documents.CachedLinesDocument)
    assert document.lines is document.lines
    assert list(document.lines) == ["a = 1\n", "b = 2\n"]
    change = lsp.TextDocumentContentChangePartial(
        range=lsp.Range(
            start=lsp.Position(line=1, character=4), end=lsp.Position(line=1, character=5)
        ),
        text="20\nc = 3",
    )
    workspace.update_text_document(
        lsp.VersionedTextDocumentIdentifier(uri=item.uri, version=2), change
    )
    plain = TextDocument(item.uri, source=document.source)
    assert list(document.lines) == list(plain.lines) == ["a = 1\n", "b = 20\n", "c = 3\n"]
