"""The jupyter executor against real Jupyter Server and Kernel Gateway processes started
on 127.0.0.1: REST + websocket, the same results as a local kernel, kernels we start
deleted at close, attached kernels shared both ways and never deleted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from codeexec_lsp.execution.jupyter import JupyterExecutor
from codeexec_lsp.results import RunResult
from tests.jupyter.conftest import JupyterServer, free_port, lines_request, request_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", params=["jupyter_server", "kernel_gateway"])
def server(request: pytest.FixtureRequest) -> JupyterServer:
    found: JupyterServer = request.getfixturevalue(request.param)
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jupyter_remote")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(server: JupyterServer) -> AsyncIterator[JupyterExecutor]:
    jupyter = JupyterExecutor(url=server.url, token_env=server.token_env)
    try:
        yield jupyter
    finally:
        await jupyter.close()


async def run(executor: JupyterExecutor, code: str, folder: Path, **settings: object) -> RunResult:
    return await executor.run(request_for(code, folder, **settings))


async def execute_elsewhere(server: JupyterServer, kernel_id: str, code: str) -> dict[str, Any]:
    """Run `code` over a websocket of the test's own (as a notebook would), returning the
    execute_result's data, or {}."""
    session = uuid.uuid4().hex
    url = f"ws://127.0.0.1:{server.url.rsplit(':', 1)[1]}/api/kernels/{kernel_id}/channels"
    headers = {"Authorization": f"token {server.token}"}
    async with connect(url + f"?session_id={session}", additional_headers=headers) as socket:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": session,
            "version": "5.3",
            "date": "",
        }
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
        }
        await socket.send(json.dumps(message))
        data: dict[str, Any] = {}
        replied = idle = False
        while not (replied and idle):
            frame = json.loads(await socket.recv())
            if frame.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = frame["header"]["msg_type"]
            if kind == "execute_result":
                data = frame["content"]["data"]
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and frame["content"]["execution_state"] == "idle":
                idle = True
        return data


async def test_state_real_lines_magics_and_a_figure(
    executor: JupyterExecutor, folder: Path
) -> None:
    first = await run(executor, "remote_value = 20\nprint('on the server')\n", folder)
    assert first.status == "ok", first.message
    assert first.stdout == "on the server\n"
    second = await run(executor, "remote_value * 2 + 2\n", folder)
    assert second.value == "42"
    document = "\n" * 10 + "def broken():\n    return {}['missing']\n\n\nbroken()\n"
    await executor.run(lines_request(document, 11, 12, folder))
    error = await executor.run(lines_request(document, 15, 15, folder))
    assert error.status == "error"
    assert error.error is not None
    assert (error.error.type, error.error.line) == ("KeyError", 12)
    assert error.error.frames[-1].file == str(folder / "module.py")
    magic = await run(executor, "%timeit -n1 -r1 sum(range(5))\n!echo remote-shell\n", folder)
    assert "per loop" in magic.stdout and "remote-shell" in magic.stdout
    figure = await run(
        executor, "import matplotlib.pyplot as plt\nplt.plot([2, 1])\nNone\n", folder
    )
    pictures = [out for out in figure.outputs if "image/png" in out["data"]]
    assert len(pictures) == 1
    assert base64.b64decode(pictures[0]["data"]["image/png"]).startswith(b"\x89PNG")


async def test_a_timeout_interrupts_and_keeps_the_state(
    executor: JupyterExecutor, folder: Path
) -> None:
    await run(executor, "remote_survivor = 'yes'\n", folder)
    result = await run(executor, "while True:\n    pass\n", folder, timeout=1)
    assert result.status == "timeout"
    assert result.error is not None and result.error.line in (1, 2)
    after = await run(executor, "remote_survivor\n", folder)
    assert after.value == "'yes'"


async def test_endless_output_is_interrupted(executor: JupyterExecutor, folder: Path) -> None:
    # A server may also drop output past its own rate limit (Jupyter Server's
    # iopub_data_rate_limit); either way the run ends, bounded.
    result = await run(
        executor, "i = 0\nwhile True:\n    print(i)\n    i += 1\n", folder, max_output_bytes=10_000
    )
    assert result.status == "limit"
    assert len(result.stdout.encode()) < 11_000
    assert (await run(executor, "remote_survivor\n", folder)).value == "'yes'"


async def test_a_dying_kernel_is_reported_and_the_next_run_works(
    executor: JupyterExecutor, folder: Path
) -> None:
    await run(executor, "remote_doomed = 1\n", folder)
    result = await run(executor, "import os\nos._exit(1)\n", folder)
    assert result.status == "error"
    assert result.extra["jupyter"]["state_lost"] is True
    assert "lost" in result.message
    after = await run(executor, "'remote_doomed' in globals()\n", folder)
    assert after.status == "ok", after.message
    assert after.value == "False"


async def test_kernels_we_started_are_deleted_at_close(server: JupyterServer, folder: Path) -> None:
    jupyter = JupyterExecutor(url=server.url, token_env=server.token_env)
    result = await run(jupyter, "1\n", folder)
    kernel_id = result.extra["jupyter"]["kernel_id"]
    assert server.has_kernel(kernel_id)
    await jupyter.close()
    assert not server.has_kernel(kernel_id)


async def test_an_attached_kernel_is_shared_both_ways_and_never_deleted(
    server: JupyterServer, folder: Path
) -> None:
    with server.client() as client:
        kernel_id = client.post("/api/kernels", json={}).json()["id"]
    try:
        await execute_elsewhere(server, kernel_id, "from_the_notebook = 'nb'")
        jupyter = JupyterExecutor(url=server.url, token_env=server.token_env, kernel_id=kernel_id)
        try:
            seen = await run(jupyter, "from_the_notebook\n", folder)
            assert seen.status == "ok", seen.message
            assert seen.value == "'nb'"
            await run(jupyter, "from_the_editor = 6 * 7\n", folder)
            # The notebook's output between our runs is not kept for us.
            await execute_elsewhere(server, kernel_id, "for i in range(2000):\n    print(i)")
            (connection,) = jupyter.connections()
            assert connection.messages.qsize() == 0
            assert (await run(jupyter, "from_the_editor\n", folder)).value == "42"
        finally:
            await jupyter.close()
        assert server.has_kernel(kernel_id)
        data = await execute_elsewhere(server, kernel_id, "from_the_editor")
        assert data.get("text/plain") == "42"
    finally:
        with server.client() as client:
            client.delete(f"/api/kernels/{kernel_id}")


async def test_a_wrong_token_is_one_clear_message(server: JupyterServer, folder: Path) -> None:
    import os

    os.environ["CODEEXEC_TEST_WRONG_TOKEN"] = "not-the-token"
    jupyter = JupyterExecutor(url=server.url, token_env="CODEEXEC_TEST_WRONG_TOKEN")
    try:
        result = await run(jupyter, "1\n", folder)
    finally:
        await jupyter.close()
        del os.environ["CODEEXEC_TEST_WRONG_TOKEN"]
    assert result.status == "internal"
    assert "refused" in result.message and "CODEEXEC_TEST_WRONG_TOKEN" in result.message
    assert "not-the-token" not in result.message


async def test_an_unreachable_server_is_one_clear_message(folder: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    jupyter = JupyterExecutor(url=url)
    try:
        result = await run(jupyter, "1\n", folder)
    finally:
        await jupyter.close()
    assert result.status == "internal"
    assert result.message.startswith(f"Cannot reach the Jupyter server at {url}")


async def test_an_unknown_kernel_id_is_named(server: JupyterServer, folder: Path) -> None:
    missing = str(uuid.uuid4())
    jupyter = JupyterExecutor(url=server.url, token_env=server.token_env, kernel_id=missing)
    try:
        result = await run(jupyter, "1\n", folder)
    finally:
        await jupyter.close()
    assert result.status == "internal"
    assert missing in result.message and "kernelId" in result.message


async def test_the_token_is_not_on_the_servers_command_line(server: JupyterServer) -> None:
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()  # noqa: ASYNC240
    assert server.token.encode() not in cmdline


async def test_restart_clears_the_state_once(executor: JupyterExecutor, folder: Path) -> None:
    await run(executor, "before_restart = 1\n", folder)
    restarted = await executor.restart()
    assert restarted == 1, [slot.note for slot in executor._kernels.values()]
    after = await run(executor, "'before_restart' in globals()\n", folder)
    assert after.status == "ok", after.message
    assert after.value == "False"
    assert after.message == ""  # a restart we asked for is no death to report
    again = await run(executor, "restarted_state = 2\nrestarted_state\n", folder)
    assert again.value == "2" and again.message == ""


async def test_a_dropped_websocket_reconnects_with_the_state_kept(
    executor: JupyterExecutor, folder: Path
) -> None:
    from codeexec_lsp.execution.jupyter.remote import RemoteKernel

    await run(executor, "across_reconnect = 'kept'\n", folder)
    (connection,) = executor.connections()
    assert isinstance(connection, RemoteKernel) and connection._socket is not None
    await connection._socket.close()  # as a proxy or a network blip would drop it
    await asyncio.wait_for(connection.died.wait(), 10)
    after = await run(executor, "across_reconnect\n", folder)
    assert after.status == "ok", after.message
    assert after.value == "'kept'"
    assert after.message == ""
