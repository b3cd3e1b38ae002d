"""Run the /execute application under uvicorn, with logs that never show a secret."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

import uvicorn

from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.settings import DEFAULT_TOKEN_ENV, ApiSettings, check_bind
from codeexec_lsp.redact import install_redaction

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Time for runs in progress to finish after a stop signal, beyond their own time limit.
SHUTDOWN_MARGIN_S = 5.0
PR_SET_DUMPABLE = 4

log = logging.getLogger("codeexec_lsp.api")


def harden_process() -> bool:
    """Keep code this server runs, as the same user, out of the server's memory and its
    /proc/<pid>/environ, where the token is: both need a "dumpable" process. Linux only;
    True when it worked. Child processes are dumpable again after exec, as usual."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _protect_token(settings: ApiSettings) -> None:
    # The app has read the token; nothing started from here on needs it in its environment.
    os.environ.pop(settings.token_env, None)
    if not harden_process():
        log.warning(
            "could not make this process non-dumpable: code it runs as the same user may "
            "read the token from /proc"
        )
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        log.warning(
            "running as root: code it runs can read any file or process, the token included; "
            "run the server as an unprivileged user"
        )


def configure_logging(settings: ApiSettings, level: str = "info") -> None:
    """One stderr handler for our loggers and uvicorn's, redacting the token's value."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    install_redaction(handler, {settings.token_env, DEFAULT_TOKEN_ENV})
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ApiSettings | None = None,
    *,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT/SIGTERM. Raises ConfigError (before binding) for an unsafe setup:
    no token in the environment, or --insecure-no-auth on an address other than loopback."""
    settings = settings if settings is not None else ApiSettings()
    check_bind(host, settings)
    configure_logging(settings, log_level)
    app = create_app(settings)
    _protect_token(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=log_level,
        # Our own log line per request says more (outcome, duration) and no less safely.
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.max_run_time + SHUTDOWN_MARGIN_S),
    )
    log.info(
        "serving /execute on http://%s:%d (runs: %d at once, %d queued, at most %g s each)",
        host,
        port,
        settings.max_concurrency,
        settings.queue_size,
        settings.max_run_time,
    )
    uvicorn.Server(config).run()
