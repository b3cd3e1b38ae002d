"""The chat-model interface every provider implements, and the errors users see from it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


class ChatModel(Protocol):
    """A streaming chat model. `name` identifies provider+model (cache keys, messages)."""

    @property
    def name(self) -> str: ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048
    ) -> AsyncIterator[str]:
        """Yield text deltas as they arrive. Raises LlmError subclasses."""
        ...

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        """The whole answer. Raises LlmError subclasses."""
        ...


class LlmError(Exception):
    """A failure talking to the model; `str(err)` tells the user what to do."""


class LlmNotConfigured(LlmError):
    """No API key and no local base URL."""


class LlmAuthError(LlmError):
    """401/403 from the provider."""


class LlmNotFound(LlmError):
    """404: wrong model name or base URL."""


class LlmRateLimited(LlmError):
    """429 after all retries."""


class LlmQuotaExceeded(LlmError):
    """The account's quota or credit is used up: no retry can help until it is topped up."""


class LlmUnavailable(LlmError):
    """5xx or connection errors after all retries."""


class LlmTimeout(LlmError):
    """No answer within llm.timeout."""


class LlmContextTooLong(LlmError):
    """The request exceeded the model's context window."""


class LlmBadAnswer(LlmError):
    """Malformed, truncated or empty answer."""


class LlmAnswerTooLong(LlmBadAnswer):
    """The answer (or the response carrying it) passed the size cap and was cut off."""


class LlmBadRequest(LlmError):
    """Another 4xx: the server refused the request as sent (a parameter or setting it rejects)."""


class LlmAnswerTruncated(LlmBadAnswer):
    """The answer stopped at max_tokens. `partial` is what arrived, for callers that can use it."""

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial
