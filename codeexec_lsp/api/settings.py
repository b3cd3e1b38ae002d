"""What an operator can set for the /execute server, and the checks made before it starts."""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TOKEN_ENV = "CODEEXEC_API_TOKEN"
# Shorter tokens can be guessed; they are accepted, with a warning in the log.
RECOMMENDED_TOKEN_LENGTH = 16


class ConfigError(Exception):
    """The server must not start with these settings; the message says what to change."""


def _default_concurrency() -> int:
    return max(1, os.cpu_count() or 1)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "codeexec-lsp" / "api-envs"


@dataclass(frozen=True)
class ApiSettings:
    token_env: str = DEFAULT_TOKEN_ENV
    insecure_no_auth: bool = False
    allow_install: bool = False
    max_concurrency: int = field(default_factory=_default_concurrency)
    queue_size: int = 16
    max_run_time: float = 60.0
    default_run_time: float = 30.0
    max_body_bytes: int = 1_000_000
    memory_mb: int = 1024
    max_output_bytes: int = 1_000_000
    python: str = sys.executable
    cache_dir: Path = field(default_factory=_default_cache_dir)
    install_timeout: float = 600.0
    retry_after_s: int = 1
    max_libraries: int = 32
    # The whole body must arrive within this many seconds of the request's start: a client
    # trickling it in a byte at a time (slowloris) must not hold a connection forever.
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "max_body_bytes", "memory_mb", "max_output_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("queue_size", "retry_after_s", "max_libraries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        for name in ("max_run_time", "default_run_time", "install_timeout", "body_timeout_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")

    @property
    def effective_default_run_time(self) -> float:
        """The run time a request gets when it names none: never more than the cap."""
        return min(self.default_run_time, self.max_run_time)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_token(settings: ApiSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The token clients must present, or None when the operator chose to run without one.

    Raises ConfigError when there is no token and no explicit permission to run without.
    """
    environ = os.environ if environ is None else environ
    token = environ.get(settings.token_env, "").strip()
    if token:
        return token
    if settings.insecure_no_auth:
        return None
    raise ConfigError(
        f"No API token: set {settings.token_env} to a long random secret (e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`). To run without "
        "authentication on this machine only, pass --insecure-no-auth with a loopback --host."
    )


def check_bind(host: str, settings: ApiSettings, environ: Mapping[str, str] | None = None) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    token = load_token(settings, environ)
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--insecure-no-auth is only allowed on a loopback address (127.0.0.1, ::1 or "
            f"localhost), not {host!r}: anyone who can reach it could run code. Set "
            f"{settings.token_env} instead."
        )
