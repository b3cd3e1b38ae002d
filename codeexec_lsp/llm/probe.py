"""Check the configured model before its first use, without spending tokens.

`doctor` calls `check_model(settings.llm)` and prints the three lines it returns: whether the
server is reachable, whether it accepts the key, and whether it knows the model (and, only
when asked, a fourth: how a chat request of a few tokens fared, which is what shows a used-up
quota or a rate limit). Both
providers have a free endpoint for this: OpenAI-compatible servers list their models at
`GET {baseUrl}/models` (OpenAI, Ollama, llama.cpp, vLLM, LM Studio, LiteLLM's proxy), and
Anthropic answers `GET /v1/models/{model}` (which resolves aliases such as
claude-haiku-4-5), as do gateways that speak its API. No chat request is made unless asked.

Like the chat clients, the probe reads the key from the environment for the request only;
no line it returns contains it (an echo of it in a server's message is redacted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from codeexec_lsp.config import LlmSettings
from codeexec_lsp.llm.base import ChatMessage, LlmAnswerTruncated, LlmError
from codeexec_lsp.llm.errors import ErrorKind, ServerError, classify, read_error
from codeexec_lsp.llm.factory import make_chat_model
from codeexec_lsp.llm.http import HttpChatModel, RetryPolicy, is_local_url, ssl_context

# A check should answer quickly even when llm.timeout allows a slow model minutes.
PROBE_TIMEOUT = 10.0
# How many of the server's model names a "model unknown" line offers instead.
_OFFERED_SHOWN = 8


@dataclass(frozen=True)
class ModelCheck:
    """One line each for the server, the key and the model; `ok` when all three passed.
    `request` is the outcome of a tiny chat request, when one was asked for."""

    server: str
    key: str
    model: str
    ok: bool
    request: str | None = None

    @property
    def contacted(self) -> bool:
        """False when the settings alone ruled the check out (e.g. no key for the official
        API): doctor reports that as "not configured", not as a failure."""
        return self.server != "not contacted"

    def lines(self) -> list[str]:
        lines = [f"server  {self.server}", f"key     {self.key}", f"model   {self.model}"]
        if self.request is not None:
            lines.append(f"request {self.request}")
        return lines


def check_model_sync(
    settings: LlmSettings, *, timeout: float = PROBE_TIMEOUT, send_request: bool = False
) -> ModelCheck:
    """`check_model` for callers without an event loop (the CLI's doctor)."""
    return asyncio.run(check_model(settings, timeout=timeout, send_request=send_request))


async def check_model(
    settings: LlmSettings, *, timeout: float = PROBE_TIMEOUT, send_request: bool = False
) -> ModelCheck:
    """Contact the configured server and report on it; never raises for what it finds.

    With `send_request`, and only when the free checks passed, a chat request capped at a
    few tokens follows: the one way to see a used-up quota or a rate limit before first use
    (it is not retried, so a rate limit is reported, not waited out)."""
    try:
        chat = make_chat_model(
            settings.provider,
            settings.base_url,
            settings.model,
            settings.api_key_env,
            settings.timeout,
            retry=RetryPolicy(max_retries=0),
        )
    except LlmError as exc:
        return ModelCheck("not contacted", str(exc), "not checked", ok=False)
    if not isinstance(chat, HttpChatModel):  # every provider is one today
        return ModelCheck("not contacted", "not checked", "not checked", ok=False)
    limit = min(timeout, settings.timeout)
    check = await _Probe(chat, limit).run()
    if not send_request or not check.ok:
        return check
    request, ok = await _try_a_request(chat, limit)
    return dataclasses.replace(check, request=request, ok=ok)


# Enough for any model to say something; reasoning models may spend them all thinking, which
# still proves the request was accepted.
_REQUEST_TOKENS = 8


async def _try_a_request(chat: HttpChatModel, limit: float) -> tuple[str, bool]:
    chat.timeout = limit
    messages = [ChatMessage("user", "Reply with the word OK.")]
    try:
        await chat.complete(messages, max_tokens=_REQUEST_TOKENS)
    except LlmAnswerTruncated:
        pass  # stopped at the token cap: the server took the request
    except LlmError as exc:
        return f"failed: {exc}", False
    return f"answered (a request of at most {_REQUEST_TOKENS} tokens)", True


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: Any  # parsed JSON, or None
    text: str
    elapsed_ms: float


class _Probe:
    def __init__(self, chat: HttpChatModel, timeout: float) -> None:
        self.chat = chat
        self.timeout = timeout
        self.key = chat.api_key()
        self.anthropic = chat.provider == "anthropic"

    @property
    def list_url(self) -> str:
        if self.anthropic:
            return self.chat.endpoint.removesuffix("/messages") + "/models"
        return f"{self.chat.base_url}/models"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.anthropic:
            headers["anthropic-version"] = "2023-06-01"
            if self.key:
                headers["x-api-key"] = self.key
        elif self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    async def run(self) -> ModelCheck:
        trust_env = not is_local_url(self.chat.base_url)
        limits = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
        async with httpx.AsyncClient(
            timeout=limits, trust_env=trust_env, verify=ssl_context(trust_env)
        ) as client:
            try:
                if self.anthropic:
                    # One model by name resolves aliases; a gateway without that route still
                    # has the list.
                    url = f"{self.list_url}/{quote(self.chat.model, safe='')}"
                    reply = await self._get(client, url)
                    if reply.status == 404 and classify(404, self._error(reply)) is not (
                        ErrorKind.MODEL
                    ):
                        reply = await self._get(client, self.list_url)
                    else:
                        return self._judge_one(reply, url)
                else:
                    reply = await self._get(client, self.list_url)
            except httpx.TimeoutException:
                return ModelCheck(
                    f"no answer from {self.list_url} within {self.timeout:g} s",
                    "not checked",
                    "not checked",
                    ok=False,
                )
            except httpx.TransportError as exc:
                text = str(exc).strip() or type(exc).__name__
                return ModelCheck(
                    f"unreachable: {self.list_url} ({text}); check codeexec.llm.baseUrl and "
                    "that the server is running",
                    "not checked",
                    "not checked",
                    ok=False,
                )
        return self._judge_list(reply)

    async def _get(self, client: httpx.AsyncClient, url: str) -> _Reply:
        started = time.perf_counter()
        response = await client.get(url, headers=self._headers())
        elapsed = (time.perf_counter() - started) * 1000
        text = response.text[:65536]
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = None
        return _Reply(response.status_code, payload, text, elapsed)

    def _error(self, reply: _Reply) -> ServerError:
        secrets = (self.key,) if len(self.key) >= 4 else ()
        return read_error(reply.payload, reply.text, secrets=secrets)

    def _reachable(self, reply: _Reply, url: str) -> str:
        return f"reachable: {url} answered HTTP {reply.status} in {reply.elapsed_ms:.0f} ms"

    def _key_ok(self) -> str:
        if self.key:
            return f"accepted ({self.chat.api_key_env}, value hidden)"
        return f"none sent ({self.chat.api_key_env} is not set) and none needed"

    def _failure(self, reply: _Reply, url: str) -> ModelCheck | None:
        """The check for a reply that is an error, or None for a success."""
        if 200 <= reply.status < 300:
            return None
        error = self._error(reply)
        kind = classify(reply.status, error)
        detail = (
            f"HTTP {reply.status}: {error.message}" if error.message else f"HTTP {reply.status}"
        )
        reachable = self._reachable(reply, url)
        if kind is ErrorKind.AUTH:
            env = self.chat.api_key_env
            key = (
                f"refused ({detail}); set {env} to a valid key"
                if self.key
                else f"needed ({detail}) but {env} is not set; set it to your key"
            )
            if error.from_gateway_upstream:
                key += " (or the gateway's own upstream key is the one refused)"
            return ModelCheck(reachable, key, "not checked", ok=False)
        if kind is ErrorKind.ROUTE:
            return ModelCheck(
                reachable + f", but there is no model list there ({detail}); check that "
                "codeexec.llm.baseUrl is the API root",
                "not checked",
                "not checked",
                ok=False,
            )
        return ModelCheck(reachable, "not checked", f"not checked ({detail})", ok=False)

    def _judge_one(self, reply: _Reply, url: str) -> ModelCheck:
        model = self.chat.model
        if reply.status == 404:
            error = self._error(reply)
            return ModelCheck(
                self._reachable(reply, url),
                self._key_ok(),
                f"unknown: '{model}' is not offered by {self.chat.base_url} "
                f"(HTTP 404: {error.message}); check codeexec.llm.model",
                ok=False,
            )
        failure = self._failure(reply, url)
        if failure is not None:
            return failure
        return ModelCheck(
            self._reachable(reply, url), self._key_ok(), f"'{model}' is available", ok=True
        )

    def _judge_list(self, reply: _Reply) -> ModelCheck:
        failure = self._failure(reply, self.list_url)
        if failure is not None:
            return failure
        reachable = self._reachable(reply, self.list_url)
        offered = _model_ids(reply.payload)
        model = self.chat.model
        if offered is None:
            return ModelCheck(
                reachable, self._key_ok(), "not checked (the model list was not readable)", False
            )
        # Ollama lists "llama3.2:latest" for a model asked for as "llama3.2".
        if model in offered or f"{model}:latest" in offered:
            return ModelCheck(reachable, self._key_ok(), f"'{model}' is available", ok=True)
        if _owners(reply.payload) == {"llamacpp"} and len(offered) == 1:
            # llama.cpp's server with one model loaded answers every request with it,
            # whatever the request names (its router mode, listing several, does not).
            return ModelCheck(
                reachable,
                self._key_ok(),
                f"llama.cpp serves {', '.join(offered)} whatever the name ('{model}')",
                ok=True,
            )
        shown = ", ".join(offered[:_OFFERED_SHOWN]) or "none"
        more = f" and {len(offered) - _OFFERED_SHOWN} more" if len(offered) > _OFFERED_SHOWN else ""
        return ModelCheck(
            reachable,
            self._key_ok(),
            f"unknown: '{model}' is not offered by {self.chat.base_url} (it offers {shown}{more});"
            " check codeexec.llm.model",
            ok=False,
        )


def _owners(payload: Any) -> set[str]:
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return set()
    return {str(item.get("owned_by")) for item in items if isinstance(item, dict)}


def _model_ids(payload: Any) -> list[str] | None:
    """Model names from `{"data": [{"id": ...}]}` (OpenAI, Anthropic, gateways) or Ollama's
    native `{"models": [{"name": ...}]}`."""
    if not isinstance(payload, dict):
        return None
    items = payload.get("data", payload.get("models"))
    if not isinstance(items, list):
        return None
    ids = []
    for item in items:
        if isinstance(item, dict):
            name = item.get("id", item.get("name"))
            if isinstance(name, str):
                ids.append(name)
    return ids
