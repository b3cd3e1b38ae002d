"""OpenAI chat completions, as served by OpenAI and by Ollama, llama.cpp, vLLM and LM Studio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from codeexec_lsp.llm.base import ChatMessage
from codeexec_lsp.llm.http import AnswerState, HttpChatModel, RetryPolicy, SseEvent

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
OLLAMA_BASE_URL = "http://localhost:11434/v1"


class OpenAIChatModel(HttpChatModel):
    """`POST {base_url}/chat/completions` with `stream: true`.

    No Authorization header is sent when the key variable is unset, which local servers accept;
    only the official API insists on a key before any request is made.
    """

    provider = "openai"
    default_key_env = OPENAI_KEY_ENV
    official_hosts = frozenset({"api.openai.com"})

    def __init__(
        self,
        *,
        model: str,
        base_url: str = OPENAI_BASE_URL,
        api_key_env: str = OPENAI_KEY_ENV,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        # People paste the full endpoint as often as the API root.
        base = base.removesuffix("/chat/completions")
        super().__init__(
            model=model, base_url=base, api_key_env=api_key_env, timeout=timeout, retry=retry
        )

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def label(self) -> str:
        return "OpenAI API" if self.is_official else "OpenAI-compatible server"

    def missing_key_message(self) -> str:
        return (
            f"No API key for the OpenAI API. {self.key_advice()}, or point codeexec.llm.baseUrl "
            f"at a local server such as Ollama ({OLLAMA_BASE_URL})."
        )

    def _not_found_advice(self) -> str:
        return (
            "Check codeexec.llm.model (for Ollama, `ollama list` shows the models you have and "
            f"`ollama pull {self.model}` fetches this one) and that codeexec.llm.baseUrl is the "
            "API root, which usually ends in /v1."
        )

    def _api_root_hint(self) -> str:
        return " (for OpenAI-compatible servers it usually ends in /v1)"

    def _headers(self, api_key: str) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def _body(self, messages: Sequence[ChatMessage], max_tokens: int) -> dict[str, Any]:
        # OpenAI's newer models reject `max_tokens`; most other servers only know `max_tokens`.
        limit_field = "max_completion_tokens" if self.is_official else "max_tokens"
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            limit_field: max_tokens,
        }

    async def _decode_events(
        self, events: AsyncIterator[SseEvent], state: AnswerState
    ) -> AsyncIterator[str]:
        async for event in events:
            if event.data.strip() == "[DONE]":
                state.finished = True
                return
            payload = self._parse_json(event.data)
            if not isinstance(payload, dict):
                raise self._malformed("an event that is not a JSON object")
            if payload.get("error"):
                raise self._stream_error(payload)
            choice = self._first_choice(payload)
            if choice is None:
                continue  # e.g. the usage-only chunk some servers send last
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise self._malformed("'delta' is not an object")
            content = delta.get("content")
            if content is not None and not isinstance(content, str):
                raise self._malformed("'delta.content' is not a string")
            if content:
                yield content
            self._note_finish(choice, state)

    def _decode_json(self, payload: Any, state: AnswerState) -> str:
        if not isinstance(payload, dict):
            raise self._malformed("the body is not a JSON object")
        if payload.get("error"):
            raise self._stream_error(payload)
        choice = self._first_choice(payload)
        if choice is None or not isinstance(choice.get("message"), dict):
            raise self._malformed("no 'choices[0].message'")
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise self._malformed("'message.content' is not a string")
        self._note_finish(choice, state)
        # A JSON body is the whole answer even if the server left out finish_reason.
        state.finished = True
        return content or ""

    def _first_choice(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        choices = payload.get("choices")
        if not isinstance(choices, list):
            raise self._malformed("no 'choices' list")
        if not choices:
            return None
        choice = choices[0]
        if not isinstance(choice, dict):
            raise self._malformed("'choices[0]' is not an object")
        return choice

    @staticmethod
    def _note_finish(choice: dict[str, Any], state: AnswerState) -> None:
        reason = choice.get("finish_reason")
        if reason:
            # The answer is complete once a finish_reason arrives; [DONE] is a formality that
            # some servers drop when they close the connection.
            state.finished = True
            state.truncated = reason == "length"
