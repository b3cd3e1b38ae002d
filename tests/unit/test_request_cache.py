"""Per-run costs cut without changing answers: the cached run place (interpreter, folder,
scrubbed environment), RunResult.to_json built by hand, the event-loop stdin reader."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions import run as run_action
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.results import ErrorInfo, Frame, RunResult
from codeexec_lsp.stdio import LoopStdinReader, readable_on_loop


def request_for(folder: Path, **settings: object) -> run_action.RunRequest:
    path = str(folder / "a.py")
    return build_request(snippet.whole_file("1\n", path), Settings(**settings), folder)  # type: ignore[arg-type]


def make_venv_python(folder: Path) -> Path:
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    return python


def test_the_place_is_resolved_once_per_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path | None] = []
    real = run_action.find_interpreter

    def counting(setting: str | None, workspace: Path | None, environ: object = None) -> object:
        calls.append(workspace)
        return real(setting, workspace, environ)  # type: ignore[arg-type]

    monkeypatch.setattr(run_action, "find_interpreter", counting)
    first, second = request_for(tmp_path), request_for(tmp_path)
    assert first == second
    assert calls == [tmp_path]
    request_for(tmp_path / "..")  # another folder: resolved for itself
    assert len(calls) == 2


def test_a_venv_created_later_is_seen_by_the_next_run(tmp_path: Path) -> None:
    before = request_for(tmp_path)
    assert before.interpreter_source != "workspace .venv"
    python = make_venv_python(tmp_path)
    after = request_for(tmp_path)
    assert (after.python, after.interpreter_source) == (str(python), "workspace .venv")


def test_a_removed_venv_is_seen_by_the_next_run(tmp_path: Path) -> None:
    python = make_venv_python(tmp_path)
    assert request_for(tmp_path).python == str(python)
    python.unlink()
    assert request_for(tmp_path).python != str(python)


def test_an_environment_change_reaches_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEEXEC_TEST_PLAIN", "one")  # CODEEXEC_* belongs to the server
    monkeypatch.setenv("H1_PLAIN_VALUE", "one")
    assert request_for(tmp_path).env["H1_PLAIN_VALUE"] == "one"
    monkeypatch.setenv("H1_PLAIN_VALUE", "two")
    monkeypatch.setenv("H1_SERVICE_TOKEN", "secret")
    env = request_for(tmp_path).env
    assert env["H1_PLAIN_VALUE"] == "two"
    assert "H1_SERVICE_TOKEN" not in env and "CODEEXEC_TEST_PLAIN" not in env


def test_settings_that_change_the_place_are_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("H1_DATABASE_TOKEN", "kept on purpose")
    assert "H1_DATABASE_TOKEN" not in request_for(tmp_path).env
    passed = request_for(tmp_path, env_passthrough=("H1_DATABASE_TOKEN",))
    assert passed.env["H1_DATABASE_TOKEN"] == "kept on purpose"
    chosen = request_for(tmp_path, python="/opt/some/python")
    assert (chosen.python, chosen.interpreter_source) == (
        "/opt/some/python",
        "setting codeexec.python",
    )


def test_each_request_gets_its_own_environment(tmp_path: Path) -> None:
    first = request_for(tmp_path)
    first.env["H1_CHANGED_BY_AN_EXECUTOR"] = "1"
    assert "H1_CHANGED_BY_AN_EXECUTOR" not in request_for(tmp_path).env


def test_to_json_keeps_the_public_shape_and_round_trips() -> None:
    frame = Frame("a.py", 3, "f", column=4, end_line=3, end_column=9)
    error = ErrorInfo("ZeroDivisionError", "division by zero", 3, 4, 3, 9, "tb", (frame,))
    output = {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}
    result = RunResult(
        status="error",
        stdout="out",
        error=error,
        outputs=(output,),
        extra={"session": {"state_lost": False, "pids": [1, 2]}},
    )
    data = result.to_json()
    assert list(data) == [field.name for field in dataclasses.fields(RunResult)]
    assert data["error"]["frames"] == [dataclasses.asdict(frame)]
    assert {k: v for k, v in data["error"].items() if k != "frames"} == {
        k: v for k, v in dataclasses.asdict(error).items() if k != "frames"
    }
    assert RunResult.from_json(data) == result
    # The caller's copy: changing it changes nothing in the result.
    data["outputs"][0]["data"]["text/plain"] = "changed"
    data["extra"]["session"]["pids"].append(3)
    assert output["data"] == {"text/plain": "x"}
    assert result.extra["session"]["pids"] == [1, 2]


def test_the_loop_reader_reads_framed_messages_and_eof_from_a_pipe() -> None:
    async def read_all() -> list[bytes]:
        read_fd, write_fd = os.pipe()
        with os.fdopen(read_fd, "rb", buffering=0) as pipe_in:
            assert readable_on_loop(pipe_in)
            loop = asyncio.get_running_loop()
            stream = asyncio.StreamReader(limit=64)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), pipe_in)
            reader = LoopStdinReader(stream)
            os.write(write_fd, b"Content-Length: 2\r\n" + b"X" * 100 + b"\r\n\r\n{}")
            os.write(write_fd, b"Content-Length: 5\r\n\r\n[1]")
            os.close(write_fd)
            return [
                await reader.readline(),
                await reader.readline(),  # longer than the limit: skipped, not fatal
                await reader.readline(),
                await reader.readexactly(2),
                await reader.readline(),
                await reader.readline(),
                await reader.readexactly(5),  # the writer closed after 3 bytes
                await reader.readline(),
            ]

    got = asyncio.run(read_all())
    assert got[0] == b"Content-Length: 2\r\n"
    assert got[1].startswith(b"X-Skipped")
    assert got[2:4] == [b"\r\n", b"{}"]
    assert got[4:6] == [b"Content-Length: 5\r\n", b"\r\n"]
    assert got[6:] == [b"", b""]


def test_a_regular_file_keeps_pygls_reader(tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"")
    with path.open("rb") as handle:
        assert not readable_on_loop(handle)
