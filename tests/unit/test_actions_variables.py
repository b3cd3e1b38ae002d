"""The variables list's document and where a document's variables live, in process."""

from __future__ import annotations

from pathlib import Path

from codeexec_lsp.actions.variables import (
    VariablesAnswer,
    listed_where,
    place_for,
    session_place,
    variables_document,
)
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.registry import Executors
from codeexec_lsp.variables import Variable, variables_markdown


def test_the_document_is_the_list_in_markdown_one_file_per_folder(tmp_path: Path) -> None:
    answer = VariablesAnswer([Variable(name="n", type="int", summary="42")], note="")
    folder = tmp_path / "cache" / "variables"
    written = variables_document(folder, "proj", answer)
    assert written == folder / "proj-variables.md"
    assert written.read_text(encoding="utf-8") == variables_markdown("proj", answer.variables)
    again = variables_document(folder, "proj", VariablesAnswer(note="(session busy)"))
    assert again == written and "(session busy)" in written.read_text(encoding="utf-8")
    # A session at the file system's root has no folder name.
    assert variables_document(folder, "", answer).name == "session-variables.md"


async def test_where_a_documents_variables_live(tmp_path: Path) -> None:
    executors = Executors()
    try:
        session = Settings(executor="session")
        folder, document = tmp_path / "proj", tmp_path / "proj" / "pkg" / "mod.py"
        document.parent.mkdir(parents=True)
        place = session_place(str(document), session, [str(folder)], executors.for_settings)
        assert place is not None and place.inspector is executors.session
        assert place.request.snippet.path == str(document) and place.request.cwd == str(folder)
        assert listed_where(place) == "proj"
        # No document: the first workspace folder's session, as a run there would use.
        first = session_place(None, session, [str(folder), str(tmp_path)], executors.for_settings)
        expected = place_for(
            str(folder / "__variables__.py"), session, [str(folder)], executors.session
        )
        assert first is not None and expected is not None and first.request == expected.request
        nowhere = session_place(None, session, [], executors.for_settings)
        assert nowhere is not None
        assert nowhere.request.snippet.path == str(Path.cwd() / "__variables__.py")
        # Executors that keep nothing between runs: no place, and no executor made for it.
        for executor in ("local", "http"):
            settings = Settings(executor=executor)
            assert (
                session_place(str(document), settings, [str(folder)], executors.for_settings)
                is None
            )
        assert executors._http == {}
        assert listed_where(None) == "no session"
    finally:
        await executors.close()
