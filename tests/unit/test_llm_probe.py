"""doctor's model check (llm/probe.py) against the fake server over real HTTP: one line each
for the server, the key and the model, and never the key's value."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from codeexec_lsp.config import LlmSettings
from codeexec_lsp.llm.probe import ModelCheck, check_model
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer, quota_exceeded, rate_limited

KEY_ENV = "CODEEXEC_TEST_PROBE_KEY"
KEY = "sk-probe-canary-7f3a9c"


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def settings(provider: str, base_url: str, model: str = "test-model") -> LlmSettings:
    return LlmSettings(provider=provider, base_url=base_url, model=model, api_key_env=KEY_ENV)


def base(provider: str, server: FakeLlmServer) -> str:
    return server.openai_base_url if provider == "openai" else server.anthropic_base_url


def assert_no_key(check: ModelCheck) -> None:
    assert all(KEY not in line for line in check.lines())


both = pytest.mark.parametrize("provider", ["openai", "anthropic"])


@both
async def test_all_good(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    fake_llm.require_key = KEY
    fake_llm.models = ["other-model", "test-model"]

    check = await check_model(settings(provider, base(provider, fake_llm)))

    assert check.ok, check.lines()
    assert check.server.startswith("reachable: http://127.0.0.1:")
    assert check.key == f"accepted ({KEY_ENV}, value hidden)"
    assert check.model == "'test-model' is available"
    assert_no_key(check)
    assert fake_llm.model_requests == [], "the check must not spend tokens"
    sent = fake_llm.requests[0].headers
    assert (sent.get("authorization") == f"Bearer {KEY}") or (sent.get("x-api-key") == KEY)


@both
async def test_key_refused(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    fake_llm.require_key = "another-key"

    check = await check_model(settings(provider, base(provider, fake_llm)))

    assert not check.ok
    assert check.server.startswith("reachable:")
    assert check.key.startswith("refused (HTTP 401: ")
    assert f"set {KEY_ENV} to a valid key" in check.key
    assert check.model == "not checked"
    assert_no_key(check)


@both
async def test_key_needed_but_not_set(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.require_key = KEY

    check = await check_model(settings(provider, base(provider, fake_llm)))

    assert check.key.startswith("needed (HTTP 401")
    assert f"{KEY_ENV} is not set" in check.key


@both
async def test_model_unknown(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.models = ["llama3.2:latest", "qwen2.5-coder:7b"]

    check = await check_model(settings(provider, base(provider, fake_llm), model="gpt-nope"))

    assert not check.ok
    assert check.key == f"none sent ({KEY_ENV} is not set) and none needed"
    assert check.model.startswith("unknown: 'gpt-nope' is not offered by http://127.0.0.1:")
    assert "codeexec.llm.model" in check.model
    if provider == "openai":
        assert "(it offers llama3.2:latest, qwen2.5-coder:7b)" in check.model


async def test_ollama_latest_tag_counts(fake_llm: FakeLlmServer) -> None:
    fake_llm.models = ["llama3.2:latest"]

    check = await check_model(settings("openai", fake_llm.openai_base_url, model="llama3.2"))

    assert check.ok and check.model == "'llama3.2' is available"


async def test_llama_cpp_answers_whatever_the_name(fake_llm: FakeLlmServer) -> None:
    fake_llm.models = ["qwen2.5-coder-7b-q4.gguf"]
    fake_llm.models_owned_by = "llamacpp"

    check = await check_model(settings("openai", fake_llm.openai_base_url, model="anything"))

    assert check.ok
    assert check.model == "llama.cpp serves qwen2.5-coder-7b-q4.gguf whatever the name ('anything')"


@both
async def test_wrong_path_has_no_model_list(provider: str, fake_llm: FakeLlmServer) -> None:
    check = await check_model(settings(provider, f"{fake_llm.url}/wrong"))

    assert not check.ok
    assert "no model list there (HTTP 404: 404 page not found)" in check.server
    assert "codeexec.llm.baseUrl" in check.server


@both
async def test_unreachable(provider: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    check = await check_model(settings(provider, f"http://127.0.0.1:{port}/v1"))

    assert not check.ok
    assert check.server.startswith(f"unreachable: http://127.0.0.1:{port}/v1/models")
    assert (check.key, check.model) == ("not checked", "not checked")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_silent_server_times_out(silent_port: int) -> None:
    check = await check_model(settings("openai", f"http://127.0.0.1:{silent_port}/v1"), timeout=0.3)

    assert check.server == f"no answer from http://127.0.0.1:{silent_port}/v1/models within 0.3 s"
    assert not check.ok


async def test_not_configured_is_not_contacted() -> None:
    # The official API and no key: nothing to contact with.
    check = await check_model(LlmSettings(provider="openai", api_key_env=KEY_ENV))

    assert check.server == "not contacted"
    assert f"Set {KEY_ENV}" in check.key
    assert not check.ok


def test_lines_are_labelled() -> None:
    check = ModelCheck("reachable: x", "accepted", "'m' is available", ok=True)
    assert check.lines() == ["server  reachable: x", "key     accepted", "model   'm' is available"]


# --- the opt-in request: what only a chat request can show ------------------------------------


@both
async def test_request_shows_a_used_up_quota(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.models = ["test-model"]
    fake_llm.script(quota_exceeded())

    check = await check_model(settings(provider, base(provider, fake_llm)), send_request=True)

    assert not check.ok
    assert check.request is not None
    assert check.request.startswith("failed: Your account's quota is used up")
    assert check.lines()[-1].startswith("request failed: Your account's quota")
    [request] = fake_llm.model_requests
    assert request.body["max_tokens"] == 8


async def test_request_reports_a_rate_limit_without_waiting(fake_llm: FakeLlmServer) -> None:
    fake_llm.models = ["test-model"]
    fake_llm.script(rate_limited(retry_after="20"), Answer("never reached"))

    check = await check_model(settings("openai", fake_llm.openai_base_url), send_request=True)

    assert check.request is not None
    assert "is rate-limiting requests" in check.request
    assert "gave up after 1 attempt." in check.request
    assert len(fake_llm.model_requests) == 1


@both
@pytest.mark.parametrize("truncated", [False, True])
async def test_request_answered(provider: str, fake_llm: FakeLlmServer, truncated: bool) -> None:
    fake_llm.models = ["test-model"]
    fake_llm.script(Answer("OK", truncated=truncated))

    check = await check_model(settings(provider, base(provider, fake_llm)), send_request=True)

    assert check.ok, check.lines()
    assert check.request == "answered (a request of at most 8 tokens)"


async def test_no_request_when_the_free_checks_failed(fake_llm: FakeLlmServer) -> None:
    check = await check_model(
        settings("openai", fake_llm.openai_base_url, model="unknown-model"), send_request=True
    )

    assert check.request is None and not check.ok
    assert fake_llm.model_requests == []
