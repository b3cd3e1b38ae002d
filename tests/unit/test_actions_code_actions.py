"""Which code actions are offered where, in process on plain values (the server only turns
each Offer into an LSP CodeAction)."""

from __future__ import annotations

from typing import Any

from codeexec_lsp.actions import code_actions as ca
from codeexec_lsp.actions.code_actions import Diagnostic, Offer, offers
from codeexec_lsp.actions.fix import FixOutcome
from codeexec_lsp.code_context import CodeUnit
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import RunHistory, RunRecord

URI = "file:///p/calc.py"
SOURCE = "x = 1\ny = x + 1\n# %%\nz = y\nprint(z)\n"
PLAIN = "x = 1\ny = x + 1\nz = y\n"


def at(line: int, char: int = 0, end_line: int | None = None, end_char: int | None = None) -> Any:
    end = {"line": line if end_line is None else end_line, "character": char}
    if end_char is not None:
        end["character"] = end_char
    return {"start": {"line": line, "character": char}, "end": end}


def titles(found: list[Offer]) -> list[str]:
    return [offer.title for offer in found]


def test_a_cursor_runs_the_statement_or_the_cell_it_is_in() -> None:
    history = RunHistory()
    found = offers(URI, PLAIN, at(1, 3), history=history, executor="local")
    assert titles(found) == ["Run statement", "Run file", "Explain statement"]
    assert found[0] == Offer("Run statement", ca.KIND_RUN, ca.RUN, [URI, at(1, 3)])
    assert found[1] == Offer("Run file", ca.KIND_RUN_FILE, ca.RUN, [URI])
    assert found[2].command == ca.EXPLAIN and found[2].arguments == [URI, at(1, 3)]
    in_cell = offers(URI, SOURCE, at(3, 0), history=history, executor="local")
    assert titles(in_cell)[:3] == ["Run cell", "Run file", "Explain cell"]


def test_a_selection_is_run_explained_and_fixable_without_a_diagnostic() -> None:
    selected = at(0, 0, end_line=1, end_char=9)
    found = offers(URI, PLAIN, selected, history=RunHistory(), executor="local")
    assert titles(found) == ["Run selection", "Run file", "Explain selection", "Fix with LLM"]
    assert found[3] == Offer("Fix with LLM", ca.KIND_FIX, ca.FIX, [URI, selected])
    same_line = at(0, 0, end_char=3)
    assert titles(offers(URI, PLAIN, same_line, history=RunHistory(), executor="local"))[0] == (
        "Run selection"
    )


def test_fix_is_for_the_first_diagnostic_that_is_more_than_a_hint() -> None:
    hint = Diagnostic({"message": "unused"}, hint=True)
    error = Diagnostic({"range": at(1, 0), "message": "NameError", "source": "x", "code": None})
    later = Diagnostic({"message": "another"})
    found = offers(URI, PLAIN, at(1, 0), [hint, error, later], history=RunHistory(), executor="l")
    fixes = [offer for offer in found if offer.command == ca.FIX]
    assert fixes == [
        Offer("Fix with LLM", ca.KIND_FIX, ca.FIX, [URI, at(1, 0), error.json], diagnostic=1)
    ]
    only_hints = offers(URI, PLAIN, at(1, 0), [hint], history=RunHistory(), executor="local")
    assert "Fix with LLM" not in titles(only_hints)
    # A selection with only hints is still fixable as a selection, with no diagnostic.
    selected = at(0, 0, end_line=1, end_char=1)
    fix = offers(URI, PLAIN, selected, [hint], history=RunHistory(), executor="local")[-1]
    assert fix == Offer("Fix with LLM", ca.KIND_FIX, ca.FIX, [URI, selected])


def pending(version: int | None, first: int, last: int, with_target: bool = True) -> Any:
    target = CodeUnit("statement", None, "y = x + 1\n", first, last) if with_target else None
    return (version, FixOutcome(False, 1, "not verified", target=target))


def test_an_unverified_fix_is_offered_on_its_lines_for_its_own_version_only() -> None:
    def apply_offered(fix: Any, version: int | None, line: int) -> bool:
        found = offers(
            URI,
            PLAIN,
            at(line),
            version=version,
            pending_fix=fix,
            history=RunHistory(),
            executor="l",
        )
        return Offer("Apply unverified fix", ca.KIND_FIX, ca.APPLY_FIX, [URI]) in found

    assert apply_offered(pending(3, 1, 2), 3, 1)
    assert apply_offered(pending(3, 1, 2), 3, 2)
    assert not apply_offered(pending(3, 1, 2), 3, 0)  # not its lines
    assert not apply_offered(pending(3, 1, 2), 4, 1)  # the document changed since
    assert not apply_offered(pending(3, 1, 2, with_target=False), 3, 1)
    assert not apply_offered(None, 3, 1)


def test_show_output_where_a_run_ended_or_one_still_goes() -> None:
    history = RunHistory()
    history.add(URI, RunRecord(0, 1, RunResult(status="ok"), "lines 1–2", "/p/calc.py"))
    show = Offer("Show output", ca.KIND_SHOW_OUTPUT, ca.SHOW_OUTPUT, [URI, at(1)])
    assert show in offers(URI, PLAIN, at(1), history=history, executor="local")
    assert "Show output" not in titles(offers(URI, PLAIN, at(2), history=history, executor="l"))
    going = [(URI, 2, 2), ("file:///p/other.py", 0, 9)]
    shown = offers(URI, PLAIN, at(2), going=going, history=RunHistory(), executor="local")
    assert "Show output" in titles(shown)
    elsewhere = [("file:///p/other.py", 0, 9)]
    assert "Show output" not in titles(
        offers(URI, PLAIN, at(2), going=elsewhere, history=RunHistory(), executor="local")
    )


def test_restart_only_with_the_session_executor() -> None:
    restart = Offer("Restart session", ca.KIND_RESTART, ca.RESTART, [])
    assert offers(URI, PLAIN, at(0), history=RunHistory(), executor="session")[-1] == restart
    for executor in ("local", "jupyter", "http"):
        assert restart not in offers(URI, PLAIN, at(0), history=RunHistory(), executor=executor)


def test_only_keeps_the_kinds_asked_for_and_their_subkinds() -> None:
    diagnostic = Diagnostic({"message": "NameError"})

    def kinds(only: list[str]) -> list[str]:
        found = offers(
            URI, PLAIN, at(0), [diagnostic], history=RunHistory(), executor="session", only=only
        )
        return [offer.kind for offer in found]

    assert kinds(["quickfix"]) == [ca.KIND_FIX]
    assert kinds([ca.KIND_RUN]) == [ca.KIND_RUN]  # not codeexec.runFile: no dot after it
    assert kinds(["codeexec"]) == [ca.KIND_RUN, ca.KIND_RUN_FILE, ca.KIND_EXPLAIN, ca.KIND_RESTART]
    assert kinds(["refactor"]) == []
    assert len(kinds([])) == 5  # an empty `only` asks for everything
    assert ca.kind_matches("quickfix.codeexec.fix", "quickfix")
    assert not ca.kind_matches("quickfixes", "quickfix")
