"""Abuse of the /execute server over real HTTP on 127.0.0.1: each attempt gets the right
status code quickly, and the server keeps serving ordinary requests afterwards.

test_api_server.py covers the contract, missing and wrong tokens, a small body limit and
the queue; this file adds what an attacker would try: 10 MB bodies (declared and streamed),
deeply nested JSON, bodies that trickle in (slowloris), a hundred requests at once, and
absurd limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from codeexec_lsp.api.settings import ApiSettings, ConfigError
from tests.fakes.api_fixtures import AUTH, TOKEN, StartApi, start_api_fixture  # noqa: F401
from tests.fakes.api_harness import ThreadedApi

TEN_MB = 10 * 1024 * 1024


def post(api: ThreadedApi, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", AUTH)
    with httpx.Client(timeout=30) as client:
        return client.post(f"{api.url}/execute", **kwargs)


def still_serves(api: ThreadedApi) -> None:
    response = post(api, json={"code": "print(6 * 7)"})
    assert response.status_code == 200 and response.json()["output"] == "42\n", response.text


def expect_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and response.json()["error"]


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}], ids=["none", "wrong"])
def test_no_or_wrong_token_with_a_big_body_is_401_at_once(
    start_api: StartApi, headers: dict[str, str]
) -> None:
    api = start_api()
    response = post(api, content=b"x" * TEN_MB, headers=headers)
    expect_error(response, 401, "unauthorized")
    still_serves(api)


# --- big bodies --------------------------------------------------------------------------------


def test_a_ten_megabyte_body_is_413_declared_or_streamed(start_api: StartApi) -> None:
    api = start_api()  # the default limit: 1,000,000 bytes
    code = "x = 1\n" * (TEN_MB // 6)
    declared = post(api, json={"code": code})
    expect_error(declared, 413, "body_too_large")
    assert declared.json()["detail"]["max_body_bytes"] == ApiSettings().max_body_bytes

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server has to count
        for _ in range(10):
            yield b" " * (1024 * 1024)

    streamed = post(api, content=chunks())
    expect_error(streamed, 413, "body_too_large")
    still_serves(api)


def test_an_absurd_content_length_is_refused_without_waiting_for_it(start_api: StartApi) -> None:
    api = start_api()
    # h11 (under uvicorn) refuses a Content-Length that is not a number, or absurdly long,
    # with a bare 400 before the app sees it; the app refuses a number over the limit.
    for declared, statuses in [
        (str(10**15), {413}),
        ("9" * 400, {400, 413}),
        ("-1", {400}),
        ("lots", {400}),
    ]:
        reply = raw_exchange(
            api.port,
            b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {declared}\r\n\r\n".encode()
            + b'{"code": "1"}',
        )
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
        assert status in statuses, reply[:300]
        if status == 413:
            assert b"body_too_large" in reply and b"connection: close" in reply.lower()
    still_serves(api)


# --- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 200_000 + "]" * 200_000,
        '{"code": "1", "environment": {"libraries": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        '{"code": "1", "x": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}",
    ],
    ids=["arrays", "inside-a-field", "objects"],
)
def test_deeply_nested_json_is_400(start_api: StartApi, body: str) -> None:
    api = start_api()
    expect_error(post(api, content=body.encode()), 400, "invalid_json")
    still_serves(api)


def test_nesting_that_parses_is_checked_like_any_other_value(start_api: StartApi) -> None:
    api = start_api()
    body = {"code": "1", "environment": {"libraries": [[[["numpy"]]]]}}
    expect_error(post(api, json=body), 422, "invalid_request")
    # Fields the contract does not know are ignored, however deep (clients may add fields).
    nested = '{"code": "1", "execution_options": ' + '{"a": ' * 500 + "1" + "}" * 500 + "}"
    assert post(api, content=nested.encode()).json()["value"] == "1"
    still_serves(api)


# --- slow bodies -------------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 20.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        return receive_all(connection)


def receive_all(connection: socket.socket) -> bytes:
    reply = b""
    with contextlib.suppress(OSError):
        while chunk := connection.recv(65536):
            reply += chunk
    return reply


def test_a_body_that_trickles_in_is_cut_off_and_others_are_served(start_api: StartApi) -> None:
    api = start_api(body_timeout_s=1.5)
    head = (
        "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api.port), timeout=20) as slow:
        slow.sendall(head + b'{"code": "')
        still_serves(api)  # the trickling client holds no run slot
        reply = b""
        for _ in range(40):  # one byte every 0.25 s: 10 s if the server waited for it all
            try:
                slow.sendall(b"x")
            except OSError:
                break  # the server hung up
            slow.settimeout(0.25)
            with contextlib.suppress(TimeoutError):
                chunk = slow.recv(65536)
                reply += chunk
                if not chunk or b"\r\n\r\n" in reply:
                    break
        slow.settimeout(5)
        reply += receive_all(slow)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    assert b"body_timeout" in reply
    still_serves(api)


def test_a_slow_body_with_a_wrong_token_is_not_waited_for(start_api: StartApi) -> None:
    api = start_api(body_timeout_s=1.5)
    head = (
        b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        b"Authorization: Bearer wrong\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", api.port), timeout=20) as slow:
        slow.sendall(head + b"{")
        reply = receive_all(slow)  # the 401, then the server closes within the body timeout
        assert reply.startswith(b"HTTP/1.1 401"), reply[:300]
    still_serves(api)


def test_the_body_timeout_must_be_positive() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="body_timeout_s"):
            ApiSettings(body_timeout_s=bad)


# --- many at once ------------------------------------------------------------------------------


async def test_a_hundred_concurrent_requests_are_run_or_refused_quickly(
    start_api: StartApi,
) -> None:
    api = start_api(max_concurrency=2, queue_size=8, retry_after_s=3)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=api.url, headers=AUTH, timeout=60, limits=limits
    ) as client:
        answers = await asyncio.gather(
            *(client.post("/execute", json={"code": f"print({i})"}) for i in range(100))
        )
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) <= {200, 503}, statuses
        ran = [answer for answer in answers if answer.status_code == 200]
        refused = [answer for answer in answers if answer.status_code == 503]
        # 2 running and 8 waiting at any moment: the rest are turned away at once.
        assert len(ran) >= 10 and refused
        assert all(answer.headers["retry-after"] == "3" for answer in refused)
        assert all(answer.json()["code"] == "busy" for answer in refused)
        for answer in ran:
            index = int(json.loads(answer.request.content)["code"][6:-1])
            assert answer.json()["output"] == f"{index}\n"
        health = (await client.get("/healthz")).json()
        assert (health["running"], health["waiting"]) == (0, 0)
    still_serves(api)


# --- absurd limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_run_time",
    ["1e308", "Infinity", "-Infinity", "NaN", "1" + "0" * 400, "1e400"],
    ids=["1e308", "infinity", "minus-infinity", "nan", "400-digit-int", "1e400"],
)
def test_a_huge_run_time_is_422(start_api: StartApi, max_run_time: str) -> None:
    api = start_api()
    body = '{"code": "1", "execution_options": {"max_run_time": ' + max_run_time + "}}"
    response = post(api, content=body.encode())
    expect_error(response, 422, "invalid_request")
    assert response.json()["detail"]["field"] == "execution_options.max_run_time"
    still_serves(api)


def test_too_many_libraries_is_422(start_api: StartApi) -> None:
    api = start_api()
    body = {"code": "1", "environment": {"libraries": [f"lib{i}" for i in range(10_000)]}}
    response = post(api, json=body)
    expect_error(response, 422, "invalid_request")
    assert response.json()["detail"]["max_items"] == ApiSettings().max_libraries
    still_serves(api)
