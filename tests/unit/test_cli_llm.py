"""`codeexec-lsp explain` and `fix` from a shell, against the fake model on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer
from tests.unit.test_cli import cli, closed_pipe_run, head_one_run

BUGGY = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([]))\n"
FIXED = BUGGY.replace("):\n", "):\n    if not values:\n        return 0.0\n", 1)


def settings(fake_llm: FakeLlmServer) -> str:
    return json.dumps({"llm": {"baseUrl": fake_llm.openai_base_url, "model": "fake"}})


def test_fix_prints_a_diff_and_apply_writes_the_verified_fix(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    fake_llm.default = Answer(f"Sure:\n```python\n{FIXED}```")
    env = {"CODEEXEC_CACHE_DIR": str(tmp_path / "cache")}
    dry = cli("fix", str(script), "--lines", "1-5", "--settings", settings(fake_llm), env=env)
    assert dry.returncode == 0, dry.stderr
    assert "+    if not values:" in dry.stdout and "verified" in dry.stderr
    assert script.read_text() == BUGGY
    applied = cli(
        "fix", str(script), "--lines", "1-5", "--apply", "--settings", settings(fake_llm), env=env
    )
    assert applied.returncode == 0 and script.read_text() == FIXED


def test_fix_of_clean_code_calls_no_model(tmp_path: Path, fake_llm: FakeLlmServer) -> None:
    script = tmp_path / "clean.py"
    script.write_text("x = 1\nprint(x)\n")
    proc = cli("fix", str(script), "--settings", settings(fake_llm))
    assert proc.returncode == 0 and "Nothing to fix" in proc.stderr
    assert fake_llm.model_requests == []


def test_explain_streams_and_grounds_with_run(tmp_path: Path, fake_llm: FakeLlmServer) -> None:
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    fake_llm.script(Answer("It divides by zero for an empty list."))
    env = {"CODEEXEC_CACHE_DIR": str(tmp_path / "cache")}
    proc = cli("explain", str(script), "--run", "--settings", settings(fake_llm), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "It divides by zero for an empty list."
    assert "ZeroDivisionError" in str(fake_llm.model_requests[0].body)


def test_explain_without_configuration_says_what_to_set(tmp_path: Path) -> None:
    script = tmp_path / "a.py"
    script.write_text("1 + 1\n")
    proc = cli("explain", str(script))
    assert proc.returncode == 1 and "OPENAI_API_KEY" in proc.stderr


def test_explain_and_fix_stop_quietly_on_a_closed_pipe(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    env = {"CODEEXEC_CACHE_DIR": str(tmp_path / "cache")}
    fake_llm.default = Answer("It divides by zero for an empty list.\n" * 20_000)
    status, stderr = closed_pipe_run(
        "explain", str(script), "--settings", settings(fake_llm), env=env
    )
    assert status == 141 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    fake_llm.default = Answer(f"Sure:\n```python\n{FIXED}```")
    status, stderr = closed_pipe_run(
        "fix", str(script), "--lines", "1-5", "--settings", settings(fake_llm), env=env
    )
    assert status == 141 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert script.read_text() == BUGGY


def test_explain_piped_into_head_exits_without_a_traceback(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    err = tmp_path / "err.txt"
    fake_llm.default = Answer("It divides by zero for an empty list.\n" * 20_000)
    env = {"CODEEXEC_CACHE_DIR": str(tmp_path / "cache"), "ERR": str(err)}
    status, first, _ = head_one_run(
        "explain", str(script), "--settings", settings(fake_llm), env=env
    )
    assert first == "It divides by zero for an empty list.\n"
    assert status in (0, 141)
    assert "Traceback" not in err.read_text() and "BrokenPipe" not in err.read_text()


def test_fix_verifies_the_candidate_in_the_strict_box(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    # A candidate is code the user did not write: it is verified in the strict box, whose
    # workspace writes are thrown away, while the user's own runs (standard) write for real.
    marker = tmp_path / "written-by-the-code"
    write = f"open({str(marker)!r}, 'w').write('x')\n"
    (tmp_path / "writes.py").write_text(write)
    assert cli("run", str(tmp_path / "writes.py")).returncode == 0
    assert marker.exists(), "a standard run writes where the user may"
    marker.unlink()
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    candidate = FIXED.replace("def mean(values):\n", "def mean(values):\n    " + write, 1)
    fake_llm.default = Answer(f"```python\n{candidate}```")
    env = {"CODEEXEC_CACHE_DIR": str(tmp_path / "cache")}
    proc = cli(
        "fix", str(script), "--lines", "1-5", "--apply", "--settings", settings(fake_llm), env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert script.read_text() == candidate, "the verified candidate is written"
    assert not marker.exists(), "the candidate's verification wrote into the real workspace"
