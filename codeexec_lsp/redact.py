"""Keep secrets out of logs: a filter that rewrites every record before a handler emits it.

Records logged by child loggers (httpx, httpcore) skip the filters of the loggers they
propagate to, but never those of the handler that emits them: put the filter on handlers.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Always protected, whatever the settings name: the ecosystem's default key variables.
DEFAULT_SECRET_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
# Shorter values would blank out ordinary words and numbers all over the log.
MIN_SECRET_LENGTH = 4

_NOT_YET_REDACTED = r"(?!\[REDACTED\])"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header tuples as httpcore prints them: (b'x-api-key', b'...')
    (
        re.compile(
            r"""(?i)(b?['"](?:x-api-key|api-key|authorization|proxy-authorization)['"]"""
            r"""\s*,\s*b?['"])[^'"]*"""
        ),
        rf"\1{REDACTED}",
    ),
    # Headers, JSON and keyword forms: `x-api-key: ...`, "api_key": "...", authorization=...
    (
        re.compile(
            r"""(?i)\b(x-api-key|api[-_]?key|authorization|proxy-authorization)\b"""
            r"""(["']?\s*[:=]\s*["']?)((?:bearer|basic)\s+)?"""
            + _NOT_YET_REDACTED
            + r"""[^\s"',;}\]]+"""
        ),
        rf"\1\2\3{REDACTED}",
    ),
    (
        re.compile(r"(?i)\b(bearer\s+)" + _NOT_YET_REDACTED + r"[A-Za-z0-9._~+/=-]+"),
        rf"\1{REDACTED}",
    ),
    # OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-...) key shapes.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
)


def redact_text(text: str, env_names: Iterable[str] = ()) -> str:
    """`text` with the values of the named variables (read now) and key-like strings hidden."""
    names = {*DEFAULT_SECRET_ENV_VARS, *env_names}
    values = {os.environ.get(name, "").strip() for name in names}
    # Longest first, so a secret that contains another is hidden whole.
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= MIN_SECRET_LENGTH and value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, arguments, exception and stack text with secrets hidden.

    `env_names` name the variables whose values are secret; they are read when each record is
    filtered, so a key set or changed later is still caught. The record is changed in place:
    every handler after this one sees the redacted text too.
    """

    def __init__(self, env_names: Iterable[str] = (), name: str = "") -> None:
        super().__init__(name)
        self.env_names: set[str] = set(env_names)

    def add_env_names(self, names: Iterable[str]) -> None:
        self.env_names.update(names)

    def redact(self, text: str) -> str:
        return redact_text(text, self.env_names)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A record whose arguments do not fit its format; logging would report it anyway.
            message = f"{record.msg} {record.args}"
        # Formatting now means a secret inside an argument's str() is caught as well.
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            # Formatters use exc_text when it is set; clearing exc_info stops handlers that
            # render the exception themselves from bringing the secret back.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(
    target: logging.Logger | logging.Handler, names: Iterable[str] = ()
) -> RedactingFilter:
    """Put a RedactingFilter for the variables `names` on a handler, or on a logger and each
    of its current handlers. Idempotent: a second call adds the names to the filter it finds.

    Give handlers where possible: a logger's own filter misses records from its children.
    """
    names = list(names)
    main = _redacting_filter(target)
    if main is None:
        main = RedactingFilter()
        target.addFilter(main)
    main.add_env_names(names)
    if isinstance(target, logging.Logger):
        for handler in target.handlers:
            existing = _redacting_filter(handler)
            if existing is None:
                handler.addFilter(main)
            else:
                existing.add_env_names(names)
    return main


def _redacting_filter(holder: logging.Filterer) -> RedactingFilter | None:
    return next((f for f in holder.filters if isinstance(f, RedactingFilter)), None)
