"""Anthropic's Messages API (`POST /v1/messages`), streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from codeexec_lsp.llm.base import ChatMessage
from codeexec_lsp.llm.http import AnswerState, HttpChatModel, RetryPolicy, SseEvent

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"
ANTHROPIC_BASE_URL_ENV = "ANTHROPIC_BASE_URL"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicChatModel(HttpChatModel):
    """`POST {base_url}/v1/messages` with `stream: true`; system messages become `system`."""

    provider = "anthropic"
    default_key_env = ANTHROPIC_KEY_ENV
    official_hosts = frozenset({"api.anthropic.com"})

    def __init__(
        self,
        *,
        model: str,
        base_url: str = ANTHROPIC_BASE_URL,
        api_key_env: str = ANTHROPIC_KEY_ENV,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            model=model, base_url=base_url, api_key_env=api_key_env, timeout=timeout, retry=retry
        )

    @property
    def endpoint(self) -> str:
        # Accept a base URL given with or without the /v1 the endpoint already carries.
        if self.base_url.endswith("/v1"):
            return f"{self.base_url}/messages"
        return f"{self.base_url}/v1/messages"

    @property
    def label(self) -> str:
        return "Anthropic API" if self.is_official else "Anthropic-compatible server"

    def missing_key_message(self) -> str:
        return (
            f"No API key for the Anthropic API. {self.key_advice()}, or set "
            'codeexec.llm.provider to "openai" and point codeexec.llm.baseUrl at a local server '
            "such as Ollama (http://localhost:11434/v1)."
        )

    def _not_found_advice(self) -> str:
        return (
            "Check codeexec.llm.model (e.g. claude-haiku-4-5) and codeexec.llm.baseUrl "
            f"(default {ANTHROPIC_BASE_URL})."
        )

    def _api_root_hint(self) -> str:
        return f" ({ANTHROPIC_BASE_URL} for Anthropic itself), without /v1/messages"

    def _headers(self, api_key: str) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def _body(self, messages: Sequence[ChatMessage], max_tokens: int) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns: list[dict[str, str]] = []
        for message in messages:
            if message.role == "system":
                continue
            if turns and turns[-1]["role"] == message.role:
                # The API wants turns to alternate; merging keeps every word of the prompt.
                turns[-1]["content"] += "\n\n" + message.content
            else:
                turns.append({"role": message.role, "content": message.content})
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": turns,
            "stream": True,
        }
        if system:
            body["system"] = system
        return body

    async def _decode_events(
        self, events: AsyncIterator[SseEvent], state: AnswerState
    ) -> AsyncIterator[str]:
        async for event in events:
            if event.event == "ping":
                continue
            payload = self._parse_json(event.data)
            if not isinstance(payload, dict):
                raise self._malformed("an event that is not a JSON object")
            kind = event.event or payload.get("type")
            if kind == "error":
                raise self._stream_error(payload)
            if kind == "content_block_delta":
                delta = payload.get("delta")
                if not isinstance(delta, dict):
                    raise self._malformed("'content_block_delta' without a 'delta' object")
                # Other delta types (thinking, tool input, citations) are not answer text.
                if delta.get("type") == "text_delta":
                    text = delta.get("text")
                    if not isinstance(text, str):
                        raise self._malformed("'text_delta' without a 'text' string")
                    if text:
                        yield text
            elif kind == "message_delta":
                delta = payload.get("delta")
                if isinstance(delta, dict):
                    state.truncated = delta.get("stop_reason") == "max_tokens"
            elif kind == "message_stop":
                state.finished = True
                return
            # message_start, content_block_start/stop and event types added later carry no text.

    def _decode_json(self, payload: Any, state: AnswerState) -> str:
        if not isinstance(payload, dict):
            raise self._malformed("the body is not a JSON object")
        if payload.get("type") == "error":
            raise self._stream_error(payload)
        content = payload.get("content")
        if not isinstance(content, list):
            raise self._malformed("no 'content' list")
        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
        state.finished = True
        state.truncated = payload.get("stop_reason") == "max_tokens"
        return "".join(texts)
