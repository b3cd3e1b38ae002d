"""The early start's pure parts: framing the first message, replaying it to pygls, and
reading an `initialize` the way the server will (settings layer, folder order)."""

from __future__ import annotations

import asyncio
import json

from codeexec_lsp.early_session import folders_of, initialize_params
from codeexec_lsp.stdio import LoopStdinReader, PrefixedReader, read_first_message


def framed(payload: object) -> bytes:
    body = json.dumps(payload).encode()
    return (
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc\r\n\r\n" % len(body) + body
    )


def reader_over(data: bytes) -> LoopStdinReader:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    return LoopStdinReader(stream)


def test_the_first_message_is_read_whole_and_replayed_before_the_rest() -> None:
    first = framed({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
    second = framed({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    async def scenario() -> list[bytes]:
        reader = reader_over(first + second)
        got = await read_first_message(reader)
        assert got == first
        replay = PrefixedReader(got, reader)
        # pygls reads header lines, then the body by its length: exactly the same bytes.
        seen = []
        for _ in range(2):
            while (line := await replay.readline()) not in (b"\r\n", b""):
                seen.append(line)
                if line.startswith(b"Content-Length"):
                    length = int(line.split(b":")[1])
            seen.append(await replay.readexactly(length))
        seen.append(await replay.readline())
        return seen

    seen = asyncio.run(scenario())
    assert b"".join(seen) == (first + second).replace(b"\r\n\r\n", b"\r\n")
    assert seen[-1] == b""  # then end of input, as pygls expects it


def test_a_body_split_between_prefix_and_stream_is_joined() -> None:
    async def scenario() -> bytes:
        reader = reader_over(b"defgh")
        replay = PrefixedReader(b"abc", reader)
        return await replay.readexactly(6)

    assert asyncio.run(scenario()) == b"abcdef"


def test_a_truncated_or_unframed_start_is_passed_on_as_it_came() -> None:
    async def first_of(data: bytes) -> bytes:
        return await read_first_message(reader_over(data))

    assert asyncio.run(first_of(b"")) == b""
    # A body cut short by the end of input ends there, as pygls' own reader sees it.
    assert asyncio.run(first_of(b"Content-Length: 10\r\n\r\n{}")) == b"Content-Length: 10\r\n\r\n"
    assert asyncio.run(first_of(b"Content-Length: x\r\n\r\n{}")) == b"Content-Length: x\r\n"


def test_only_an_initialize_request_is_read_for_settings() -> None:
    params = {"rootUri": "file:///w", "initializationOptions": {"executor": "session"}}
    assert initialize_params(framed({"id": 1, "method": "initialize", "params": params})) == params
    assert initialize_params(framed({"id": 1, "method": "shutdown"})) is None
    assert initialize_params(b"Content-Length: 3\r\n\r\n{x}") is None
    assert initialize_params(framed({"id": 1, "method": "initialize", "params": [1]})) is None


def test_folders_come_in_the_server_s_order() -> None:
    params = {
        "workspaceFolders": [
            {"uri": "file:///work/a%20b", "name": "a b"},
            {"uri": "untitled:x", "name": "x"},
            {"name": "no uri"},
        ],
        "rootUri": "file:///work/root",
        "rootPath": "/ignored/when/rootUri",
    }
    assert folders_of(params) == ["/work/a b", "/work/root"]
    assert folders_of({"rootPath": "/old/client"}) == ["/old/client"]
    assert folders_of({"workspaceFolders": None, "rootUri": None}) == []
