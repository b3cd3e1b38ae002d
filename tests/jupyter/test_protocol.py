"""The message collector and builders, on messages shaped as the servers send them (pure
logic: no kernel needed, so these run in milliseconds)."""

from __future__ import annotations

from typing import Any

from codeexec_lsp.execution.jupyter.helper import helper_missing, request_metadata, run_cell
from codeexec_lsp.execution.jupyter.protocol import (
    REPORT_MIME,
    RunCollector,
    new_message,
    unparented_status,
)


def message(kind: str, content: dict[str, Any], parent: str | None = "ours") -> dict[str, Any]:
    return {
        "header": {"msg_type": kind, "msg_id": "x"},
        "parent_header": {"msg_id": parent} if parent else {},
        "content": content,
        "metadata": {},
    }


def test_only_our_messages_count_and_done_needs_reply_and_idle() -> None:
    collector = RunCollector("ours", 1000)
    assert not collector.feed(message("stream", {"name": "stdout", "text": "no"}, "theirs"))
    assert collector.feed(message("stream", {"name": "stdout", "text": "yes\n"}))
    assert collector.feed(message("stream", {"name": "stderr", "text": "err\n"}))
    collector.feed(message("execute_reply", {"status": "ok"}))
    assert not collector.done  # the reply can come before the last output
    collector.feed(message("status", {"execution_state": "idle"}))
    assert collector.done
    assert (collector.stdout.text(), collector.stderr.text()) == ("yes\n", "err\n")


def test_outputs_in_nbformat_shape_and_the_report_kept_apart() -> None:
    collector = RunCollector("ours", 100_000)
    collector.feed(message("display_data", {"data": {REPORT_MIME: {"value": "1"}}}))
    png = {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure ", "size>"]}
    collector.feed(message("display_data", {"data": png, "metadata": {"w": 1}}))
    collector.feed(message("execute_result", {"data": {"text/plain": "42"}}))
    collector.feed(message("execute_result", {"data": {"text/html": "<b>", "text/plain": "b"}}))
    assert collector.report == {"value": "1"}
    assert collector.outputs == [
        {
            "output_type": "display_data",
            "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size>"},
            "metadata": {"w": 1},
        },
        {
            "output_type": "execute_result",
            "data": {"text/html": "<b>", "text/plain": "b"},
            "metadata": {},
        },
    ]
    assert collector.plain_value == "42"  # text only: the value, not a rich output


def test_rich_outputs_past_the_limit_are_dropped_and_said_once() -> None:
    collector = RunCollector("ours", 100)
    for _ in range(3):
        collector.feed(message("display_data", {"data": {"text/html": "x" * 60}}))
    assert len(collector.outputs) == 1
    assert collector.stderr.text().count("dropped") == 1
    assert collector.rich_bytes == 180  # counted, though dropped: the run may be stopped on it


def test_a_kernel_error_without_our_report() -> None:
    collector = RunCollector("ours", 100)
    content = {"ename": "NameError", "evalue": "x", "traceback": ["\x1b[31mNameError\x1b[0m: x"]}
    collector.feed(message("error", content))
    assert collector.error_from_kernel() == {
        "type": "NameError",
        "message": "x",
        "line": None,
        "column": None,
        "traceback": "NameError: x",
        "frames": [],
    }
    assert helper_missing(
        {"ename": "ModuleNotFoundError", "evalue": "No module named '_codeexec_kernel'"}
    )
    assert not helper_missing(content)


def test_a_death_is_an_unparented_restarting_or_dead() -> None:
    assert unparented_status(message("status", {"execution_state": "restarting"}, None)) == (
        "restarting"
    )
    assert unparented_status(message("status", {"execution_state": "dead"}, None)) == "dead"
    assert unparented_status(message("status", {"execution_state": "restarting"})) is None
    assert unparented_status(message("status", {"execution_state": "starting"}, None)) is None


def test_requests_carry_the_snippet_as_data() -> None:
    built = new_message("execute_request", {"code": "x"}, "session", metadata={"k": 1})
    assert built["header"]["session"] == "session"
    assert built["channel"] == "shell" and built["metadata"] == {"k": 1}
    assert run_cell("1 + 1\n") == "__import__('_codeexec_kernel').run()"
    assert run_cell("await f()\n").startswith("await ")
    assert request_metadata("c", "/p.py", "doc", 3, 4) == {
        "codeexec": {"code": "c", "path": "/p.py", "document": "doc", "first_line": 3, "column": 4}
    }
