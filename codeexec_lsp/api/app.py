"""The Starlette application: auth, body and queue limits, and one sandboxed run per request.

It keeps no state between requests (the library cache is a cache: any replica rebuilds it),
so operators can run as many replicas as they like behind any load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive

from codeexec_lsp.api.admission import Admission, QueueFull
from codeexec_lsp.api.contract import (
    SNIPPET_FILENAME,
    ApiError,
    ExecuteRequest,
    library_failure,
    parse_request,
    response_body,
)
from codeexec_lsp.api.libraries import LibraryManager, LibraryProblem
from codeexec_lsp.api.openapi import openapi_document
from codeexec_lsp.api.settings import DEFAULT_TOKEN_ENV, ApiSettings, ConfigError, load_token
from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.execution.environment import scrubbed_environment
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.snippet import Snippet

log = logging.getLogger("codeexec_lsp.api")

# After refusing a body (401, 413) the rest is read and dropped, up to this much and for at
# most DRAIN_TIME_S, so the client gets to read the refusal instead of a connection reset.
# A client that declares more, or sends slower, is answered without waiting for it.
DRAIN_LIMIT = 16 * 1024 * 1024
DRAIN_TIME_S = 5.0


class ClientGone(Exception):
    """The client disconnected; nobody is left to answer."""


class _BodyTimeout(Exception):
    """The body did not arrive in time."""


class _Body:
    """Reads the request body from the raw ASGI channel, so it can be capped (in size and
    in time) and drained."""

    def __init__(self, receive: Receive, timeout: float) -> None:
        self._receive = receive
        self._deadline = time.monotonic() + timeout
        self.done = False
        self.disconnected = False

    async def chunk(self, deadline: float | None = None) -> bytes:
        remaining = (deadline or self._deadline) - time.monotonic()
        try:
            message = await asyncio.wait_for(self._receive(), max(remaining, 0.0))
        except asyncio.TimeoutError:
            raise _BodyTimeout from None
        if message["type"] == "http.disconnect":
            self.done = self.disconnected = True
            return b""
        self.done = not message.get("more_body", False)
        body = message.get("body", b"")
        return body if isinstance(body, bytes) else b""

    async def read(self, limit: int) -> bytes:
        data = bytearray()
        while not self.done:
            data += await self.chunk()
            if len(data) > limit:
                raise _too_large(limit)
        if self.disconnected:
            raise ClientGone
        return bytes(data)

    async def drain(self, declared: int | None) -> None:
        if declared is not None and declared > DRAIN_LIMIT:
            return
        deadline = min(self._deadline, time.monotonic() + DRAIN_TIME_S)
        drained = 0
        with contextlib.suppress(_BodyTimeout):
            while not self.done and drained <= DRAIN_LIMIT:
                drained += len(await self.chunk(deadline))


def _body_timeout(seconds: float) -> ApiError:
    return ApiError(
        408,
        "body_timeout",
        f"The request body did not arrive within {seconds:g} s; send it all at once",
        {"body_timeout_s": seconds},
    )


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"The request body is over this server's limit of {limit:,} bytes; send less code",
        {"max_body_bytes": limit},
    )


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _JSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Code can raise or print strings holding lone surrogates, which UTF-8 cannot
            # carry; they become U+FFFD rather than a failed response.
            return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return _JSONResponse(body, status_code=status, headers=dict(headers or {}))


class ExecuteService:
    def __init__(
        self, settings: ApiSettings, token: str | None, environ: Mapping[str, str]
    ) -> None:
        self.settings = settings
        self._token = token.encode("utf-8") if token is not None else None
        self._environ = environ
        self.admission = Admission(settings.max_concurrency, settings.queue_size)
        self.libraries = LibraryManager(settings)
        self.executor = LocalExecutor()
        self._openapi = openapi_document(settings)

    # --- routes ------------------------------------------------------------------------------

    async def execute(self, request: Request) -> Response:
        started = time.perf_counter()
        body = _Body(request.receive, self.settings.body_timeout_s)
        outcome = "?"
        status = 500
        try:
            try:
                self._authorize(request)
                try:
                    raw = await self._read_body(request, body)
                except _BodyTimeout:
                    raise _body_timeout(self.settings.body_timeout_s) from None
                parsed = parse_request(raw, self.settings)
                answer = await self._answer(request, parsed)
            except ApiError as error:
                await body.drain(_declared_length(request))
                status, outcome = error.status, error.code
                headers = dict(error.headers)
                if not body.done:
                    # The rest of the body is still coming: this connection cannot carry
                    # another request, so say it will close.
                    headers["Connection"] = "close"
                return _json(error.status, error.body(), headers)
            status, outcome = 200, str(answer["status"])
            return _json(200, answer)
        except ClientGone:
            status, outcome = 499, "client_gone"
            return Response(status_code=499)
        finally:
            log.info(
                "POST /execute %d %s in %.0f ms",
                status,
                outcome,
                (time.perf_counter() - started) * 1000,
            )

    async def health(self, request: Request) -> Response:
        return _json(
            200,
            {
                "status": "ok",
                "running": self.admission.running,
                "waiting": self.admission.waiting,
                "max_concurrency": self.settings.max_concurrency,
                "queue_size": self.settings.queue_size,
                "max_run_time": self.settings.max_run_time,
            },
        )

    async def openapi(self, request: Request) -> Response:
        return _json(200, self._openapi)

    # --- the steps of /execute -------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        if self._token is None:
            return
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(
                401,
                "unauthorized",
                "Missing token: send the header `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": 'Bearer realm="codeexec"'},
            )
        # Header values arrive as latin-1 text; their original bytes are what the client sent.
        if not hmac.compare_digest(presented.encode("latin-1"), self._token):
            raise ApiError(
                401,
                "unauthorized",
                "Invalid token",
                headers={"WWW-Authenticate": 'Bearer realm="codeexec", error="invalid_token"'},
            )

    async def _read_body(self, request: Request, body: _Body) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ApiError(400, "invalid_length", "Content-Length is not a number")
            if int(declared) > limit:
                raise _too_large(limit)
        return await body.read(limit)

    async def _answer(self, request: Request, parsed: ExecuteRequest) -> dict[str, Any]:
        """Run, unless the client hangs up first: then the run is stopped and ClientGone raised."""
        work = asyncio.create_task(self._admit_and_run(parsed))
        gone = asyncio.create_task(_wait_for_disconnect(request.receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if work.cancelled():
            raise ClientGone
        return work.result()

    async def _admit_and_run(self, parsed: ExecuteRequest) -> dict[str, Any]:
        try:
            async with self.admission.slot():
                return await self._run(parsed)
        except QueueFull:
            wait = self.settings.retry_after_s
            raise ApiError(
                503,
                "busy",
                f"All {self.settings.max_concurrency} run slots and {self.settings.queue_size} "
                f"queue places are taken; retry after {wait} s",
                headers={"Retry-After": str(wait)},
            ) from None

    async def _run(self, parsed: ExecuteRequest) -> dict[str, Any]:
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="codeexec-api-")
        try:
            env = self._child_environment(workdir)
            try:
                python = await self.libraries.interpreter_for(parsed.libraries, env, workdir)
            except LibraryProblem as problem:
                result = library_failure(str(problem))
            else:
                result = await self.executor.run(self._run_request(parsed, python, workdir, env))
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        if result.status == "internal":
            log.error("could not run a request: %s", result.message)
            raise ApiError(
                500, "internal", "The execution server could not run the code; see its log"
            )
        return response_body(result, parsed, self.settings)

    def _child_environment(self, workdir: str) -> dict[str, str]:
        never = {self.settings.token_env, DEFAULT_TOKEN_ENV}
        env = scrubbed_environment(self._environ, never=never)
        # Files the code writes to its home or temp directory go away with the request.
        env.update(HOME=workdir, TMPDIR=workdir)
        return env

    def _run_request(
        self, parsed: ExecuteRequest, python: str, workdir: str, env: dict[str, str]
    ) -> RunRequest:
        code = parsed.code
        snippet = Snippet(
            code=code,
            path=SNIPPET_FILENAME,
            document=code,
            first_line=0,
            last_line=max(0, len(code.splitlines()) - 1),
            kind="file",
        )
        limits = Limits(
            timeout_s=parsed.max_run_time,
            memory_mb=self.settings.memory_mb,
            max_output_bytes=self.settings.max_output_bytes,
        )
        return RunRequest(
            snippet=snippet,
            python=python,
            cwd=workdir,
            env=env,
            limits=limits,
            interpreter_source="the API server's --python",
            # Every request is code nobody here wrote: the strict box, no network, its own
            # private /tmp and /dev/shm, and a copy-on-write view of its own work dir only
            # (the other requests' dirs are under the /tmp it does not see).
            sandbox="strict",
            network=False,
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json(exc.status_code, {"error": str(exc.detail), "code": code}, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _json(500, {"error": "Internal server error; see the server log", "code": "internal"})


def create_app(
    settings: ApiSettings | None = None, *, environ: Mapping[str, str] | None = None
) -> Starlette:
    """The /execute application. Raises ConfigError when there is no token and no permission
    to run without one, or no interpreter at `--python`. `environ` (default: os.environ, read
    per request) supplies the token and the environment executed code gets, minus secrets."""
    settings = settings if settings is not None else ApiSettings()
    environ = os.environ if environ is None else environ
    if shutil.which(settings.python) is None:
        # Said once at start-up, not as a 500 on every request.
        raise ConfigError(
            f"--python {settings.python!r} is not an executable interpreter: give the Python "
            "that code sent to /execute should run under (default: the server's own)"
        )
    token = load_token(settings, environ)
    if token is None:
        log.warning(
            "authentication is OFF (--insecure-no-auth): anyone who can connect can run code"
        )
    service = ExecuteService(settings, token, environ)
    app = Starlette(
        routes=[
            Route("/execute", service.execute, methods=["POST"]),
            Route("/healthz", service.health, methods=["GET"]),
            Route("/openapi.json", service.openapi, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.service = service
    return app
