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
from typing import BinaryIO

from pygls.io_ import StdoutWriter, run_async
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


async def _serve_on_loop(server: JsonRPCServer, stdin: BinaryIO, stop: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=HEADER_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), stdin
    )
    try:
        await run_async(
            stop_event=stop,
            reader=LoopStdinReader(stream),
            protocol=server.protocol,
            logger=log,
            error_handler=server._report_server_error,
        )
    finally:
        transport.close()


def serve_stdio(
    server: JsonRPCServer, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
) -> None:
    """What `server.start_io()` does, with the event-loop reader when stdin allows it."""
    stdin = stdin or sys.stdin.buffer
    if not readable_on_loop(stdin):
        server.start_io(stdin, stdout)
        return
    stop = threading.Event()
    server._stop_event = stop  # pygls' shutdown() sets it to end the read loop
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    try:
        asyncio.run(_serve_on_loop(server, stdin, stop))
    except BrokenPipeError:
        log.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()  # type: ignore[no-untyped-call]
