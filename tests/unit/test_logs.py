"""--verbose traces HTTP requests; the API key must never reach a log line."""

from __future__ import annotations

import logging

import pytest

from codeexec_lsp.llm.base import ChatMessage
from codeexec_lsp.llm.factory import make_chat_model
from codeexec_lsp.logs import configure_logging, watch_secret_names
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
