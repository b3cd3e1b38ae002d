"""The OpenAI-compatible and Anthropic clients against the fake model server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from codeexec_lsp.llm.anthropic import AnthropicChatModel
from codeexec_lsp.llm.base import (
    ChatMessage,
    LlmAnswerTruncated,
    LlmAuthError,
    LlmBadAnswer,
    LlmBadRequest,
    LlmContextTooLong,
    LlmNotConfigured,
    LlmNotFound,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
)
from codeexec_lsp.llm.http import HttpChatModel, RetryPolicy
from codeexec_lsp.llm.openai import OpenAIChatModel
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import (
    DEFAULT_ANSWER,
    Answer,
    CutShort,
    Delay,
    FakeLlmServer,
    Malformed,
    Status,
    StreamError,
    context_too_long,
    empty,
    not_found,
    overloaded,
    rate_limited,
    server_error,
)

KEY_ENV = "CODEEXEC_TEST_LLM_KEY"
MESSAGES = [
    ChatMessage("system", "You explain Python code."),
    ChatMessage("user", "Explain: x = 1 / 0"),
]
# Real backoff would make the retry tests slow; the policy's shape is what they check.
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.02)

pytestmark = pytest.mark.parametrize("provider", ["openai", "anthropic"])


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def make_model(
    provider: str, server: FakeLlmServer, *, timeout: float = 5.0, base_url: str | None = None
) -> HttpChatModel:
    if provider == "openai":
        return OpenAIChatModel(
            model="test-model",
            base_url=base_url or server.openai_base_url,
            api_key_env=KEY_ENV,
            timeout=timeout,
            retry=FAST_RETRY,
        )
    return AnthropicChatModel(
        model="test-model",
        base_url=base_url or server.anthropic_base_url,
        api_key_env=KEY_ENV,
        timeout=timeout,
        retry=FAST_RETRY,
    )


async def collect(model: HttpChatModel) -> list[str]:
    return [text async for text in model.stream(MESSAGES)]


# --- answers ---------------------------------------------------------------------------------


async def test_plain_answer(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(Answer("x = 1 / 0 raises ZeroDivisionError."))

    answer = await make_model(provider, fake_llm).complete(MESSAGES, max_tokens=300)

    assert answer == "x = 1 / 0 raises ZeroDivisionError."
    [request] = fake_llm.model_requests
    assert request.stream
    assert request.body["model"] == "test-model"
    assert "authorization" not in request.headers
    assert "x-api-key" not in request.headers
    if provider == "openai":
        assert request.path == "/v1/chat/completions"
        assert request.body["max_tokens"] == 300
        assert request.body["messages"][0] == {"role": "system", "content": MESSAGES[0].content}
    else:
        assert request.path == "/v1/messages"
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.body["max_tokens"] == 300
        assert request.body["system"] == MESSAGES[0].content
        assert request.body["messages"] == [{"role": "user", "content": MESSAGES[1].content}]


async def test_key_is_sent_in_the_provider_header(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "test-key-123")
    fake_llm.require_key = "test-key-123"

    assert await make_model(provider, fake_llm).complete(MESSAGES) == DEFAULT_ANSWER

    headers = fake_llm.model_requests[0].headers
    if provider == "openai":
        assert headers["authorization"] == "Bearer test-key-123"
    else:
        assert headers["x-api-key"] == "test-key-123"


async def test_streamed_answer_arrives_incrementally(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    gate = threading.Event()
    fake_llm.script(Answer(chunks=["first ", "second ", "third"], gate=gate))
    stream = make_model(provider, fake_llm).stream(MESSAGES)

    # The server holds the rest of the answer until the gate opens, so this delta can only
    # have come from parsing the stream as it arrives.
    assert await asyncio.wait_for(anext(stream), 5) == "first "
    gate.set()
    rest = [text async for text in stream]

    assert rest == ["second ", "third"]


async def test_stream_split_at_arbitrary_bytes(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(Answer("Déjà vu: ünïcode 🐍 split across reads.", fragment=3))

    assert "".join(await collect(make_model(provider, fake_llm))) == (
        "Déjà vu: ünïcode 🐍 split across reads."
    )


async def test_json_answer_from_a_server_that_ignores_stream(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(Answer("whole answer", format="json"))

    assert await make_model(provider, fake_llm).complete(MESSAGES) == "whole answer"


async def test_empty_answer_is_an_error(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(empty())

    with pytest.raises(LlmBadAnswer, match="empty answer"):
        await make_model(provider, fake_llm).complete(MESSAGES)


async def test_truncated_answer_is_an_error_that_keeps_the_text(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(Answer("def f(x):\n    return", truncated=True))

    with pytest.raises(LlmAnswerTruncated, match="limit of 2048 tokens") as caught:
        await make_model(provider, fake_llm).complete(MESSAGES)

    assert caught.value.partial == "def f(x):\n    return"


# --- timeouts and retries --------------------------------------------------------------------


async def test_delay_past_timeout_raises_timeout(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(Delay(30))
    model = make_model(provider, fake_llm, timeout=0.5)

    with pytest.raises(LlmTimeout, match=r"within 0\.5 s.*codeexec\.llm\.timeout"):
        await model.complete(MESSAGES)

    assert len(fake_llm.model_requests) == 1, "a timeout must not be retried"
    assert await asyncio.to_thread(fake_llm.wait_for_disconnect)


async def test_429_then_success(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(rate_limited(retry_after="0"), Answer("after the rate limit"))

    assert await make_model(provider, fake_llm).complete(MESSAGES) == "after the rate limit"
    assert len(fake_llm.model_requests) == 2


async def test_retry_after_is_honoured(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(rate_limited(retry_after="1"), Answer("waited"))

    started = time.monotonic()
    assert await make_model(provider, fake_llm).complete(MESSAGES) == "waited"

    assert time.monotonic() - started >= 0.9


async def test_long_retry_after_is_reported_not_waited_for(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(rate_limited(retry_after="120"))

    with pytest.raises(LlmRateLimited, match="retry after 120 s"):
        await make_model(provider, fake_llm).complete(MESSAGES)

    assert len(fake_llm.model_requests) == 1


async def test_429_every_time_gives_up_after_three_retries(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(*[rate_limited(retry_after=None)] * 5)

    with pytest.raises(LlmRateLimited, match=r"HTTP 429.*gave up after 4 attempts"):
        await make_model(provider, fake_llm).complete(MESSAGES)

    assert len(fake_llm.model_requests) == 4


async def test_500_four_times_is_unavailable_after_three_retries(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(*[server_error()] * 4, Answer("never reached"))
    model = make_model(provider, fake_llm)

    with pytest.raises(LlmUnavailable, match="HTTP 500") as caught:
        await model.complete(MESSAGES)

    assert model.endpoint in str(caught.value)
    assert len(fake_llm.model_requests) == 4
    assert fake_llm.pending == 1


async def test_overloaded_then_success(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(overloaded(), server_error(503), Answer("recovered"))

    assert await make_model(provider, fake_llm).complete(MESSAGES) == "recovered"


async def test_connection_refused_is_unavailable_naming_the_url(provider: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    base = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    model = make_model(provider, FakeLlmServer(), base_url=base)

    with pytest.raises(LlmUnavailable) as caught:
        await model.complete(MESSAGES)

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "gave up after 4 attempts" in message
    assert "codeexec.llm.baseUrl" in message


# --- errors that are not retried -------------------------------------------------------------


async def test_401_names_the_variable_to_set(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_llm.require_key = "the-right-key"
    model = make_model(provider, fake_llm)

    with pytest.raises(LlmAuthError, match=f"none was sent.*Set {KEY_ENV}"):
        await model.complete(MESSAGES)

    monkeypatch.setenv(KEY_ENV, "a-wrong-key")
    with pytest.raises(LlmAuthError, match=f"rejected the API key from {KEY_ENV}.*Set {KEY_ENV}"):
        await model.complete(MESSAGES)

    assert len(fake_llm.model_requests) == 2, "a 401 must not be retried"


async def test_404_names_model_and_url(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(not_found())
    model = make_model(provider, fake_llm)

    with pytest.raises(LlmNotFound) as caught:
        await model.complete(MESSAGES)

    assert "'test-model'" in str(caught.value)
    assert model.endpoint in str(caught.value)
    assert len(fake_llm.model_requests) == 1


async def test_wrong_base_url_path_is_not_found(provider: str, fake_llm: FakeLlmServer) -> None:
    model = make_model(provider, fake_llm, base_url=f"{fake_llm.url}/wrong")

    with pytest.raises(LlmNotFound, match="404 page not found"):
        await model.complete(MESSAGES)


async def test_context_too_long(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(context_too_long())

    with pytest.raises(LlmContextTooLong, match="Select fewer lines"):
        await make_model(provider, fake_llm).complete(MESSAGES)

    assert len(fake_llm.model_requests) == 1


async def test_other_400_is_a_bad_request(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(Status(400, message="temperature: must be at most 2"))

    with pytest.raises(LlmBadRequest, match="temperature: must be at most 2"):
        await make_model(provider, fake_llm).complete(MESSAGES)


async def test_official_api_without_key_is_not_configured(provider: str) -> None:
    model: HttpChatModel
    if provider == "openai":
        model = OpenAIChatModel(model="m", api_key_env=KEY_ENV)
    else:
        model = AnthropicChatModel(model="m", api_key_env=KEY_ENV)

    with pytest.raises(LlmNotConfigured, match=f"Set {KEY_ENV}"):
        await model.complete(MESSAGES)


# --- broken answers --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "json_body"])
async def test_malformed_json(provider: str, fake_llm: FakeLlmServer, kind: str) -> None:
    fake_llm.script(Malformed(kind))  # type: ignore[arg-type]

    with pytest.raises(LlmBadAnswer, match="malformed answer"):
        await make_model(provider, fake_llm).complete(MESSAGES)


@pytest.mark.parametrize("kind", ["sse", "html"])
async def test_not_an_event_stream(provider: str, fake_llm: FakeLlmServer, kind: str) -> None:
    fake_llm.script(Malformed(kind))  # type: ignore[arg-type]

    with pytest.raises(LlmBadAnswer, match=r"(not|instead of) an event stream"):
        await make_model(provider, fake_llm).complete(MESSAGES)


@pytest.mark.parametrize("clean", [False, True])
async def test_stream_cut_short_is_never_a_partial_answer(
    provider: str, fake_llm: FakeLlmServer, clean: bool
) -> None:
    fake_llm.script(CutShort("def fixed():\n    return", clean=clean))

    with pytest.raises(LlmBadAnswer, match="cut short"):
        await make_model(provider, fake_llm).complete(MESSAGES)


async def test_stream_cut_short_after_deltas_still_raises(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(CutShort("one two three"))
    received: list[str] = []

    with pytest.raises(LlmBadAnswer, match="cut short"):
        async for text in make_model(provider, fake_llm).stream(MESSAGES):
            received.append(text)

    assert "".join(received) == "one two three"


async def test_error_event_inside_a_stream(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(StreamError("partial ", message="Overloaded", error_type="overloaded_error"))

    with pytest.raises(LlmUnavailable, match="Overloaded"):
        await make_model(provider, fake_llm).complete(MESSAGES)


# --- cancellation ----------------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_connection(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(Answer(chunks=["tick "] * 400, chunk_delay=0.05))
    model = make_model(provider, fake_llm)
    first = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for text in model.stream(MESSAGES):
            received.append(text)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(fake_llm.wait_for_disconnect)
    assert fake_llm.model_requests[0].disconnected
    assert len(received) < 400


async def test_closing_the_stream_early_closes_the_connection(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.script(Answer(chunks=["tick "] * 400, chunk_delay=0.05))

    async with contextlib.aclosing(make_model(provider, fake_llm).stream(MESSAGES)) as stream:
        async for _ in stream:
            break

    assert await asyncio.to_thread(fake_llm.wait_for_disconnect)
