"""Serve LSP on stdin/stdout, reading stdin on the event loop where it can.

pygls 2's `start_io` reads stdin in a thread pool: every header line and every body is a
`run_in_executor` hop (four per incoming message), which is a large share of a small
request's round trip. When stdin is a pipe or a socket (as every editor starts a language
server) the event loop can watch it directly, with no thread at all. Anything else (a
regular file, a terminal) keeps pygls' reader, which works on any file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # pygls is imported on use: the early start runs before it loads
    from pygls.server import JsonRPCServer

log = logging.getLogger(__name__)

# The longest header line we read whole; a longer one is skipped (it is no header we know).
HEADER_LIMIT = 1 << 20
_NOT_A_HEADER = b"X-Skipped-Overlong-Line: 1\r\n"


def readable_on_loop(stream: BinaryIO) -> bool:
    """Whether the event loop can watch `stream`: a pipe/FIFO or a socket."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class PrefixedReader:
    """A reader that first gives back bytes already read (the first message, read before
    the server existed), then reads on from `reader`."""

    def __init__(self, prefix: bytes, reader: LoopStdinReader) -> None:
        self._prefix = prefix
        self._reader = reader

    async def readline(self) -> bytes:
        if self._prefix:
            end = self._prefix.find(b"\n") + 1 or len(self._prefix)
            line, self._prefix = self._prefix[:end], self._prefix[end:]
            if line.endswith(b"\n"):
                return line
            return line + await self._reader.readline()
        return await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        if self._prefix:
            part, self._prefix = self._prefix[:n], self._prefix[n:]
            return part + (await self._reader.readexactly(n - len(part)) if len(part) < n else b"")
        return await self._reader.readexactly(n)


async def read_first_message(reader: LoopStdinReader) -> bytes:
    """The client's first message exactly as it came (headers and body), or what arrived
    before the stream ended; parsed only as far as framing needs."""
    raw = b""
    length = None
    while True:
        line = await reader.readline()
        raw += line
        if not line:
            return raw
        if line.lower().startswith(b"content-length:"):
            try:
                length = int(line.split(b":", 1)[1])
            except ValueError:
                return raw
        if line in (b"\r\n", b"\n"):
            break
    if length is None or length < 0:
        return raw
    return raw + await reader.readexactly(length)


class LoopStdinReader:
    """pygls' AsyncReader interface over an asyncio stream: EOF reads as b"" (as pygls'
    thread reader returns it), never as an exception that would end the server noisily."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def readline(self) -> bytes:
        try:
            return await self._stream.readline()
        except ValueError:  # longer than HEADER_LIMIT: asyncio dropped it; read on
            return _NOT_A_HEADER

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError:
            return b""


ServerFor = Callable[[LoopStdinReader], Awaitable[tuple["JsonRPCServer", Any]]]


async def _serve_on_loop(
    server_for: ServerFor,
    stdin: BinaryIO,
    stop: threading.Event,
    stdout: BinaryIO | None,
    loaded: list[JsonRPCServer],
) -> None:
    """Serve until `stop` or end of input; `server_for` gives the server and the reader to
    serve from once stdin is watched (it may read from stdin first)."""
    from pygls.io_ import StdoutWriter, run_async

    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=HEADER_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), stdin
    )
    try:
        server, reader = await server_for(LoopStdinReader(stream))
        loaded.append(server)
        server._stop_event = stop  # pygls' shutdown() sets it to end the read loop
        server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        await run_async(
            stop_event=stop,
            reader=reader,
            protocol=server.protocol,
            logger=log,
            error_handler=server._report_server_error,
        )
    finally:
        transport.close()


def _serve(
    server_for: ServerFor,
    fallback: Callable[[], JsonRPCServer],
    stdin: BinaryIO | None,
    stdout: BinaryIO | None,
) -> None:
    stdin = stdin or sys.stdin.buffer
    if not readable_on_loop(stdin):
        fallback().start_io(stdin, stdout)
        return
    stop = threading.Event()
    loaded: list[JsonRPCServer] = []
    try:
        asyncio.run(_serve_on_loop(server_for, stdin, stop, stdout, loaded))
    except BrokenPipeError:
        log.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for server in loaded:
            server.shutdown()  # type: ignore[no-untyped-call]


def serve_stdio(
    server: JsonRPCServer, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
) -> None:
    """What `server.start_io()` does, with the event-loop reader when stdin allows it."""

    async def as_is(reader: LoopStdinReader) -> tuple[JsonRPCServer, Any]:
        return server, reader

    _serve(as_is, lambda: server, stdin, stdout)


def serve_stdio_starting_early(
    load: Callable[[], JsonRPCServer],
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> None:
    """serve_stdio for a server not imported yet: on a pipe or socket, read the client's
    first message, start the session worker it asks for (early_session.py), and import
    the server (`load`) in a thread while the worker boots; then serve, that message first.
    Elsewhere (a file, a terminal) just load and serve."""
    early: set[asyncio.Future[None]] = set()

    async def with_early_start(reader: LoopStdinReader) -> tuple[JsonRPCServer, Any]:
        first = await read_first_message(reader)
        from codeexec_lsp import early_session
        from codeexec_lsp.execution.session import SessionExecutor

        session = SessionExecutor()
        warming = asyncio.ensure_future(early_session.start(first, session))
        early.add(warming)  # held: a task nobody holds may be collected mid-way
        warming.add_done_callback(early.discard)
        server = await asyncio.get_running_loop().run_in_executor(None, load)
        # The server's own warm-up at `initialize` then finds this executor's worker.
        server.executors.session = session  # type: ignore[attr-defined]
        return server, PrefixedReader(first, reader)

    _serve(with_early_start, load, stdin, stdout)
