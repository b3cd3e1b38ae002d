"""Build the configured chat model from the `codeexec.llm.*` settings and the environment."""

from __future__ import annotations

import math
import os
import re
from urllib.parse import urlsplit

from codeexec_lsp.llm.anthropic import (
    ANTHROPIC_BASE_URL,
    ANTHROPIC_BASE_URL_ENV,
    ANTHROPIC_KEY_ENV,
    AnthropicChatModel,
)
from codeexec_lsp.llm.base import ChatModel, LlmNotConfigured
from codeexec_lsp.llm.http import HttpChatModel, RetryPolicy
from codeexec_lsp.llm.openai import (
    OPENAI_BASE_URL,
    OPENAI_BASE_URL_ENV,
    OPENAI_KEY_ENV,
    OpenAIChatModel,
)

PROVIDERS = ("openai", "anthropic")
# Small, fast models: explanations and fixes of a selection do not need a frontier model,
# and an editor user is waiting.
DEFAULT_MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-haiku-4-5"}
DEFAULT_KEY_ENVS = {"openai": OPENAI_KEY_ENV, "anthropic": ANTHROPIC_KEY_ENV}
_BASE_URL_ENVS = {"openai": OPENAI_BASE_URL_ENV, "anthropic": ANTHROPIC_BASE_URL_ENV}
_DEFAULT_BASE_URLS = {"openai": OPENAI_BASE_URL, "anthropic": ANTHROPIC_BASE_URL}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def make_chat_model(
    provider: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    timeout: float,
    *,
    retry: RetryPolicy | None = None,
) -> ChatModel:
    """The model for these settings. Empty strings count as unset (editors send them).

    Raises LlmNotConfigured, saying what to set, for an unknown provider, a bad base URL,
    timeout or key variable name, or a missing key when the server needs one.
    """
    kind = (provider or "openai").strip().lower()
    if kind not in PROVIDERS:
        raise LlmNotConfigured(
            f'codeexec.llm.provider is {provider!r}; set it to "openai" (OpenAI or any '
            'OpenAI-compatible server such as Ollama, llama.cpp, vLLM, LM Studio) or "anthropic".'
        )
    if not math.isfinite(timeout) or timeout <= 0:
        raise LlmNotConfigured(
            f"codeexec.llm.timeout is {timeout!r}; set it to a positive number of seconds."
        )
    key_env = (api_key_env or "").strip() or DEFAULT_KEY_ENVS[kind]
    if not _ENV_NAME.fullmatch(key_env):
        # Never echo the value: the likeliest mistake is pasting the key itself here.
        raise LlmNotConfigured(
            "codeexec.llm.apiKeyEnv must be the name of an environment variable (such as "
            f"{DEFAULT_KEY_ENVS[kind]}), not the key itself. Put the key in that variable."
        )
    base, source = (base_url or "").strip(), "codeexec.llm.baseUrl"
    if not base:
        base, source = os.environ.get(_BASE_URL_ENVS[kind], "").strip(), _BASE_URL_ENVS[kind]
    base = base or _DEFAULT_BASE_URLS[kind]
    _check_base_url(base, source)
    name = (model or "").strip() or DEFAULT_MODELS[kind]
    chat_model: HttpChatModel
    if kind == "anthropic":
        chat_model = AnthropicChatModel(
            model=name, base_url=base, api_key_env=key_env, timeout=timeout, retry=retry
        )
    else:
        chat_model = OpenAIChatModel(
            model=name, base_url=base, api_key_env=key_env, timeout=timeout, retry=retry
        )
    chat_model.api_key()  # Fails now, with what to set, rather than on the first request.
    return chat_model


def _check_base_url(url: str, source: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        valid = False
    if not valid:
        raise LlmNotConfigured(
            f"{source} {url!r} is not an http(s) URL; set it to the server's API root, "
            "e.g. http://localhost:11434/v1 for Ollama."
        )
