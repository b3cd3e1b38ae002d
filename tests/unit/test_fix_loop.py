"""The fix loop, branch by branch (DESIGN.md "The fix loop, precisely"): what is run, what the
model is told, and exactly what the outcome says. Candidates really run, in fresh local
processes; the model is a scripted stand-in (the wire format is tested against the fake
model server elsewhere)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.fix import FixOutcome, FixRequest, fix
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.code_context import DiagnosticInfo
from codeexec_lsp.config import Settings
from codeexec_lsp.edits import LineEdit
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.llm.base import ChatMessage, LlmContextTooLong
from codeexec_lsp.results import RunResult

BUGGY = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([]))\n"
GOOD = (
    "def mean(values):\n"
    "    if not values:\n"
    "        return 0.0\n"
    "    return sum(values) / len(values)"
)
FIXED_DOCUMENT = GOOD + "\n\n\nprint(mean([]))\n"


def fenced(code: str) -> str:
    return f"Here you go:\n\n```python\n{code}\n```\n"


class Model:
    """Scripted answers in turn (an exception instance is raised); records every prompt."""

    name = "scripted:model"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048
    ) -> AsyncIterator[str]:
        yield await self.complete(messages, max_tokens=max_tokens)

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        self.prompts.append("\n".join(message.content for message in messages))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Runs:
    """Runs lines of a document for real and records which lines of which text ran."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[tuple[str, int, int]] = []

    async def __call__(self, document: str, first: int, last: int) -> RunResult:
        self.calls.append((document, first, last))
        lines = snippet.for_lines(document, str(self.path), first, last)
        return await LocalExecutor().run(build_request(lines, Settings(), self.path.parent))


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    path = tmp_path / "mean.py"
    path.write_text(BUGGY)
    return Runs(path)


def request(runs: Runs, **changes: object) -> FixRequest:
    values: dict[str, object] = {
        "document": BUGGY,
        "path": str(runs.path),
        "first_line": 0,
        "last_line": 1,
        "run_span": (0, 4),
        "attempts": 2,
        **changes,
    }
    return FixRequest(**values)  # type: ignore[arg-type]


async def failing(runs: Runs) -> RunResult:
    result = await runs(BUGGY, 0, 4)
    runs.calls.clear()
    return result


async def test_a_clean_probe_means_nothing_to_fix(runs: Runs) -> None:
    model = Model(fenced(GOOD))
    clean = "def mean(values):\n    return 1\n\n\nprint(mean([]))\n"
    outcome = await fix(model, request(runs, document=clean), runs)
    assert outcome == FixOutcome(False, 0, "Nothing to fix: the code ran without an error.")
    assert runs.calls == [(clean, 0, 4)] and model.prompts == []


async def test_a_failing_probe_then_a_good_candidate_is_verified_and_applied(runs: Runs) -> None:
    model = Model(fenced(GOOD))
    outcome = await fix(model, request(runs), runs)
    assert outcome.verified and outcome.should_apply and outcome.attempts == 1
    assert outcome.message == (
        "Fixed and verified: lines 1–7 ran without an error (attempt 1 of 2)."
    )
    assert outcome.candidate == GOOD and outcome.new_document == FIXED_DOCUMENT
    assert outcome.edits == [LineEdit(1, 1, "    if not values:\n        return 0.0\n")]
    assert outcome.target is not None
    assert (outcome.target.start_line, outcome.target.end_line) == (0, 1)
    assert outcome.verification is not None and outcome.verification.stdout == "0.0\n"
    # The probe ran the failing lines; verification ran them grown by the two new lines.
    assert [(first, last) for _, first, last in runs.calls] == [(0, 4), (0, 6)]
    assert "ZeroDivisionError" in model.prompts[0]
    assert outcome.to_json(True) == {
        "applied": True,
        "verified": True,
        "attempts": 1,
        "message": outcome.message,
    }


async def test_without_verification_the_candidate_is_applied_unrun(runs: Runs) -> None:
    last_run = await failing(runs)
    outcome = await fix(Model(fenced(GOOD)), request(runs, last_run=last_run, verify=False), runs)
    assert (outcome.verified, outcome.should_apply, outcome.attempts) == (False, True, 1)
    assert outcome.message == (
        "Applied the model's fix WITHOUT running it (codeexec.fix.verify is off)."
    )
    assert outcome.new_document == FIXED_DOCUMENT and runs.calls == []


async def test_code_that_reads_input_is_applied_but_said_to_be_unverified(runs: Runs) -> None:
    last_run = await failing(runs)
    reads = (
        "def mean(values):\n"
        "    values = values or [float(input())]\n"
        "    return sum(values) / len(values)"
    )
    outcome = await fix(Model(fenced(reads)), request(runs, last_run=last_run), runs)
    assert (outcome.verified, outcome.should_apply) == (False, True)
    assert outcome.message == (
        "Applied the model's fix WITHOUT verifying it: the code reads input(), so it cannot "
        "run on its own."
    )
    assert outcome.verification is not None and outcome.verification.status == "error"


async def test_every_kind_of_failed_attempt_is_told_to_the_model_and_nothing_applies(
    runs: Runs,
) -> None:
    last_run = await failing(runs)
    unchanged = "def mean(values):\n    return sum(values) / len(values)"
    still_wrong = "def mean(values):\n    return sum(values) / len(values or None)"
    model = Model(
        "I cannot help with that.",
        fenced(unchanged),
        fenced("import os\n\ndef mean(values):\n    os.system('true')\n    return 0"),
        fenced(still_wrong),
    )
    outcome = await fix(model, request(runs, last_run=last_run, attempts=4), runs)
    assert (outcome.verified, outcome.should_apply, outcome.attempts) == (False, False, 4)
    assert outcome.candidate == still_wrong and outcome.target is not None
    assert outcome.new_document == BUGGY.replace("len(values)", "len(values or None)", 1)
    assert outcome.edits == [LineEdit(1, 2, "    return sum(values) / len(values or None)\n")]
    assert outcome.message.startswith("No verified fix after 4 attempt(s); nothing was changed.")
    assert outcome.message.endswith(
        "The last candidate failed because running it still fails: TypeError: object of type "
        "'NoneType' has no len() at line 2."
    )
    last_prompt = model.prompts[-1]
    assert "I cannot help with that." in model.prompts[1]  # prompts show the last two
    assert "the model returned the code unchanged" in last_prompt
    assert "it was refused: " in last_prompt
    assert outcome.to_json(False)["applied"] is False


async def test_a_last_refusal_is_worded_as_refused(runs: Runs) -> None:
    last_run = await failing(runs)
    refused = "import os\n\ndef mean(values):\n    os.system('true')\n    return 0"
    outcome = await fix(Model(fenced(refused)), request(runs, last_run=last_run, attempts=1), runs)
    assert outcome.message.startswith(
        "No verified fix after 1 attempt(s); nothing was changed. The last candidate was refused: "
    )
    assert outcome.candidate is None and outcome.edits == [] and outcome.target is None


async def test_deleting_the_failing_call_is_not_a_fix(runs: Runs) -> None:
    last_run = await failing(runs)
    whole = "def mean(values):\n    return sum(values) / len(values)\n\n\npass"
    outcome = await fix(
        Model(fenced(whole)), request(runs, last_run=last_run, last_line=4, attempts=1), runs
    )
    assert not outcome.verified and not outcome.should_apply
    assert outcome.message.endswith(
        "The last candidate failed because it deletes the failing line `print(mean([]))` "
        "instead of fixing the cause."
    )
    assert runs.calls == []  # never run


async def test_a_context_too_long_is_retried_with_a_trimmed_context(runs: Runs) -> None:
    last_run = await failing(runs)
    model = Model(LlmContextTooLong("too long"), fenced(GOOD))
    outcome = await fix(model, request(runs, last_run=last_run), runs)
    assert outcome.verified and len(model.prompts) == 2


async def test_after_a_probe_deleting_the_failing_call_is_still_refused(runs: Runs) -> None:
    """No diagnostic and no earlier run: the probe's failure is what the fix is judged by."""
    whole = "def mean(values):\n    return sum(values) / len(values)\n\n\npass"
    outcome = await fix(Model(fenced(whole)), request(runs, last_line=4, attempts=1), runs)
    assert not outcome.should_apply
    assert "it deletes the failing line `print(mean([]))`" in outcome.message
    assert [(first, last) for _, first, last in runs.calls] == [(0, 4)]  # only the probe ran


async def test_the_diagnostic_and_the_path_reach_the_model(runs: Runs) -> None:
    diagnostic = DiagnosticInfo('"valuez" is not defined', 1, "Pyright", "reportUndefined")
    model = Model(fenced(GOOD))
    await fix(model, request(runs, diagnostic=diagnostic), runs)
    assert '"valuez" is not defined' in model.prompts[0] and "Pyright" in model.prompts[0]
    assert str(runs.path) in model.prompts[0]


async def test_a_target_further_down_is_verified_over_the_right_lines(tmp_path: Path) -> None:
    document = "import math\n\n\n" + BUGGY
    path = tmp_path / "down.py"
    path.write_text(document)
    runs = Runs(path)
    outcome = await fix(
        Model(fenced(GOOD)),
        request(runs, document=document, first_line=3, last_line=4, run_span=(3, 7)),
        runs,
    )
    assert outcome.verified and outcome.edits == [
        LineEdit(4, 4, "    if not values:\n        return 0.0\n")
    ]
    # The probe ran lines 4–8; with two lines more, verification runs lines 4–10.
    assert [(first, last) for _, first, last in runs.calls] == [(3, 7), (3, 9)]
    assert outcome.message.startswith("Fixed and verified: lines 4–10 ran")
