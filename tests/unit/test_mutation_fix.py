"""The fix loop's edges that mutation testing found unguarded (tools/MUTATION.md, fix.py):
what the target is, when a candidate counts as deleting the failing line, how a failure
without a line is told, and how much room the model is given. Candidates really run in
fresh local processes; the model is the fake OpenAI-compatible server, so what it is asked
is checked on the wire."""

from __future__ import annotations

import asyncio
from pathlib import Path

from codeexec_lsp import snippet
from codeexec_lsp.actions.fix import FIX_MAX_TOKENS, FixOutcome, FixRequest, fix
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.llm.factory import make_chat_model
from codeexec_lsp.results import RunResult
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer, context_too_long

BUGGY = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([]))\n"
GOOD = (
    "def mean(values):\n"
    "    if not values:\n"
    "        return 0.0\n"
    "    return sum(values) / len(values)"
)


def fenced(code: str) -> str:
    return f"Here you go:\n\n```python\n{code}\n```\n"


class Runs:
    """Runs lines of a document for real, with `settings`; records which lines ran."""

    def __init__(self, path: Path, settings: Settings | None = None) -> None:
        self.path = path
        self.settings = settings or Settings()
        self.spans: list[tuple[int, int]] = []

    async def __call__(self, document: str, first: int, last: int) -> RunResult:
        self.spans.append((first, last))
        lines = snippet.for_lines(document, str(self.path), first, last)
        return await LocalExecutor().run(build_request(lines, self.settings, self.path.parent))


async def fix_document(
    fake_llm: FakeLlmServer,
    tmp_path: Path,
    document: str,
    *answers: str,
    settings: Settings | None = None,
    **request: object,
) -> tuple[FixOutcome, Runs]:
    """Fix `document` (written to disk) with the model's scripted answers; no earlier run,
    so the loop first runs the lines to see what fails."""
    path = tmp_path / "doc.py"
    await asyncio.to_thread(path.write_text, document)
    fake_llm.script(*(Answer(fenced(answer)) for answer in answers))
    model = make_chat_model("openai", fake_llm.openai_base_url, "fake-model", None, 10)
    runs = Runs(path, settings)
    values: dict[str, object] = {
        "document": document,
        "path": str(path),
        "first_line": 0,
        "attempts": 1,
        **request,
    }
    outcome = await fix(model, FixRequest(**values), runs)  # type: ignore[arg-type]
    return outcome, runs


async def test_a_cursor_inside_a_function_targets_the_whole_function(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """An empty selection (or a diagnostic's line) on the body: the model rewrites the
    function, and the function's lines are what get replaced."""
    outcome, _ = await fix_document(
        fake_llm,
        tmp_path,
        BUGGY,
        GOOD,
        first_line=1,
        last_line=1,
        selection_empty=True,
        run_span=(0, 4),
    )
    assert outcome.target is not None
    assert (outcome.target.start_line, outcome.target.end_line) == (0, 1)
    assert outcome.verified and outcome.new_document == GOOD + "\n\n\nprint(mean([]))\n"


async def test_a_selection_of_a_statement_header_grows_to_the_whole_statement(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """Selecting only `def mean(values):` still replaces the function, not the header alone
    (which would leave the old body under the new function)."""
    outcome, _ = await fix_document(
        fake_llm, tmp_path, BUGGY, GOOD, first_line=0, last_line=0, run_span=(0, 4)
    )
    assert outcome.target is not None
    assert (outcome.target.start_line, outcome.target.end_line) == (0, 1)
    assert outcome.target.text == "def mean(values):\n    return sum(values) / len(values)"
    assert outcome.verified and outcome.new_document == GOOD + "\n\n\nprint(mean([]))\n"


async def test_deleting_a_failing_first_line_is_not_a_fix(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """The failing line is the document's first line and the target's first line."""
    outcome, runs = await fix_document(
        fake_llm, tmp_path, "print(1 / 0)\nprint('after')\n", "print('after')", last_line=1
    )
    assert (outcome.verified, outcome.should_apply) == (False, False)
    assert outcome.message.endswith(
        "The last candidate failed because it deletes the failing line `print(1 / 0)` "
        "instead of fixing the cause."
    )
    assert runs.spans == [(0, 1)]  # the probe only: the candidate never ran


async def test_a_candidate_keeping_the_failing_line_and_fixing_its_cause_is_verified(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    document = "values = []\nprint(sum(values) / len(values))\n"
    candidate = "values = [2, 4]\nprint(sum(values) / len(values))"
    outcome, runs = await fix_document(fake_llm, tmp_path, document, candidate, last_line=1)
    assert (outcome.verified, outcome.should_apply) == (True, True)
    assert outcome.verification is not None and outcome.verification.stdout == "3.0\n"
    assert runs.spans == [(0, 1), (0, 1)]


async def test_a_candidate_ending_the_process_is_described_without_a_line(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """A failure with no line in the document (the process exited) says what it was, with
    no "at line" and nothing made up."""
    ends = "def mean(values):\n    import os\n    os._exit(3)"
    outcome, _ = await fix_document(fake_llm, tmp_path, BUGGY, ends, last_line=1, run_span=(0, 4))
    assert outcome.message == (
        "No verified fix after 1 attempt(s); nothing was changed. "
        "The last candidate failed because running it still fails: SystemExit: 3."
    )


async def test_a_candidate_stopped_by_a_limit_is_described_by_the_limit_message(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """No exception at all (the output cap stopped it): the run's own message, which names
    the limit, is what the user and the model read, not the bare status."""
    floods = "def mean(values):\n    while True:\n        print('x' * 1000)"
    outcome, _ = await fix_document(
        fake_llm,
        tmp_path,
        BUGGY,
        floods,
        settings=Settings(max_output_bytes=1000),
        last_line=1,
        run_span=(0, 4),
    )
    assert outcome.message == (
        "No verified fix after 1 attempt(s); nothing was changed. "
        "The last candidate failed because running it still fails: Stopped: the code printed "
        "more than 10,000 bytes (10 × codeexec.maxOutputBytes). Print less, or raise "
        "maxOutputBytes."
    )


async def test_the_model_is_given_room_for_a_whole_function_also_when_trimmed(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """Both the first request and the retry with a trimmed context (after the model said the
    context is too long) ask for FIX_MAX_TOKENS on the wire."""
    path = tmp_path / "doc.py"
    await asyncio.to_thread(path.write_text, BUGGY)
    fake_llm.script(context_too_long(), Answer(fenced(GOOD)))
    model = make_chat_model("openai", fake_llm.openai_base_url, "fake-model", None, 10)
    request = FixRequest(BUGGY, str(path), 0, 1, run_span=(0, 4), attempts=1)
    outcome = await fix(model, request, Runs(path))
    assert outcome.verified
    assert FIX_MAX_TOKENS == 4096
    assert [r.body["max_tokens"] for r in fake_llm.model_requests] == [4096, 4096]


# --- what the model is told about each failed attempt ---------------------------------------

TYPE_ERROR = "def mean(values):\n    return sum(values) / len(values or None)"
DELETES_CALL = "def mean(values):\n    return sum(values) / len(values)\n\n\npass"


def prompt_of(fake_llm: FakeLlmServer, index: int) -> str:
    body = fake_llm.model_requests[index].body
    return "\n".join(str(message["content"]) for message in body["messages"])


async def test_a_candidate_that_still_fails_is_shown_with_what_its_run_raised(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    outcome, _ = await fix_document(
        fake_llm, tmp_path, BUGGY, TYPE_ERROR, GOOD, last_line=1, run_span=(0, 4), attempts=2
    )
    assert outcome.verified and outcome.attempts == 2
    second = prompt_of(fake_llm, 1)
    assert "Rejected: running it still fails: TypeError: object of type 'NoneType' has no " in (
        second
    )
    # From the candidate's own run, not only the one-line reason:
    assert "It raised TypeError: object of type 'NoneType' has no len() at line 2" in second


async def test_a_candidate_deleting_the_failing_call_is_told_and_the_loop_goes_on(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    outcome, runs = await fix_document(
        fake_llm,
        tmp_path,
        BUGGY,
        DELETES_CALL,
        GOOD + "\n\n\nprint(mean([]))",
        last_line=4,
        run_span=(0, 4),
        attempts=2,
    )
    assert outcome.verified and outcome.attempts == 2
    second = prompt_of(fake_llm, 1)
    assert "Attempt 1:\n```python\n" + DELETES_CALL in second
    assert (
        "Rejected: it deletes the failing line `print(mean([]))` instead of fixing the cause"
        in second
    )
    assert runs.spans == [(0, 4), (0, 6)]  # the probe, then only the second candidate


async def test_an_unusable_answer_is_told_clipped_and_named_when_last(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """An answer that is not Python: the next prompt shows its first 2000 characters and why
    it was not used; when it is the last attempt, the outcome says why."""
    chatter = "I would rather not change this code at all today. " * 60  # 3000 characters
    outcome, _ = await fix_document(
        fake_llm, tmp_path, BUGGY, chatter, chatter, last_line=1, run_span=(0, 4), attempts=2
    )
    answer = fenced(chatter)
    second = prompt_of(fake_llm, 1)
    assert answer[:2000].rstrip() + "\n````" in second and answer[:2001] not in second
    reason = (
        "The model's code is not valid Python (line 1: invalid syntax), so it was not used. "
        "Try again, or try another model (llm.model)."
    )
    assert f"Rejected: {reason}" in second
    assert outcome == FixOutcome(
        False,
        2,
        "No verified fix after 2 attempt(s); nothing was changed. The last candidate failed "
        f"because {reason}",
    )


async def test_an_unchanged_candidate_is_told_as_unchanged(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    unchanged = "def mean(values):\n    return sum(values) / len(values)"
    outcome, _ = await fix_document(
        fake_llm, tmp_path, BUGGY, unchanged, GOOD, last_line=1, run_span=(0, 4), attempts=2
    )
    assert outcome.verified
    assert "Rejected: the model returned the code unchanged\n" in prompt_of(fake_llm, 1) + "\n"


async def test_a_last_refusal_is_worded_once_and_offers_nothing(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    refused = "import os\n\ndef mean(values):\n    os.system('true')\n    return 0"
    outcome, _ = await fix_document(
        fake_llm, tmp_path, BUGGY, refused, last_line=1, run_span=(0, 4)
    )
    prefix = (
        "No verified fix after 1 attempt(s); nothing was changed. The last candidate was refused: "
    )
    assert outcome == FixOutcome(False, 1, outcome.message)
    assert outcome.message.startswith(prefix)
    assert "refused: " not in outcome.message.removeprefix(prefix)


async def test_a_trimmed_retry_still_tells_the_earlier_attempts(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """The context grew too long on the second request: the retry with a trimmed context
    still shows the model what it tried first."""
    path = tmp_path / "doc.py"
    await asyncio.to_thread(path.write_text, BUGGY)
    fake_llm.script(Answer(fenced(TYPE_ERROR)), context_too_long(), Answer(fenced(GOOD)))
    model = make_chat_model("openai", fake_llm.openai_base_url, "fake-model", None, 10)
    request = FixRequest(BUGGY, str(path), 0, 1, run_span=(0, 4), attempts=2)
    outcome = await fix(model, request, Runs(path))
    assert outcome.verified and outcome.attempts == 2
    retried = prompt_of(fake_llm, 2)
    assert "Attempt 1:" in retried and "len(values or None)" in retried


async def test_a_block_for_another_file_is_not_used(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    outcome, runs = await fix_document(
        fake_llm, tmp_path, BUGGY, "# helpers.py\n" + GOOD, last_line=1, run_span=(0, 4)
    )
    assert (outcome.verified, outcome.should_apply, outcome.candidate) == (False, False, None)
    assert "The model's code is for another file (helpers.py), not doc.py" in outcome.message
    assert runs.spans == [(0, 4)]


TWICE = (
    "def mean(values):\n    return sum(values) / len(values)\n\n\n"
    "print(mean([1]))\n\n\n"
    "def mean(values):\n    return sum(values) / len(values)\n\n\n"
    "print(mean([]))\n"
)


async def test_a_whole_file_answer_is_cut_at_the_target_when_its_text_occurs_twice(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """The target (the second `mean`) has the same text as the first: the whole-file answer
    is cut at the target's own place, so only the second definition changes."""
    answer = TWICE.replace(
        "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([]))",
        GOOD + "\n\n\nprint(mean([]))",
    ).rstrip("\n")
    outcome, _ = await fix_document(
        fake_llm, tmp_path, TWICE, answer, first_line=7, last_line=8, run_span=(0, 11)
    )
    assert outcome.verified
    assert outcome.new_document == answer + "\n"


async def test_a_line_of_other_code_run_at_top_level_is_not_taken_for_a_document_line(
    fake_llm: FakeLlmServer, tmp_path: Path
) -> None:
    """The error is in a string given to `exec`: its `<module>` frame's line 2 is the
    string's, not the document's line 2, which the candidate may delete."""
    document = "source = 'x = 1\\ny = 1 / 0'\nnote = 'unused'\nexec(source)\n"
    candidate = "source = 'x = 1\\ny = 1 / 1'\nexec(source)"
    outcome, _ = await fix_document(fake_llm, tmp_path, document, candidate, last_line=2)
    assert (outcome.verified, outcome.should_apply) == (True, True), outcome.message
    assert outcome.new_document == candidate + "\n"
