"""The fake model server really sends the shapes the gateway tests rely on: read raw off the
wire here, so a test that passes with `gateway_answer()` has met those shapes, not the
reference ones."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import (
    FakeLlmServer,
    StreamError,
    gateway_answer,
    gateway_rate_limited,
)

BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def raw_events(server: FakeLlmServer, path: str, headers: dict[str, str] | None = None) -> str:
    body = {**BODY, "max_tokens": 10}
    response = httpx.post(server.url + path, json=body, headers=headers or {}, timeout=5)
    return response.text


def data_payloads(text: str) -> list[Any]:
    return [
        line[len("data: ") :] if line[6:] == "[DONE]" else json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


def test_openai_gateway_shape_on_the_wire(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(gateway_answer("one two", usage_chunk="litellm", done_marker=False))

    chunks = data_payloads(raw_events(fake_llm, "/v1/chat/completions"))

    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "one "}
    assert all(set(c["choices"][0]) == {"index", "delta"} for c in [first, *middle])
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [{"index": 0, "delta": {}}] and "usage" in usage
    assert "[DONE]" not in chunks


def test_openai_usage_chunk_with_empty_choices(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(gateway_answer("one", usage_chunk="openai"))

    *_, usage, done = data_payloads(raw_events(fake_llm, "/v1/chat/completions"))

    assert usage["choices"] == [] and done == "[DONE]"


def test_anthropic_without_ping_and_error_then_clean_end(fake_llm: FakeLlmServer) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    fake_llm.script(gateway_answer("one"), StreamError(ping=False))

    assert "event: ping" not in raw_events(fake_llm, "/v1/messages", headers)
    text = raw_events(fake_llm, "/v1/messages", headers)
    assert "event: ping" not in text
    assert text.rstrip().endswith('"message": "Overloaded"}}')
    assert "message_stop" not in text


def test_mid_stream_error_carries_the_status_as_text(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(StreamError(message="slow down", error_type="throttling_error", code="429"))

    *_, error = data_payloads(raw_events(fake_llm, "/v1/chat/completions"))

    assert error == {
        "error": {"message": "slow down", "type": "throttling_error", "code": "429", "param": None}
    }


def test_renamed_retry_header(fake_llm: FakeLlmServer) -> None:
    fake_llm.script(gateway_rate_limited("3", header="llm_provider-retry-after"))

    response = httpx.post(fake_llm.openai_base_url + "/chat/completions", json=BODY, timeout=5)

    assert response.status_code == 429
    assert response.headers["llm_provider-retry-after"] == "3"
    assert "retry-after" not in response.headers
    assert response.json()["error"]["code"] == "429"
