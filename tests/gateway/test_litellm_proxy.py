"""Explain, Fix and doctor's model check through a real LiteLLM proxy, with both providers.

The proxy (see conftest.py) runs from its own virtualenv; our side is the real CLI in a
subprocess and the real clients in-process. What the user would read is asserted, including
that no gateway noise (fallback reports, tracebacks, exception prefixes) reaches them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from codeexec_lsp.config import LlmSettings
from codeexec_lsp.llm.anthropic import AnthropicChatModel
from codeexec_lsp.llm.base import (
    ChatMessage,
    LlmAuthError,
    LlmNotFound,
    LlmQuotaExceeded,
    LlmRateLimited,
    LlmUnavailable,
)
from codeexec_lsp.llm.http import HttpChatModel, RetryPolicy
from codeexec_lsp.llm.openai import OpenAIChatModel
from codeexec_lsp.llm.probe import check_model
from tests.fakes.llm_server import (
    Answer,
    FakeLlmServer,
    StreamError,
    quota_exceeded,
    rate_limited,
)
from tests.gateway.conftest import Gateway

# The first test pays for installing the proxy (minutes on a cold cache) and starting it.
pytestmark = pytest.mark.timeout(900)

KEY_ENV = "CODEEXEC_GATEWAY_KEY"
MESSAGES = [ChatMessage("system", "You explain code."), ChatMessage("user", "Explain: 1 / 0")]
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.02)
NOISE = ("litellm.", "LiteLLM", "Traceback", "No fallback", "{'error'", '{"type"')
BUGGY = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([]))\n"
FIXED = BUGGY.replace("):\n", "):\n    if not values:\n        return 0.0\n", 1)
UPSTREAM_MODEL = {"openai": "up-gpt", "anthropic": "up-claude"}

both = pytest.mark.parametrize("provider", ["openai", "anthropic"])


@pytest.fixture(autouse=True)
def _gateway_key(monkeypatch: pytest.MonkeyPatch, gateway: Gateway) -> None:
    monkeypatch.setenv(KEY_ENV, gateway.master_key)


def client(provider: str, gateway: Gateway, model: str) -> HttpChatModel:
    if provider == "openai":
        return OpenAIChatModel(
            model=model,
            base_url=gateway.openai_base_url,
            api_key_env=KEY_ENV,
            timeout=30,
            retry=FAST_RETRY,
        )
    return AnthropicChatModel(
        model=model,
        base_url=gateway.anthropic_base_url,
        api_key_env=KEY_ENV,
        timeout=30,
        retry=FAST_RETRY,
    )


def cli(
    gateway: Gateway, provider: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    settings = {
        "llm": {
            "provider": provider,
            "baseUrl": gateway.base_url(provider),
            "model": UPSTREAM_MODEL[provider],
            "apiKeyEnv": KEY_ENV,
        }
    }
    return subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", *args, "--settings", json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CODEEXEC_CACHE_DIR": str(tmp_path / "cache")},
    )


def assert_clean(message: str) -> None:
    for noise in NOISE:
        assert noise not in message, f"{noise!r} shown to the user: {message}"


# --- the happy paths, through the CLI ------------------------------------------------------


@both
def test_explain_through_the_gateway(
    provider: str, gateway: Gateway, upstream: FakeLlmServer, tmp_path: Path
) -> None:
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    upstream.script(Answer("It divides by zero when the list is empty."))

    proc = cli(gateway, provider, tmp_path, "explain", str(script), "--lines", "1-5")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "It divides by zero when the list is empty."
    request = upstream.model_requests[-1]
    assert request.stream, "the gateway was asked for a stream and passed that on"
    assert "sum(values) / len(values)" in json.dumps(request.body)


@both
def test_fix_applied_and_verified_through_the_gateway(
    provider: str, gateway: Gateway, upstream: FakeLlmServer, tmp_path: Path
) -> None:
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    upstream.script(Answer(f"The list can be empty:\n```python\n{FIXED}```"))

    proc = cli(gateway, provider, tmp_path, "fix", str(script), "--lines", "1-5", "--apply")

    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stderr
    assert script.read_text() == FIXED
    assert upstream.pending == 0


@both
async def test_answer_streams_through_the_gateway(
    provider: str, gateway: Gateway, upstream: FakeLlmServer
) -> None:
    gate = threading.Event()
    upstream.script(Answer(chunks=["first ", "second ", "third"], gate=gate))
    stream = client(provider, gateway, UPSTREAM_MODEL[provider]).stream(MESSAGES)
    try:
        # The upstream holds the rest until the gate opens: this delta crossed the gateway
        # as a streamed event, not as part of a buffered answer.
        assert await anext(stream) == "first "
    finally:
        gate.set()
    assert [text async for text in stream] == ["second ", "third"]


async def test_mock_model_answers_without_an_upstream(gateway: Gateway) -> None:
    answer = await client("openai", gateway, "mock-gpt").complete(MESSAGES)

    assert answer == "A mock answer from the gateway."


# --- rate limits and quotas --------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "mock-ratelimit"), ("anthropic", "mock-claude-ratelimit")]
)
async def test_mocked_rate_limit_says_rate_limited(
    provider: str, model: str, gateway: Gateway
) -> None:
    with pytest.raises(LlmRateLimited) as caught:
        await client(provider, gateway, model).complete(MESSAGES)

    message = str(caught.value)
    assert "is rate-limiting requests (HTTP 429: this is a mock rate limit error)" in message
    assert "gave up after 4 attempts" in message
    assert_clean(message)


@both
async def test_upstream_retry_after_is_honoured_through_the_gateway(
    provider: str,
    gateway: Gateway,
    upstream: FakeLlmServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "codeexec_lsp.llm")
    upstream.script(rate_limited(retry_after="0.07"), Answer("after the wait"))

    answer = await client(provider, gateway, UPSTREAM_MODEL[provider]).complete(MESSAGES)

    assert answer == "after the wait"
    waits = re.findall(r"retrying in (\d+\.\d\d) s", caplog.text)
    if provider == "openai":
        # The proxy renames the upstream's Retry-After (llm_provider-retry-after); the wait
        # the client logged is the one the upstream asked for.
        assert waits == ["0.07"]
    else:
        # LiteLLM 1.108's /v1/messages drops the header: the client's own backoff applies.
        assert len(waits) == 1 and float(waits[0]) <= FAST_RETRY.max_delay


@both
async def test_upstream_quota_is_not_retried(
    provider: str, gateway: Gateway, upstream: FakeLlmServer
) -> None:
    before = len(upstream.model_requests)
    upstream.script(quota_exceeded(), Answer("never reached"))

    with pytest.raises(LlmQuotaExceeded) as caught:
        await client(provider, gateway, UPSTREAM_MODEL[provider]).complete(MESSAGES)

    message = str(caught.value)
    assert message.startswith("Your account's quota is used up")
    assert_clean(message)
    assert len(upstream.model_requests) == before + 1


@both
async def test_mid_stream_rate_limit_is_retried(
    provider: str, gateway: Gateway, upstream: FakeLlmServer
) -> None:
    before = len(upstream.model_requests)
    upstream.script(
        StreamError(message="Rate limit reached", error_type="rate_limit_error"),
        Answer("after the mid-stream error"),
    )

    answer = await client(provider, gateway, UPSTREAM_MODEL[provider]).complete(MESSAGES)

    assert answer == "after the mid-stream error"
    assert len(upstream.model_requests) == before + 2


@both
async def test_mid_stream_error_after_text_is_reported_cleanly(
    provider: str, gateway: Gateway, upstream: FakeLlmServer
) -> None:
    upstream.script(StreamError("The code ", message="Overloaded", error_type="overloaded_error"))

    with pytest.raises(LlmUnavailable) as caught:
        await client(provider, gateway, UPSTREAM_MODEL[provider]).complete(MESSAGES)

    message = str(caught.value)
    assert "after part of the answer had arrived" in message
    assert_clean(message)


# --- keys and models ---------------------------------------------------------------------


@both
async def test_wrong_key_names_the_variable(
    provider: str, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-not-the-gateway-key")

    with pytest.raises(LlmAuthError) as caught:
        await client(provider, gateway, UPSTREAM_MODEL[provider]).complete(MESSAGES)

    message = str(caught.value)
    assert f"rejected the API key from {KEY_ENV}" in message
    assert "sk-not-the-gateway-key" not in message
    assert "codeexec.llm.model" not in message


@both
async def test_missing_key_names_the_variable(
    provider: str, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)

    with pytest.raises(LlmAuthError, match=f"none was sent because {KEY_ENV} is not set"):
        await client(provider, gateway, UPSTREAM_MODEL[provider]).complete(MESSAGES)


@both
async def test_upstream_key_refused_points_at_the_gateway(provider: str, gateway: Gateway) -> None:
    with pytest.raises(LlmAuthError) as caught:
        await client(provider, gateway, f"{UPSTREAM_MODEL[provider]}-badkey").complete(MESSAGES)

    message = str(caught.value)
    assert KEY_ENV in message
    assert "gateway's own key for its upstream provider" in message
    assert_clean(message)


@both
async def test_unknown_model_names_model_and_url(provider: str, gateway: Gateway) -> None:
    model = client(provider, gateway, "no-such-model")

    with pytest.raises(LlmNotFound) as caught:
        await model.complete(MESSAGES)

    message = str(caught.value)
    assert f"Model 'no-such-model' was not found at {model.endpoint}" in message
    assert "Invalid model name passed in model=no-such-model" in message
    assert_clean(message)


# --- doctor's model check ----------------------------------------------------------------


def settings(provider: str, gateway: Gateway, model: str) -> LlmSettings:
    return LlmSettings(
        provider=provider, base_url=gateway.base_url(provider), model=model, api_key_env=KEY_ENV
    )


@both
async def test_model_check_through_the_gateway(
    provider: str, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = await check_model(settings(provider, gateway, UPSTREAM_MODEL[provider]))
    assert good.ok, good.lines()
    assert good.model == f"'{UPSTREAM_MODEL[provider]}' is available"

    unknown = await check_model(settings(provider, gateway, "no-such-model"))
    assert not unknown.ok
    assert unknown.model.startswith("unknown: 'no-such-model' is not offered")

    monkeypatch.setenv(KEY_ENV, "sk-not-the-gateway-key")
    refused = await check_model(settings(provider, gateway, UPSTREAM_MODEL[provider]))
    assert refused.key.startswith("refused (HTTP 400: No connected db)")
    assert all("sk-not-the-gateway-key" not in line for line in refused.lines())


@both
async def test_model_check_request_sees_the_upstream_quota(
    provider: str, gateway: Gateway, upstream: FakeLlmServer
) -> None:
    upstream.script(quota_exceeded())

    check = await check_model(
        settings(provider, gateway, UPSTREAM_MODEL[provider]), send_request=True
    )

    assert not check.ok
    assert check.request is not None
    assert check.request.startswith("failed: Your account's quota is used up")
    assert_clean(check.request)
