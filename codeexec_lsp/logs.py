"""Logging on stderr (stdout carries the protocol), with secrets redacted from every line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from codeexec_lsp.redact import RedactingFilter, install_redaction

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    verbose: bool = False, secret_env_names: Iterable[str] = ()
) -> RedactingFilter:
    """--verbose also traces HTTP requests (httpx/httpcore); the filter keeps keys out."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    redaction = install_redaction(handler, secret_env_names)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return redaction


def watch_secret_names(names: Iterable[str]) -> None:
    """Settings may name new key variables (llm.apiKeyEnv): redact those too."""
    for handler in logging.getLogger().handlers:
        install_redaction(handler, names)
