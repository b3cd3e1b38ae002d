"""make_chat_model: settings and environment to a model, or a message saying what to set."""

from __future__ import annotations

import pytest

from codeexec_lsp.llm.anthropic import AnthropicChatModel
from codeexec_lsp.llm.base import ChatMessage, LlmNotConfigured
from codeexec_lsp.llm.factory import DEFAULT_MODELS, make_chat_model
from codeexec_lsp.llm.openai import OpenAIChatModel
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer

ENV_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
MESSAGES = [ChatMessage("user", "hi")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENV_VARS, "MY_LLM_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_openai_without_key_or_base_url_says_exactly_what_to_set() -> None:
    with pytest.raises(LlmNotConfigured) as caught:
        make_chat_model("openai", None, None, None, 30)

    assert (
        "Set OPENAI_API_KEY (or the variable named by codeexec.llm.apiKeyEnv), or point "
        "codeexec.llm.baseUrl at a local server such as Ollama (http://localhost:11434/v1)"
    ) in str(caught.value)


def test_anthropic_without_key_names_its_variable() -> None:
    with pytest.raises(LlmNotConfigured, match=r"Set ANTHROPIC_API_KEY \(or the variable"):
        make_chat_model("anthropic", None, None, None, 30)


def test_custom_key_variable_is_named_in_the_message() -> None:
    with pytest.raises(LlmNotConfigured, match=r"Set MY_LLM_KEY \(the variable named by"):
        make_chat_model("openai", "", "", "MY_LLM_KEY", 30)


def test_key_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", "k-123456")

    model = make_chat_model("openai", None, None, "MY_LLM_KEY", 30)

    assert isinstance(model, OpenAIChatModel)
    assert model.name == f"openai:{DEFAULT_MODELS['openai']}"
    assert "k-123456" not in repr(model)


def test_local_base_url_needs_no_key() -> None:
    model = make_chat_model("openai", "http://localhost:11434/v1/", "llama3.2", None, 30)

    assert isinstance(model, OpenAIChatModel)
    assert model.endpoint == "http://localhost:11434/v1/chat/completions"
    assert model.name == "openai:llama3.2@http://localhost:11434/v1"


def test_any_explicit_base_url_needs_no_key() -> None:
    model = make_chat_model("openai", "http://gpu-box.lan:8000/v1", "qwen", None, 30)

    assert isinstance(model, OpenAIChatModel)


def test_openai_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")

    model = make_chat_model("OpenAI", None, None, None, 30)

    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == "http://127.0.0.1:1234/v1"


def test_anthropic_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")

    model = make_chat_model("anthropic", None, None, None, 12.5)

    assert isinstance(model, AnthropicChatModel)
    assert model.endpoint == "https://api.anthropic.com/v1/messages"
    assert model.model == DEFAULT_MODELS["anthropic"]
    assert model.timeout == 12.5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("gemini", None, None, None, 30), 'set it to "openai"'),
        (("openai", "http://localhost:1/v1", None, None, 0), "positive number of seconds"),
        (("openai", "http://localhost:1/v1", None, None, float("nan")), "positive number"),
        (("openai", "localhost:11434", None, None, 30), "is not an http(s) URL"),
        (("openai", "http://[::1", None, None, 30), "is not an http(s) URL"),
    ],
)
def test_bad_settings_say_what_to_fix(args: tuple[object, ...], expected: str) -> None:
    with pytest.raises(LlmNotConfigured) as caught:
        make_chat_model(*args)  # type: ignore[arg-type]

    assert expected in str(caught.value)


def test_a_key_pasted_as_the_variable_name_is_not_echoed() -> None:
    with pytest.raises(LlmNotConfigured, match="name of an environment variable") as caught:
        make_chat_model("openai", None, None, "sk-proj-abc123secret", 30)

    assert "abc123secret" not in str(caught.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_key_is_read_when_each_request_is_made(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = fake_llm.openai_base_url if provider == "openai" else fake_llm.url
    model = make_chat_model(provider, base, "m", "MY_LLM_KEY", 5)
    fake_llm.script(Answer("one"), Answer("two"))

    assert await model.complete(MESSAGES) == "one"
    monkeypatch.setenv("MY_LLM_KEY", "rotated-key")
    assert await model.complete(MESSAGES) == "two"

    first, second = fake_llm.model_requests
    key_header = "authorization" if provider == "openai" else "x-api-key"
    assert key_header not in first.headers
    assert second.headers[key_header].endswith("rotated-key")
