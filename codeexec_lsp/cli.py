"""Command line: serve LSP (default), or do the editor's jobs from a shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from codeexec_lsp import __version__, snippet
from codeexec_lsp.actions.run import build_request, untrusted
from codeexec_lsp.api.cli import add_api_arguments, api_command
from codeexec_lsp.config import EXECUTORS, Settings, merge, parse_settings
from codeexec_lsp.execution.environment import looks_secret
from codeexec_lsp.interpreters import find_interpreter
from codeexec_lsp.lines import split_lines
from codeexec_lsp.logs import configure_logging
from codeexec_lsp.results import EXIT_CODES, RunResult

if TYPE_CHECKING:  # `serve` needs none of these: each command imports what it uses
    from codeexec_lsp.execution import sandbox
    from codeexec_lsp.execution.base import RunRequest
    from codeexec_lsp.llm.base import ChatModel

USAGE_ERROR = 2
# What a shell reports for a process ended by SIGPIPE (128 + 13): `cmd | head -1` exits so.
BROKEN_PIPE_EXIT = 141
PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git", ".venv")
TTY_HINT = (
    "codeexec-lsp: this is a language server: an editor starts it and talks LSP on "
    "stdin/stdout (see editors/README.md). To try it here: `codeexec-lsp demo`, or "
    "`codeexec-lsp run FILE`. Waiting for LSP messages (Ctrl-C to quit)."
)
TCP_WARNING = (
    "codeexec-lsp: WARNING: serving LSP on tcp://{address} without authentication: "
    "anyone who can connect to this port can run code as {user} on this machine."
)


class UsageError(Exception):
    pass


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), pointing at --help,
    instead of the whole usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds, e.g. 10 or 0.5, got {text!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="codeexec-lsp",
        description="Run, explain and fix Python selections: an LSP server and a CLI.",
    )
    parser.add_argument("--version", action="version", version=f"codeexec-lsp {__version__}")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="serve LSP on stdio (the default) or TCP")
    serve.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        help="listen on TCP instead of stdio; HOST defaults to 127.0.0.1 (loopback only)",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --tcp HOST that is not loopback: anyone reaching it can run code",
    )
    serve.add_argument("--stdio", action="store_true", help="serve on stdio (the default)")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")

    run = commands.add_parser("run", help="run lines of a file as the editor action does")
    run.add_argument("file", type=Path)
    run.add_argument("--lines", metavar="A-B", help="1-based inclusive range (default: all)")
    run.add_argument("--json", action="store_true", help="print one RunResult JSON object")
    run.add_argument("--executor", choices=EXECUTORS, help="execution backend")
    run.add_argument(
        "--timeout", type=_positive_seconds, metavar="S", help="wall-clock limit in seconds"
    )
    _add_settings_option(run)

    explain = commands.add_parser("explain", help="explain lines with the configured model")
    explain.add_argument("file", type=Path)
    explain.add_argument("--lines", metavar="A-B", help="1-based inclusive range (default: all)")
    explain.add_argument(
        "--run", action="store_true", help="run the lines first and ground the explanation"
    )
    _add_settings_option(explain)

    fix = commands.add_parser("fix", help="ask the model for a fix, verify it by running it")
    fix.add_argument("file", type=Path)
    fix.add_argument("--lines", metavar="A-B", help="1-based inclusive range (default: all)")
    fix.add_argument("--apply", action="store_true", help="write the fix into the file")
    _add_settings_option(fix)

    api = commands.add_parser("api", help="serve the /execute API (the reference server)")
    add_api_arguments(api)

    demo = commands.add_parser(
        "demo", help="run a selection through the real server and show what an editor shows"
    )
    demo.add_argument(
        "file", nargs="?", type=Path, help="a Python file (default: the bundled examples/demo.py)"
    )
    demo.add_argument("--lines", metavar="A-B", help="1-based inclusive range")

    doctor = commands.add_parser("doctor", help="show settings, interpreter and a test run")
    doctor.add_argument("path", nargs="?", type=Path, default=Path.cwd(), help="workspace")
    doctor.add_argument(
        "--llm-request",
        action="store_true",
        help="also send the model one chat request of at most 8 tokens "
        "(the only way to see a used-up quota or a rate limit)",
    )
    _add_settings_option(doctor)
    return parser


def _add_settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        metavar="JSON|FILE",
        help="settings object as in the editor (JSON text or a .json file)",
    )


def _read_settings_option(option: str) -> dict[str, Any]:
    """--settings is a JSON object, or the path of a file holding one. Text that does not
    start like a JSON object is taken as a path, so a mistyped path says so."""
    inline = option.lstrip().startswith("{")
    source = "--settings"
    text = option
    if not inline:
        path = Path(option).expanduser()
        if not path.exists():
            raise UsageError(
                f"--settings {option}: no such file (give a .json file or a JSON object, "
                """e.g. '{"timeout": 10}')"""
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--settings {option}: cannot read it: {exc}") from exc
        source = f"--settings {option}"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{source} must be a JSON object, got {type(raw).__name__}")
    return raw


def _load_settings(option: str | None, overrides: dict[str, Any]) -> Settings:
    """The settings the CLI runs with. Unlike an editor's settings, where a bad value is a
    warning and the server keeps serving, a bad value typed on the command line stops the
    command before anything runs."""
    raw = _read_settings_option(option) if option else {}
    settings, warnings = parse_settings(merge(raw, overrides))
    if warnings:
        problems = [warning.split("; using the default", 1)[0] for warning in warnings]
        raise UsageError("bad setting: " + "; ".join(problems))
    return settings


def _project_root(file: Path) -> Path:
    for folder in [file.parent, *file.parent.parents]:
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return file.parent


def _parse_lines(text: str | None, line_count: int) -> tuple[int, int]:
    if text is None:
        return 1, line_count
    first_text, _, last_text = text.partition("-")
    try:
        first = int(first_text)
        last = int(last_text) if last_text else first
    except ValueError as exc:
        raise UsageError(f"--lines must look like A-B (e.g. 10-20), got {text!r}") from exc
    if first < 1 or last < first:
        raise UsageError(f"--lines {text}: lines are 1-based and A must not exceed B")
    if first > line_count:
        raise UsageError(f"--lines {text}: the file has only {line_count} lines")
    return first, min(last, line_count)


def _location(file_arg: str, result: RunResult) -> str:
    error = result.error
    if error is None or error.line is None:
        return file_arg
    column = "" if error.column is None else f":{error.column + 1}"
    return f"{file_arg}:{error.line}{column}"


def run_command(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.executor:
        overrides["executor"] = args.executor
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    settings = _load_settings(args.settings, overrides)
    file: Path = args.file
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}") from exc
    first, last = _parse_lines(args.lines, max(1, len(split_lines(text))))
    path = str(file.resolve())
    try:
        code = (
            snippet.whole_file(text, path)
            if args.lines is None
            else snippet.for_lines(text, path, first - 1, last - 1)
        )
    except snippet.SnippetError as exc:
        raise UsageError(str(exc)) from exc
    request = build_request(code, settings, _project_root(file.resolve()))
    result = asyncio.run(_run_once(settings, request))
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
        return EXIT_CODES[result.status]
    _print_human(str(args.file), result)
    return EXIT_CODES[result.status]


async def _run_once(settings: Settings, request: RunRequest) -> RunResult:
    from codeexec_lsp.execution.registry import Executors

    executors = Executors(prestart=False)
    try:
        return await executors.for_settings(settings).run(request)
    finally:
        await executors.close()


def _print_human(file_arg: str, result: RunResult) -> None:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.value is not None:
        print(result.value)
    if result.status == "error" and result.error is not None:
        print(f"{_location(file_arg, result)}: {result.error.headline}")
    elif result.status in ("timeout", "limit"):
        label = result.error.type if result.error else result.status
        print(f"{_location(file_arg, result)}: {label}: {result.message}")
    elif result.status == "internal":
        print(f"codeexec-lsp: {result.message}", file=sys.stderr)
    if result.truncated:
        print("codeexec-lsp: output was truncated (maxOutputBytes)", file=sys.stderr)


def _mask(name: str | None) -> str:
    if not name:
        return "(none)"
    return f"{name} ({'set, value hidden' if os.environ.get(name) else 'not set'})"


def _probe_problems(report: sandbox.SandboxReport) -> list[str]:
    """Where the sandbox probe itself failed (as opposed to a layer this machine cannot
    offer, which the report already explains): its child did not start or did not report."""
    from codeexec_lsp.execution import sandbox

    errors = [
        note.removeprefix("error:").strip() for note in report.notes if note.startswith("error:")
    ]
    for name in ("processes", "memory", "network", "filesystem", "mounts"):
        layer = getattr(report, name, None)  # the layers this version of the report has
        if not isinstance(layer, sandbox.Layer) or layer.applied:
            continue
        if "did not report" in layer.detail:
            errors.append(f"{name}: {layer.detail}")
    return errors


def _interpreter_version(python: str) -> tuple[str | None, str]:
    """The interpreter's version, or None and why it could not be started."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit status {done.returncode}: {last}"
    return done.stdout.strip(), ""


def doctor_command(args: argparse.Namespace) -> int:
    """Print what a run gets here; exit 1 if any check failed (the last line says which),
    so scripts and CI can rely on the status."""
    from codeexec_lsp.execution import sandbox

    problems: list[str] = []
    raw = _read_settings_option(args.settings) if args.settings else {}
    settings, warnings = parse_settings(raw)
    workspace: Path = args.path.resolve()
    interpreter = find_interpreter(settings.python, workspace)
    print(f"codeexec-lsp {__version__} (server Python {sys.version.split()[0]})")
    for warning in warnings:
        print(f"FAILED setting: {warning}")
        problems.append(warning.split("; using the default", 1)[0])
    print("settings:")
    print(f"  executor        {settings.executor}")
    print(f"  python          {settings.python or '(auto)'}")
    print(f"  timeout         {settings.timeout:g} s (CPU {settings.cpu_seconds or 'timeout+1'} s)")
    print(f"  memoryMb        {settings.memory_mb}")
    print(f"  maxOutputBytes  {settings.max_output_bytes:,}")
    print(f"  envPassthrough  {', '.join(settings.env_passthrough) or '(none)'}")
    print(f"  sandbox         {settings.sandbox}")
    network = (
        "profile default" if settings.network is None else ("on" if settings.network else "off")
    )
    print(f"  network         {network} for executed code")
    print(f"  http.url        {settings.http.url or '(none)'}")
    print(f"  http.tokenEnv   {_mask(settings.http.token_env)}")
    print(f"  llm.provider    {settings.llm.provider}")
    print(f"  llm.baseUrl     {settings.llm.base_url or '(provider default)'}")
    print(f"  llm.model       {settings.llm.model or '(provider default)'}")
    default_key = "ANTHROPIC_API_KEY" if settings.llm.provider == "anthropic" else "OPENAI_API_KEY"
    print(f"  llm.apiKeyEnv   {_mask(settings.llm.api_key_env or default_key)}")
    hidden = sorted(name for name in os.environ if looks_secret(name))
    print(f"  hidden from executed code: {', '.join(hidden) or '(no secret-looking variables)'}")
    print(f"interpreter: {interpreter.path} ({interpreter.source})")
    version, why = _interpreter_version(interpreter.path)
    if version is None:
        print(f"  FAILED: cannot start it: {why}")
        problems.append(f"the interpreter {interpreter.path} cannot start ({why})")
    else:
        print(f"  version {version}")
    # Both profiles: strict is what fix candidates and /execute requests always get, so
    # what it lacks on this machine matters even when the user's runs are standard.
    for profile in ("standard", "strict"):
        print(f"sandbox, {profile} profile (what executed code gets here):")
        report = sandbox.probe(interpreter.path, str(workspace), profile)
        for line in report.lines():
            print(line)
        probe_errors = _probe_problems(report)
        if probe_errors:
            print(f"  FAILED: the {profile} sandbox probe failed: {'; '.join(probe_errors)}")
            problems.append(f"the {profile} sandbox probe failed")
    code = snippet.for_lines("1+1\n", str(workspace / "<doctor>"), 0, 0)
    request = replace(build_request(code, settings, workspace), network=settings.network)
    started = time.perf_counter()
    result = asyncio.run(_run_once(settings, request))
    elapsed = (time.perf_counter() - started) * 1000
    passed = result.status == "ok" and result.value == "2"
    verdict = "ok" if passed else f"FAILED ({result.status})"
    print(
        f"test run of 1+1 ({result.executor}): {verdict}, value {result.value}, "
        f"{elapsed:.0f} ms round trip (includes starting the interpreter)"
    )
    if not passed:
        headline = result.error.headline if result.error else ""
        problems.append(
            f"the test run of 1+1 {result.status}: {result.message or headline}".strip()
        )
    if result.message:
        print(f"  {result.message}")
    print(f"  cwd {request.cwd}; limits applied: {result.extra.get('limits_applied', {})}")
    applied = result.extra.get("sandbox")
    if isinstance(applied, dict):
        print(f"  sandbox applied: {applied.get('summary')}")
    problems.extend(_check_llm(settings, send_request=args.llm_request))
    if problems:
        print(f"doctor: {len(problems)} problem(s): " + "; ".join(problems))
        return 1
    print("doctor: every check passed")
    return 0


def _check_llm(settings: Settings, *, send_request: bool) -> list[str]:
    """Print the model check's lines; the problem to report when a configured model failed.

    Nothing configured (no key for the official API) is not a failure: people who only run
    code need no model."""
    from codeexec_lsp.llm.probe import check_model_sync  # httpx: imported only when used

    check = check_model_sync(settings.llm, send_request=send_request)
    print("llm check:" if send_request else "llm check (model list only, no tokens spent):")
    for line in check.lines():
        print(f"  {line}")
    if check.contacted and not check.ok:
        return ["the LLM check failed (see the llm check lines)"]
    return []


def _read_lines(args: argparse.Namespace) -> tuple[str, str, int, int]:
    file: Path = args.file
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}") from exc
    first, last = _parse_lines(args.lines, max(1, len(split_lines(text))))
    return text, str(file.resolve()), first - 1, last - 1


def _chat_model(settings: Settings) -> ChatModel:
    from codeexec_lsp.llm.factory import make_chat_model  # httpx: import on use

    llm = settings.llm
    return make_chat_model(llm.provider, llm.base_url, llm.model, llm.api_key_env, llm.timeout)


def explain_command(args: argparse.Namespace) -> int:
    from codeexec_lsp.actions.explain import check_not_excluded, explain
    from codeexec_lsp.cache import TextCache, user_cache_dir
    from codeexec_lsp.code_context import build_context
    from codeexec_lsp.execution.local import LocalExecutor
    from codeexec_lsp.llm.base import LlmError

    settings = _load_settings(args.settings, {})
    text, path, first, last = _read_lines(args)
    last_run = None
    if args.run:
        code = snippet.for_lines(text, path, first, last)
        request = build_request(code, settings, _project_root(Path(path)))
        last_run = asyncio.run(LocalExecutor().run(request))
    printed = 0

    def stream(so_far: str) -> None:
        nonlocal printed
        sys.stdout.write(so_far[printed:])
        sys.stdout.flush()
        printed = len(so_far)

    try:
        check_not_excluded(path, settings.llm.exclude)
        ctx = build_context(text, path, first, last, last_run=last_run)
        cache = TextCache(user_cache_dir() / "explanations")
        result = asyncio.run(explain(_chat_model(settings), ctx, cache, on_text=stream))
    except LlmError as exc:
        print(f"codeexec-lsp: {exc}", file=sys.stderr)
        return 1
    if result.cached or printed < len(result.markdown):
        sys.stdout.write(result.markdown[printed:])
    print()
    return 0


def fix_command(args: argparse.Namespace) -> int:
    from codeexec_lsp.actions.explain import check_not_excluded
    from codeexec_lsp.actions.fix import FixRequest, fix
    from codeexec_lsp.edits import unified_diff
    from codeexec_lsp.execution.local import LocalExecutor
    from codeexec_lsp.llm.base import LlmError

    settings = _load_settings(args.settings, {})
    text, path, first, last = _read_lines(args)
    workspace = _project_root(Path(path))

    async def run_lines(document: str, first_line: int, last_line: int) -> RunResult:
        code = snippet.for_lines(document, path, first_line, last_line)
        # A model's candidate is code the user did not write: the strict box, no network.
        return await LocalExecutor().run(untrusted(build_request(code, settings, workspace)))

    request = FixRequest(
        document=text,
        path=path,
        first_line=first,
        last_line=last,
        attempts=settings.fix.attempts,
        verify=settings.fix.verify,
    )
    try:
        check_not_excluded(path, settings.llm.exclude)
        outcome = asyncio.run(fix(_chat_model(settings), request, run_lines))
    except LlmError as exc:
        print(f"codeexec-lsp: {exc}", file=sys.stderr)
        return 1
    if outcome.new_document is not None:
        sys.stdout.write(unified_diff(str(args.file), text, outcome.new_document))
    print(outcome.message, file=sys.stderr)
    if args.apply and outcome.should_apply and outcome.new_document is not None:
        Path(path).write_text(outcome.new_document, encoding="utf-8")
        print(f"wrote {args.file}", file=sys.stderr)
    nothing_to_fix = outcome.attempts == 0
    return 0 if outcome.should_apply or nothing_to_fix else 1


def demo_command(args: argparse.Namespace) -> int:
    from codeexec_lsp.demo import demo_file, run_demo

    file: Path = args.file or demo_file()
    if not file.is_file():
        raise UsageError(f"{file} not found: name a Python file, or omit it for the demo file")
    lines = None
    if args.lines:
        lines = _parse_lines(args.lines, len(split_lines(file.read_text(encoding="utf-8"))))
    return run_demo(file, lines)


def _tcp_address(option: str, allow_remote: bool) -> tuple[str, int]:
    """`PORT` or `HOST:PORT` (`[::1]:PORT` for IPv6). Loopback unless `allow_remote`: a
    code-running server must not be reachable from the network by accident."""
    host, _, port_text = option.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(
            f"--tcp needs PORT or HOST:PORT (e.g. 2087 or 127.0.0.1:2087), got {option!r}"
        )
    if not allow_remote and not _is_loopback(host):
        raise UsageError(
            f"--tcp {option}: {host} is not a loopback address; anyone who can reach it could "
            "run code on this machine. Use 127.0.0.1, or add --allow-remote if you mean it"
        )
    return host, int(port_text)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _current_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return "this user"


def serve_command(args: argparse.Namespace) -> int:
    tcp = getattr(args, "tcp", None)
    address = _tcp_address(tcp, getattr(args, "allow_remote", False)) if tcp else None
    configure_logging(verbose=getattr(args, "verbose", False))
    if address is None:
        from codeexec_lsp.stdio import serve_stdio_starting_early

        if sys.stdin.isatty():
            print(TTY_HINT, file=sys.stderr, flush=True)
        serve_stdio_starting_early(_load_server)
        return 0
    from codeexec_lsp.server import server

    host, port = address
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(TCP_WARNING.format(address=shown, user=_current_user()), file=sys.stderr, flush=True)
    server.start_tcp(host, port)
    return 0


def _load_server() -> Any:
    """The language server, imported on demand: pygls and lsprotocol are most of the
    start-up, which the stdio path overlaps with the session worker's start."""
    from codeexec_lsp.server import server

    return server


def _quiet_on_closed_pipe() -> int:
    """The reader of our output went away (`codeexec-lsp run … | head -1`): stop quietly as
    Unix tools do. Point stdout/stderr at /dev/null so the interpreter's final flush cannot
    raise again, and exit as a process killed by SIGPIPE would look to a shell."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return BROKEN_PIPE_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "run": run_command,
        "doctor": doctor_command,
        "demo": demo_command,
        "explain": explain_command,
        "fix": fix_command,
        "api": api_command,
    }
    handler = handlers.get(args.command or "serve", serve_command)
    try:
        status = handler(args)
        # Inside the try: a closed pipe shows up here at the latest. `serve` may end with
        # stdout already closed (the editor hung up), which is nothing to report.
        if not sys.stdout.closed:
            sys.stdout.flush()
        return status
    except UsageError as exc:
        print(f"codeexec-lsp: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        return _quiet_on_closed_pipe()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
