"""The /execute body reader (api/app.py `_Body`, `_read_body`, `_declared_length`) on the
ASGI channel itself: the messages a server hands the application, scripted one by one.

The HTTP tests (test_api_server.py, test_api_abuse.py) check what a client sees through
uvicorn; here each edge of the size and time caps is pinned down exactly, which a real
socket cannot do (it decides how a body is split into messages)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from starlette.requests import Request

from codeexec_lsp.api import app
from codeexec_lsp.api.contract import ApiError
from codeexec_lsp.api.settings import ApiSettings


class Channel:
    """An ASGI `receive` that hands out `messages` in order, then waits for ever."""

    def __init__(self, messages: Iterable[dict[str, Any]]) -> None:
        self.messages = list(messages)
        self.received = 0

    async def __call__(self) -> dict[str, Any]:
        if self.received >= len(self.messages):
            await asyncio.Event().wait()
        self.received += 1
        return self.messages[self.received - 1]


def part(body: Any, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


DISCONNECT = {"type": "http.disconnect"}


async def test_a_body_in_parts_is_read_whole() -> None:
    channel = Channel([part(b"ab"), part(b""), part(b"cd", more=False)])
    body = app._Body(channel, 5.0)
    assert await body.read(10) == b"abcd"
    assert body.done and not body.disconnected
    assert channel.received == 3


async def test_a_last_message_without_more_body_ends_the_body() -> None:
    body = app._Body(Channel([{"type": "http.request", "body": b"x"}]), 5.0)
    assert await body.read(10) == b"x"
    assert body.done


async def test_a_message_without_a_body_or_with_one_that_is_not_bytes_adds_nothing() -> None:
    channel = Channel(
        [{"type": "http.request", "more_body": True}, part("text"), part(b"!", False)]
    )
    assert await app._Body(channel, 5.0).read(10) == b"!"


async def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    assert await app._Body(Channel([part(b"12345", more=False)]), 5.0).read(5) == b"12345"
    channel = Channel([part(b"123"), part(b"456"), part(b"789", more=False)])
    body = app._Body(channel, 5.0)
    with pytest.raises(ApiError) as refused:
        await body.read(5)
    assert refused.value.status == 413
    assert refused.value.body() == {
        "error": "The request body is over this server's limit of 5 bytes; send less code",
        "code": "body_too_large",
        "detail": {"max_body_bytes": 5},
    }
    # Refused as soon as it was over: the rest was not waited for.
    assert channel.received == 2 and not body.done


async def test_the_limit_in_the_refusal_is_written_with_thousands_separators() -> None:
    error = app._too_large(1_048_576)
    assert error.message == (
        "The request body is over this server's limit of 1,048,576 bytes; send less code"
    )


async def test_a_client_that_hangs_up_mid_body_is_gone() -> None:
    body = app._Body(Channel([part(b"ab"), DISCONNECT]), 5.0)
    with pytest.raises(app.ClientGone):
        await body.read(2)  # the hang-up adds nothing: the body is not over the limit
    assert body.done and body.disconnected


async def test_a_body_that_stops_arriving_times_out_at_its_deadline() -> None:
    body = app._Body(Channel([part(b"ab")]), 0.05)
    with pytest.raises(app._BodyTimeout):
        await body.read(10)


class LateChannel(Channel):
    """A channel whose every message comes `delay` seconds after it is asked for."""

    def __init__(self, messages: Iterable[dict[str, Any]], delay: float) -> None:
        super().__init__(messages)
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        return await super().__call__()


async def test_once_the_deadline_has_passed_the_body_is_not_waited_for_any_longer() -> None:
    body = app._Body(LateChannel([part(b"ab", more=False)], delay=0.2), -1.0)
    with pytest.raises(app._BodyTimeout):
        await body.chunk()


def test_the_timeout_answer_names_the_time_and_what_to_do() -> None:
    error = app._body_timeout(2.5)
    assert (error.status, error.code) == (408, "body_timeout")
    assert error.message == "The request body did not arrive within 2.5 s; send it all at once"
    assert error.detail == {"body_timeout_s": 2.5}
    assert app._body_timeout(30.0).message.startswith("The request body did not arrive within 30 s")


async def test_after_a_refusal_the_rest_of_the_body_is_read_and_dropped() -> None:
    channel = Channel([part(b"a"), part(b"b"), part(b"c", more=False), part(b"next request")])
    body = app._Body(channel, 5.0)
    await body.drain(3)
    assert body.done
    assert channel.received == 3


async def test_a_body_declared_over_the_drain_limit_is_not_waited_for() -> None:
    channel = Channel([part(b"a", more=False)])
    await app._Body(channel, 5.0).drain(app.DRAIN_LIMIT + 1)
    assert channel.received == 0
    channel = Channel([part(b"a", more=False)])
    await app._Body(channel, 5.0).drain(app.DRAIN_LIMIT)
    assert channel.received == 1


async def test_draining_stops_once_past_the_drain_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "DRAIN_LIMIT", 4)
    channel = Channel([part(b"12"), part(b"34"), part(b"5"), part(b"6"), part(b"7", more=False)])
    body = app._Body(channel, 5.0)
    await body.drain(None)
    # 2, 4 (not over yet), 5: over the limit, so the rest is left unread.
    assert channel.received == 3
    assert not body.done


async def test_draining_gives_up_quietly_when_the_rest_does_not_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "DRAIN_TIME_S", 0.05)
    channel = Channel([part(b"a")])
    body = app._Body(channel, 60.0)
    await asyncio.wait_for(body.drain(None), 10)  # the 0.05 s cap, not the 60 s deadline
    assert channel.received == 1 and not body.done


async def test_draining_a_body_already_read_asks_for_nothing() -> None:
    channel = Channel([part(b"a", more=False), part(b"next request")])
    body = app._Body(channel, 5.0)
    await body.read(10)
    await body.drain(None)
    assert channel.received == 1


def request_with(headers: dict[str, str], channel: Channel) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/execute",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }
    return Request(scope, channel)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"Content-Length": "42"}, 42),
        ({"Content-Length": "0"}, 0),
        ({"Content-Length": "4x"}, None),
    ],
)
def test_the_declared_length_is_read_when_it_is_a_number(
    header: dict[str, str], expected: int | None
) -> None:
    assert app._declared_length(request_with(header, Channel([]))) == expected


def test_no_declared_length_is_none() -> None:
    assert app._declared_length(request_with({}, Channel([]))) is None


def service(max_body_bytes: int) -> app.ExecuteService:
    return app.ExecuteService(ApiSettings(max_body_bytes=max_body_bytes), "token", {})


async def test_a_body_declared_over_the_limit_is_refused_before_any_of_it_is_read() -> None:
    channel = Channel([part(b"x" * 11, more=False)])
    request = request_with({"Content-Length": "11"}, channel)
    with pytest.raises(ApiError) as refused:
        await service(10)._read_body(request, app._Body(channel, 5.0))
    assert (refused.value.status, refused.value.code) == (413, "body_too_large")
    assert refused.value.detail == {"max_body_bytes": 10}
    assert channel.received == 0


async def test_a_body_declared_at_the_limit_is_read() -> None:
    channel = Channel([part(b"x" * 10, more=False)])
    request = request_with({"Content-Length": "10"}, channel)
    assert await service(10)._read_body(request, app._Body(channel, 5.0)) == b"x" * 10


async def test_a_declared_length_that_is_not_a_number_is_refused() -> None:
    channel = Channel([part(b"x", more=False)])
    request = request_with({"Content-Length": "1e3"}, channel)
    with pytest.raises(ApiError) as refused:
        await service(10)._read_body(request, app._Body(channel, 5.0))
    assert refused.value.status == 400
    assert refused.value.body() == {
        "error": "Content-Length is not a number",
        "code": "invalid_length",
    }


async def test_a_body_without_a_declared_length_is_capped_as_it_arrives() -> None:
    channel = Channel([part(b"x" * 6), part(b"x" * 6, more=False)])
    request = request_with({"Transfer-Encoding": "chunked"}, channel)
    with pytest.raises(ApiError) as refused:
        await service(10)._read_body(request, app._Body(channel, 5.0))
    assert refused.value.status == 413
    assert channel.received == 2
