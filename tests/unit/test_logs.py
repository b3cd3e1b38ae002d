"""--verbose traces HTTP requests; the API key must never reach a log line."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from codeexec_lsp.llm.base import ChatMessage
from codeexec_lsp.llm.factory import make_chat_model
from codeexec_lsp.logs import configure_logging, watch_secret_names
from codeexec_lsp.redact import REDACTED, redact_text
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer

CANARY = "canary-5e1f-9b7c-verbose"


async def test_verbose_http_trace_never_shows_the_key(
    fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEAM_LLM_CREDENTIAL", CANARY)
    previous = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        configure_logging(verbose=True)
        watch_secret_names(["TEAM_LLM_CREDENTIAL"])  # as the server does for llm.apiKeyEnv
        fake_llm.script(Answer("fine"))
        model = make_chat_model("openai", fake_llm.openai_base_url, "m", "TEAM_LLM_CREDENTIAL", 5)
        assert await model.complete([ChatMessage("user", "hi")]) == "fine"
        logging.getLogger("codeexec_lsp").debug("settings say key=%s", CANARY)
    finally:
        logging.getLogger().handlers[:], level = previous
        logging.getLogger().setLevel(level)
    err = capfd.readouterr().err
    assert fake_llm.model_requests[0].headers["authorization"] == f"Bearer {CANARY}"
    assert "HTTP Request" in err or "httpcore" in err  # the trace is really on
    assert CANARY not in err


# --- what redaction hides, and what it leaves alone --------------------------------------------


def test_a_secret_containing_another_is_hidden_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # Longest first, not in alphabetical order: "zz..." sorts before "aa..." backwards.
    monkeypatch.setenv("SHORT_KEY_VAR", "zz99secret")
    monkeypatch.setenv("LONG_KEY_VAR", "aazz99secretbb")
    redacted = redact_text("sent aazz99secretbb and zz99secret", ["SHORT_KEY_VAR", "LONG_KEY_VAR"])
    assert redacted == "sent [REDACTED] and [REDACTED]"


def test_secrets_of_the_minimum_length_are_hidden_shorter_ones_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOUR_VAR", "q7z4")
    monkeypatch.setenv("THREE_VAR", "k9w")
    assert redact_text("q7z4 k9w", ["FOUR_VAR", "THREE_VAR"]) == "[REDACTED] k9w"


def test_unset_or_empty_variables_hide_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_VAR", raising=False)
    monkeypatch.setenv("EMPTY_VAR", "")
    text = "XXXX plain words, nothing secret"
    assert redact_text(text, ["NOT_SET_VAR", "EMPTY_VAR"]) == text


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("root_logging")
def test_a_record_whose_arguments_do_not_fit_is_still_logged_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging()
    logging.getLogger("codeexec_lsp").warning("two %s %s but one", CANARY)
    written = stderr.getvalue()
    assert "two %s %s but one" in written and CANARY not in written and REDACTED in written


@pytest.mark.usefixtures("root_logging")
def test_stack_info_is_kept_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging()

    def where_the_key_is(key: str) -> None:
        logging.getLogger("codeexec_lsp").warning("look", stack_info=True)

    where_the_key_is(CANARY)
    written = stderr.getvalue()
    assert "Stack (most recent call last)" in written and "where_the_key_is" in written


@pytest.mark.usefixtures("root_logging")
def test_by_default_warnings_go_to_stderr_formatted_and_chatter_stays_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    # A library (or an earlier --verbose) may have turned the HTTP loggers up.
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    configure_logging()
    logging.getLogger("codeexec_lsp.server").info("routine detail")
    logging.getLogger("httpx").info("HTTP Request: POST")
    logging.getLogger("httpcore.http11").debug("send_request_headers")
    logging.getLogger("codeexec_lsp.server").warning("worth seeing")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d [\d:,]+ WARNING codeexec_lsp\.server: worth seeing", lines[0]
    )


@pytest.mark.usefixtures("root_logging")
def test_verbose_shows_debug_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging(verbose=True)
    logging.getLogger("codeexec_lsp.server").debug("fine detail")
    assert "DEBUG codeexec_lsp.server: fine detail" in stderr.getvalue()
