"""What users read when a model server or a gateway in front of one fails.

Each case is a body modelled on what a real server sends (see tests/fakes/llm_server.py),
served over real HTTP by the fake, and read by the real clients; the assertions are on the
message the user sees and on how many requests were made (what was retried and what not).
Waits are checked through the client's own log line, not the clock.
"""

from __future__ import annotations

import logging
import re

import pytest

from codeexec_lsp.llm.anthropic import AnthropicChatModel
from codeexec_lsp.llm.base import (
    ChatMessage,
    LlmAuthError,
    LlmBadAnswer,
    LlmNotFound,
    LlmQuotaExceeded,
    LlmRateLimited,
    LlmUnavailable,
)
from codeexec_lsp.llm.errors import (
    ErrorKind,
    classify,
    clean_message,
    read_error,
    retry_after_in_message,
)
from codeexec_lsp.llm.http import HttpChatModel, RetryPolicy, parse_retry_after
from codeexec_lsp.llm.openai import OpenAIChatModel
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import (
    LITELLM_FALLBACK_REPORT,
    SERVER_TRACEBACK,
    Answer,
    FakeLlmServer,
    Status,
    StreamError,
    gateway_answer,
    gateway_error_body,
    gateway_no_db_auth,
    gateway_quota_exceeded,
    gateway_rate_limited,
    gateway_unknown_model,
    gateway_upstream_auth,
    openai_shaped_auth_error,
    overloaded_wrapped_in_500,
    plain_text_server_error,
    quota_exceeded,
    route_not_found,
)

KEY_ENV = "CODEEXEC_TEST_LLM_KEY"
MESSAGES = [ChatMessage("system", "You explain code."), ChatMessage("user", "Explain: 1 / 0")]
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.02)
GATEWAY_NOISE = ("litellm.", "LiteLLM: model group", "Traceback", "proxy_server.py", "{'error'")


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def make_model(provider: str, server: FakeLlmServer, model: str = "test-model") -> HttpChatModel:
    if provider == "openai":
        return OpenAIChatModel(
            model=model,
            base_url=server.openai_base_url,
            api_key_env=KEY_ENV,
            timeout=5,
            retry=FAST_RETRY,
        )
    return AnthropicChatModel(
        model=model,
        base_url=server.anthropic_base_url,
        api_key_env=KEY_ENV,
        timeout=5,
        retry=FAST_RETRY,
    )


def assert_clean(message: str) -> None:
    for noise in GATEWAY_NOISE:
        assert noise not in message, f"{noise!r} shown to the user: {message}"


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return re.findall(r"retrying in (\d+\.\d\d) s", caplog.text)


both = pytest.mark.parametrize("provider", ["openai", "anthropic"])


# --- answers in the shapes real servers stream -----------------------------------------------


@both
@pytest.mark.parametrize("usage_chunk", ["openai", "litellm", None])
@pytest.mark.parametrize("done_marker", [True, False])
async def test_gateway_shaped_stream_is_read_whole(
    provider: str, fake_llm: FakeLlmServer, usage_chunk: str | None, done_marker: bool
) -> None:
    fake_llm.script(
        gateway_answer("x = 1 / 0 raises.", usage_chunk=usage_chunk, done_marker=done_marker)
    )

    assert await make_model(provider, fake_llm).complete(MESSAGES) == "x = 1 / 0 raises."


async def test_truncation_is_seen_in_a_sparse_stream(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(gateway_answer("def f(x):", truncated=True))

    with pytest.raises(LlmBadAnswer, match="limit of 2048 tokens"):
        await make_model("openai", fake_llm).complete(MESSAGES)


# --- quota: said so, never retried -----------------------------------------------------------


@pytest.mark.parametrize("reply", [quota_exceeded(), gateway_quota_exceeded()])
async def test_quota_is_reported_without_retrying(fake_llm: FakeLlmServer, reply: Status) -> None:
    fake_llm.script(reply, Answer("never reached"))

    with pytest.raises(LlmQuotaExceeded) as caught:
        await make_model("openai", fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert message.startswith("Your account's quota is used up")
    assert "exceeded your current quota" in message
    assert KEY_ENV in message
    assert_clean(message)
    assert len(fake_llm.model_requests) == 1


async def test_anthropic_credit_balance_is_a_quota(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(
        Status(
            400,
            message="Your credit balance is too low to access the Anthropic API. Please go to "
            "Plans & Billing to upgrade or purchase credits.",
        )
    )

    with pytest.raises(LlmQuotaExceeded, match=r"quota is used up.*credit balance is too low"):
        await make_model("anthropic", fake_llm).complete(MESSAGES)


# --- rate limits: retried as the server asks, under whatever header name ---------------------


@both
@pytest.mark.parametrize(
    ("header", "value", "logged"),
    [
        ("retry-after", "0.03", "0.03"),
        ("retry-after-ms", "40", "0.04"),
        ("llm_provider-retry-after", "0.05", "0.05"),
        ("llm_provider-retry-after-ms", "60", "0.06"),
    ],
)
async def test_renamed_retry_after_headers_are_honoured(
    provider: str,
    fake_llm: FakeLlmServer,
    caplog: pytest.LogCaptureFixture,
    header: str,
    value: str,
    logged: str,
) -> None:
    caplog.set_level(logging.INFO, "codeexec_lsp.llm")
    fake_llm.script(gateway_rate_limited(value, header=header), Answer("after waiting"))

    assert await make_model(provider, fake_llm).complete(MESSAGES) == "after waiting"

    assert retry_waits(caplog) == [logged]


async def test_long_renamed_retry_after_is_reported(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(gateway_rate_limited("120", header="llm_provider-retry-after"))

    with pytest.raises(LlmRateLimited, match="asked to retry after 120 s") as caught:
        await make_model("openai", fake_llm).complete(MESSAGES)

    assert_clean(str(caught.value))
    assert len(fake_llm.model_requests) == 1


async def test_gateway_rate_limit_message_is_cleaned(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(*[gateway_rate_limited(None)] * 4)

    with pytest.raises(LlmRateLimited) as caught:
        await make_model("openai", fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert "is rate-limiting requests (HTTP 429: OpenAIException - Rate limit reached" in message
    assert "gave up after 4 attempts" in message
    assert_clean(message)


# --- keys: the variable is named, and a gateway's upstream key is suspected too ---------------


@both
async def test_proxy_without_database_refusing_a_key_names_the_key(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-user-key")
    fake_llm.script(gateway_no_db_auth())

    with pytest.raises(LlmAuthError) as caught:
        await make_model(provider, fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert f"rejected the API key from {KEY_ENV} (HTTP 400: No connected db)" in message
    assert "codeexec.llm.model" not in message


@both
async def test_upstream_key_refused_behind_a_gateway(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-user-key")
    fake_llm.script(gateway_upstream_auth(provider))  # type: ignore[arg-type]

    with pytest.raises(LlmAuthError) as caught:
        await make_model(provider, fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert KEY_ENV in message
    assert "gateway's own key for its upstream provider" in message
    assert (
        "Incorrect API key provided" if provider == "openai" else "invalid x-api-key"
    ) in message
    assert_clean(message)


async def test_openai_shaped_auth_error_on_the_messages_endpoint(
    fake_llm: FakeLlmServer,
) -> None:
    fake_llm.script(openai_shaped_auth_error())

    with pytest.raises(LlmAuthError) as caught:
        await make_model("anthropic", fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert f"none was sent because {KEY_ENV} is not set" in message
    assert "Invalid proxy server token passed" in message
    assert "upstream" not in message, "the proxy's own check is about the user's key"


# --- models and URLs ----------------------------------------------------------------------------


@both
@pytest.mark.parametrize("as_repr", [False, True])
async def test_unknown_model_as_a_400_names_model_and_url(
    provider: str, fake_llm: FakeLlmServer, as_repr: bool
) -> None:
    fake_llm.script(gateway_unknown_model("gpt-nope", as_repr=as_repr))
    model = make_model(provider, fake_llm, model="gpt-nope")

    with pytest.raises(LlmNotFound) as caught:
        await model.complete(MESSAGES)

    message = str(caught.value)
    assert "Model 'gpt-nope' was not found at " + model.endpoint in message
    assert "Invalid model name passed in model=gpt-nope" in message
    assert_clean(message)


@both
async def test_route_not_found_blames_the_url(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(route_not_found())
    model = make_model(provider, fake_llm)

    with pytest.raises(LlmNotFound) as caught:
        await model.complete(MESSAGES)

    message = str(caught.value)
    assert f"no {model.label} API at {model.endpoint} (HTTP 404: Not Found)" in message
    assert "codeexec.llm.baseUrl" in message
    assert "'test-model'" in message


# --- server failures ------------------------------------------------------------------------------


@both
async def test_plain_text_500_is_quoted(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.script(*[plain_text_server_error()] * 4)

    with pytest.raises(LlmUnavailable, match=r"failed \(HTTP 500: Internal Server Error\)"):
        await make_model(provider, fake_llm).complete(MESSAGES)


@both
async def test_529_wrapped_in_a_500_is_an_overload(provider: str, fake_llm: FakeLlmServer) -> None:
    wrapped = overloaded_wrapped_in_500(provider)  # type: ignore[arg-type]
    fake_llm.script(wrapped, Answer("recovered"))
    assert await make_model(provider, fake_llm).complete(MESSAGES) == "recovered"

    fake_llm.script(*[wrapped] * 4)
    with pytest.raises(LlmUnavailable) as caught:
        await make_model(provider, fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert "is overloaded (HTTP 500: AnthropicError - Overloaded)" in message
    assert "Try again in a moment" in message
    assert_clean(message)


async def test_500_with_a_traceback_never_shows_it(fake_llm: FakeLlmServer) -> None:
    body = gateway_error_body(500, "Internal error" + SERVER_TRACEBACK, None)
    fake_llm.script(*[Status(500, body=body)] * 4)

    with pytest.raises(LlmUnavailable) as caught:
        await make_model("openai", fake_llm).complete(MESSAGES)

    assert "(HTTP 500: Internal error)" in str(caught.value)
    assert_clean(str(caught.value))


# --- errors inside a stream that already said 200 ------------------------------------------


async def test_mid_stream_429_before_any_text_is_retried_as_told(
    fake_llm: FakeLlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "codeexec_lsp.llm")
    fake_llm.script(
        StreamError(
            message="litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit "
            "reached. Please try again in 70ms." + LITELLM_FALLBACK_REPORT,
            error_type="throttling_error",
            code="429",
        ),
        Answer("after the wait"),
    )

    assert await make_model("openai", fake_llm).complete(MESSAGES) == "after the wait"

    assert retry_waits(caplog) == ["0.07"]
    assert len(fake_llm.model_requests) == 2


async def test_mid_stream_429_every_time_says_rate_limited(fake_llm: FakeLlmServer) -> None:
    error = StreamError(message="Rate limit reached", error_type="throttling_error", code="429")
    fake_llm.script(*[error] * 4)

    with pytest.raises(LlmRateLimited) as caught:
        await make_model("openai", fake_llm).complete(MESSAGES)

    message = str(caught.value)
    assert "is rate-limiting requests (error 429: Rate limit reached)" in message
    assert "gave up after 4 attempts" in message


async def test_mid_stream_error_after_text_is_reported_not_retried(
    fake_llm: FakeLlmServer,
) -> None:
    fake_llm.script(
        StreamError("The code divides ", message="Rate limit", error_type="None", code="429"),
        Answer("never reached"),
    )

    with pytest.raises(LlmRateLimited, match="after part of the answer had arrived"):
        await make_model("openai", fake_llm).complete(MESSAGES)

    assert len(fake_llm.model_requests) == 1


async def test_mid_stream_quota_is_not_retried(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(
        StreamError(
            message="litellm.RateLimitError: RateLimitError: OpenAIException - You exceeded "
            "your current quota, please check your plan and billing details.",
            error_type="throttling_error",
            code="429",
        ),
        Answer("never reached"),
    )

    with pytest.raises(LlmQuotaExceeded, match="quota is used up"):
        await make_model("openai", fake_llm).complete(MESSAGES)

    assert len(fake_llm.model_requests) == 1


async def test_mid_stream_500_with_a_traceback(fake_llm: FakeLlmServer) -> None:
    error = StreamError(message="Internal error" + SERVER_TRACEBACK, error_type="None", code="500")
    fake_llm.script(*[error] * 4)

    with pytest.raises(LlmUnavailable) as caught:
        await make_model("openai", fake_llm).complete(MESSAGES)

    assert "failed while answering (error 500: Internal error)" in str(caught.value)
    assert_clean(str(caught.value))


async def test_anthropic_error_event_without_ping_then_a_clean_end(
    fake_llm: FakeLlmServer,
) -> None:
    fake_llm.script(StreamError(ping=False), Answer("recovered", ping=False))

    assert await make_model("anthropic", fake_llm).complete(MESSAGES) == "recovered"

    fake_llm.script(StreamError("half an ", ping=False))
    with pytest.raises(LlmUnavailable, match=r"is overloaded \(Overloaded\) after part"):
        await make_model("anthropic", fake_llm).complete(MESSAGES)


async def test_anthropic_error_event_naming_a_rate_limit(fake_llm: FakeLlmServer) -> None:
    error = StreamError(message="Too many requests", error_type="rate_limit_error", ping=False)
    fake_llm.script(*[error] * 4)

    with pytest.raises(LlmRateLimited, match=r"rate-limiting requests.*gave up after 4"):
        await make_model("anthropic", fake_llm).complete(MESSAGES)


# --- secrets -----------------------------------------------------------------------------------


@both
async def test_an_echoed_key_is_redacted_before_clipping(
    provider: str, fake_llm: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-canary-0123456789abcdefghijklmnop"
    monkeypatch.setenv(KEY_ENV, key)
    # The key straddles the 300-character clip: a prefix of it must not survive either.
    fake_llm.script(Status(401, message="x" * 280 + " bad key " + key))

    with pytest.raises(LlmAuthError) as caught:
        await make_model(provider, fake_llm).complete(MESSAGES)

    assert "sk-canary" not in str(caught.value)


# --- the pieces, directly ---------------------------------------------------------------------


def test_clean_message_keeps_the_text_before_a_blank_line_or_traceback() -> None:
    wrapped = (
        "litellm.RateLimitError: RateLimitError: OpenAIException - Slow down."
        + LITELLM_FALLBACK_REPORT
    )
    assert clean_message(wrapped) == "OpenAIException - Slow down"
    older = (
        "litellm.RateLimitError: slow\nReceived Model Group=m\nAvailable Model Group Fallbacks=None"
    )
    assert clean_message(older) == "slow"
    assert clean_message("Boom." + SERVER_TRACEBACK) == "Boom"
    # A message that is only a traceback: its last line, the exception, without the prefixes.
    assert clean_message(SERVER_TRACEBACK) == "upstream said no"
    assert clean_message("a " * 400).endswith("...")
    assert len(clean_message("a " * 400)) == 300


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, {"error": {"message": "slow", "type": "requests"}}, ErrorKind.RATE_LIMIT),
        (429, {"error": {"message": "x", "code": "insufficient_quota"}}, ErrorKind.QUOTA),
        (None, {"error": {"message": "x", "type": "None", "code": "429"}}, ErrorKind.RATE_LIMIT),
        (None, {"error": {"message": "x", "code": "500"}}, ErrorKind.UNAVAILABLE),
        (500, {"error": {"message": "x", "code": "529"}}, ErrorKind.OVERLOADED),
        (500, {"error": {"message": "x", "code": "401"}}, ErrorKind.AUTH),
        (400, {"error": {"message": "x", "type": "context_length_exceeded"}}, ErrorKind.CONTEXT),
        (400, {"error": {"message": "x", "code": "model_not_found"}}, ErrorKind.MODEL),
        (400, {"error": {"message": "x", "type": "auth_error", "code": "400"}}, ErrorKind.AUTH),
        (400, {"error": {"message": "bad temperature"}}, ErrorKind.BAD_REQUEST),
        (404, {"detail": "Not Found"}, ErrorKind.ROUTE),
        (404, {"error": {"message": "The model `m` does not exist"}}, ErrorKind.MODEL),
        (None, {"type": "error", "error": {"type": "overloaded_error"}}, ErrorKind.OVERLOADED),
        (None, {"type": "error", "error": {"type": "api_error"}}, ErrorKind.UNAVAILABLE),
        (None, {"error": {"message": "something odd"}}, ErrorKind.OTHER),
        (503, {"error": "model is loading"}, ErrorKind.UNAVAILABLE),
        # OpenRouter: Payment Required, with the status as a number in `code`.
        (402, {"error": {"message": "Insufficient credits", "code": 402}}, ErrorKind.QUOTA),
        # LiteLLM's per-key budget.
        (
            400,
            {"error": {"message": "Budget has been exceeded!", "type": "budget_exceeded"}},
            ErrorKind.QUOTA,
        ),
        # Ollama and vLLM name the model in a 404.
        (404, {"error": 'model "llama9" not found, try pulling it first'}, ErrorKind.MODEL),
        (
            404,
            {"object": "error", "message": "The model `x` does not exist.", "code": 404},
            ErrorKind.MODEL,
        ),
        # Anthropic's 413 for a request over its size limit.
        (
            413,
            {"type": "error", "error": {"type": "request_too_large", "message": "too big"}},
            ErrorKind.CONTEXT,
        ),
    ],
)
def test_classify(status: int | None, body: object, kind: ErrorKind) -> None:
    assert classify(status, read_error(body)) is kind


def test_fastapi_validation_detail_is_readable() -> None:
    body = {"detail": [{"loc": ["body", "max_tokens"], "msg": "Input should be a valid integer"}]}

    error = read_error(body)

    assert error.message == "max_tokens: Input should be a valid integer"
    assert classify(422, error) is ErrorKind.BAD_REQUEST


def test_retry_after_in_message() -> None:
    assert retry_after_in_message("Please try again in 20s.") == 20
    assert retry_after_in_message("Please try again in 1.5 seconds") == 1.5
    assert retry_after_in_message("try again in 120ms") == pytest.approx(0.12)
    assert retry_after_in_message("Retry after 3 seconds") == 3
    assert retry_after_in_message("try again later") is None


def test_parse_retry_after_prefers_milliseconds_and_knows_gateway_names() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"llm_provider-retry-after": "7"}) == 7
    assert parse_retry_after({"llm_provider-retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"x-other": "1"}) is None
