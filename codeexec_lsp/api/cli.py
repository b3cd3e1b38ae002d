"""`codeexec-lsp api`: options and command. Starlette and uvicorn are imported only when the
command runs, so the language server's start-up does not pay for them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codeexec_lsp.api.settings import DEFAULT_TOKEN_ENV, ApiSettings, ConfigError

USAGE_ERROR = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ApiSettings()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        metavar="NAME",
        help=f"variable holding the bearer token (default {DEFAULT_TOKEN_ENV})",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow starting without a token (loopback addresses only)",
    )
    parser.add_argument(
        "--allow-install",
        action="store_true",
        help="install missing environment.libraries into cached virtual environments",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=defaults.max_concurrency,
        metavar="N",
        help="runs at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--queue",
        type=_non_negative_int,
        default=defaults.queue_size,
        metavar="N",
        help=f"requests that may wait for a run slot before 503 (default {defaults.queue_size})",
    )
    parser.add_argument(
        "--max-run-time",
        type=_positive_float,
        default=defaults.max_run_time,
        metavar="S",
        help=f"largest max_run_time a request may ask for (default {defaults.max_run_time:g})",
    )
    parser.add_argument(
        "--default-run-time",
        type=_positive_float,
        default=defaults.default_run_time,
        metavar="S",
        help="run time for requests that name none (default "
        f"{defaults.default_run_time:g}, never over --max-run-time)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=defaults.max_body_bytes,
        metavar="N",
        help=f"largest request body (default {defaults.max_body_bytes:,})",
    )
    parser.add_argument(
        "--memory-mb",
        type=_positive_int,
        default=defaults.memory_mb,
        metavar="MB",
        help=f"address-space limit of each run (default {defaults.memory_mb})",
    )
    parser.add_argument(
        "--max-output-bytes",
        type=_positive_int,
        default=defaults.max_output_bytes,
        metavar="N",
        help="output kept per stream; a run printing 10 times more is stopped (default "
        f"{defaults.max_output_bytes:,})",
    )
    parser.add_argument(
        "--python",
        default=defaults.python,
        metavar="PATH",
        help="interpreter that runs the code (default: the server's own)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=defaults.cache_dir,
        metavar="DIR",
        help=f"where --allow-install keeps environments (default {defaults.cache_dir})",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def settings_from(args: argparse.Namespace) -> ApiSettings:
    return ApiSettings(
        token_env=args.token_env,
        insecure_no_auth=args.insecure_no_auth,
        allow_install=args.allow_install,
        max_concurrency=args.max_concurrency,
        queue_size=args.queue,
        max_run_time=args.max_run_time,
        default_run_time=args.default_run_time,
        max_body_bytes=args.max_body_bytes,
        memory_mb=args.memory_mb,
        max_output_bytes=args.max_output_bytes,
        python=args.python,
        cache_dir=args.cache_dir,
    )


def api_command(args: argparse.Namespace) -> int:
    """Serve until stopped; 0 after a clean stop, 2 when the setup is refused."""
    try:
        settings = settings_from(args)
        from codeexec_lsp.api.server import serve

        serve(args.host, args.port, settings, log_level=args.log_level)
    except ConfigError as error:
        print(f"codeexec-lsp api: {error}", file=sys.stderr)
        return USAGE_ERROR
    except ImportError as error:
        print(
            f"codeexec-lsp api: {error}. Install the server's dependencies: "
            "pip install 'codeexec-lsp[api]'",
            file=sys.stderr,
        )
        return USAGE_ERROR
    return 0
