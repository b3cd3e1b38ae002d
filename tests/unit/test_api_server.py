"""The /execute reference server over real HTTP on 127.0.0.1: contract, auth, limits, queue,
libraries, OpenAPI, and a property-based fuzz run that must never see a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeexec_lsp.api.admission import Admission, QueueFull
from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.libraries import LibraryManager, environment_key
from codeexec_lsp.api.settings import ApiSettings, ConfigError, check_bind
from tests.fakes.api_fixtures import AUTH, TOKEN, StartApi, start_api_fixture  # noqa: F401
from tests.fakes.api_harness import ThreadedApi, build_wheel, unused_port


def execute(api: ThreadedApi, body: Any, headers: dict[str, Any] | None = None) -> httpx.Response:
    with httpx.Client(timeout=20) as client:
        return client.post(
            f"{api.url}/execute", json=body, headers=AUTH if headers is None else headers
        )


# --- the contract ----------------------------------------------------------------------------


def test_success_has_output_and_extras(start_api: StartApi) -> None:
    response = execute(start_api(), {"code": "print('hi')\n6 * 7\n", "language": "python"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and body["output"] == "hi\n" and body["error"] == ""
    assert body["value"] == "42" and body["error_info"] is None
    assert body["run_status"] == "ok" and body["truncated"] is False
    assert body["duration_ms"] >= 0 and body["max_run_time"] == 5.0


def test_error_has_traceback_text_and_structure(start_api: StartApi) -> None:
    code = "import sys\nprint('before')\nprint('warn', file=sys.stderr)\nx = 1 / 0\n"
    body = execute(start_api(), {"code": code}).json()
    assert body["status"] == "error" and body["output"] == "before\n"
    assert body["error"].startswith("warn\nTraceback (most recent call last):")
    assert 'File "<string>", line 4' in body["error"]
    assert body["error"].rstrip().endswith("ZeroDivisionError: division by zero")
    assert body["stderr"] == "warn\n"
    info = body["error_info"]
    assert (info["type"], info["line"], info["column"]) == ("ZeroDivisionError", 4, 4)
    assert info["frames"][-1] == {
        "file": "<string>",
        "line": 4,
        "name": "<module>",
        "column": 4,
        "end_line": 4,
        "end_column": 9,
    }


def test_syntax_error_is_located(start_api: StartApi) -> None:
    info = execute(start_api(), {"code": "x = 1\ny = (\n"}).json()["error_info"]
    assert info["type"] == "SyntaxError" and info["line"] == 2


def test_timeout_says_where_it_stopped(start_api: StartApi) -> None:
    code = "import time\nwhile True:\n    time.sleep(0.01)\n"
    body = execute(start_api(), {"code": code, "execution_options": {"max_run_time": 1}}).json()
    assert body["status"] == "timeout" and body["run_status"] == "timeout"
    assert "max_run_time (1 s)" in body["error"]
    assert body["error_info"]["type"] == "TimeoutError"
    assert body["error_info"]["line"] in (2, 3)


def test_output_limit_is_an_error_with_a_reason(start_api: StartApi) -> None:
    api = start_api(max_output_bytes=1000)
    body = execute(api, {"code": "while True:\n    print('x' * 1000)\n"}).json()
    assert body["status"] == "error" and body["run_status"] == "limit"
    assert "OutputLimitExceeded" in body["error"] and body["truncated"] is True


def test_lone_surrogates_from_the_code_do_not_break_the_answer(start_api: StartApi) -> None:
    response = execute(start_api(), {"code": 'raise ValueError("\\ud800")'})
    assert response.status_code == 200
    assert response.json()["error_info"]["message"] == "\ufffd"


def test_defaults_apply_when_options_are_missing(start_api: StartApi) -> None:
    body = execute(start_api(default_run_time=2.0), {"code": "1"}).json()
    assert body["status"] == "success" and body["max_run_time"] == 2.0


def test_each_request_gets_a_fresh_process_and_directory(start_api: StartApi) -> None:
    api = start_api()
    code = "import os\nopen('mark', 'w').write('x')\nprint(os.getcwd())\nleft = 1\n"
    first = execute(api, {"code": code}).json()
    assert first["status"] == "success"
    workdir = first["output"].strip()
    assert not os.path.exists(workdir)  # removed after the request
    second = execute(api, {"code": "left"}).json()
    assert second["error_info"]["type"] == "NameError"


# --- secrets -----------------------------------------------------------------------------------


def test_token_never_reaches_executed_code(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A token variable whose name does not look secret: only the server's own rule hides it.
    canary = "canary-4b1d7e0f9a2c"
    monkeypatch.setenv("RUNNER_PASSPHRASE", canary)
    api = start_api(token_env="RUNNER_PASSPHRASE")
    code = "import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ','rb').read())\n"
    body = execute(api, {"code": code}, {"Authorization": f"Bearer {canary}"}).json()
    assert body["status"] == "success" and "PATH" in body["output"]
    assert canary not in body["output"] and "RUNNER_PASSPHRASE" not in body["output"]
    assert TOKEN not in body["output"]  # CODEEXEC_API_TOKEN is never passed either


def test_served_process_refuses_unsafe_setups() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CODEEXEC_API_TOKEN"}
    command = [sys.executable, "-m", "codeexec_lsp.api", "--port", str(unused_port())]
    no_token = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert no_token.returncode == 2 and "CODEEXEC_API_TOKEN" in no_token.stderr
    exposed = subprocess.run(
        [*command, "--host", "0.0.0.0", "--insecure-no-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert exposed.returncode == 2 and "loopback" in exposed.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_server_process_is_made_non_dumpable() -> None:
    # Non-dumpable: code running as the same user cannot read /proc/<server>/environ.
    probe = (
        "import ctypes\n"
        "from codeexec_lsp.api.server import harden_process\n"
        "assert harden_process()\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "0", done.stderr


def test_check_bind_rules() -> None:
    with pytest.raises(ConfigError):
        check_bind("127.0.0.1", ApiSettings(), environ={})
    with pytest.raises(ConfigError, match="loopback"):
        check_bind("0.0.0.0", ApiSettings(insecure_no_auth=True), environ={})
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind(host, ApiSettings(insecure_no_auth=True), environ={})
    check_bind("0.0.0.0", ApiSettings(), environ={"CODEEXEC_API_TOKEN": TOKEN})
    with pytest.raises(ConfigError):
        create_app(ApiSettings(), environ={})


def test_served_process_runs_and_keeps_the_token_out_of_its_log(tmp_path: Path) -> None:
    port = unused_port()
    env = {**os.environ, "CODEEXEC_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "codeexec_lsp.api", "--port", str(port), "--queue", "2"]
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, stderr=log, stdout=log)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline and server.poll() is None, log_path.read_text()
                time.sleep(0.1)
            ok = httpx.post(f"{url}/execute", json={"code": "print(1)"}, headers=AUTH, timeout=20)
            assert ok.json()["output"] == "1\n"
            snoop = "import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())"
            snooped = httpx.post(f"{url}/execute", json={"code": snoop}, headers=AUTH, timeout=20)
            if os.geteuid() != 0:  # root reads any process's memory: nothing can stop that
                assert TOKEN not in snooped.text
            wrong = httpx.post(
                f"{url}/execute",
                json={"code": TOKEN},
                headers={"Authorization": f"Bearer {TOKEN}x"},
                timeout=20,
            )
            assert wrong.status_code == 401
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    text = log_path.read_text()
    assert "POST /execute 200 success" in text and "401 unauthorized" in text
    if sys.platform.startswith("linux"):
        assert "non-dumpable" not in text  # the hardening worked
    assert TOKEN not in text


# --- auth and limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}extra"},
        {"Authorization": "Bearer ümlaut".encode()},
    ],
    ids=["none", "wrong", "not-bearer", "longer", "non-ascii"],
)
def test_missing_or_wrong_token_is_401(start_api: StartApi, headers: dict[str, Any]) -> None:
    response = execute(start_api(), {"code": "print('ran')"}, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized" and response.json()["error"]


def test_insecure_no_auth_needs_no_token(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEEXEC_API_TOKEN")
    api = start_api(insecure_no_auth=True)
    assert execute(api, {"code": "print(2)"}, {}).json()["output"] == "2\n"


def test_oversized_body_is_413(start_api: StartApi) -> None:
    api = start_api(max_body_bytes=2000)
    big = {"code": "x = 1\n" * 1000}
    declared = execute(api, big)
    assert declared.status_code == 413
    assert declared.json()["code"] == "body_too_large"
    assert declared.json()["detail"]["max_body_bytes"] == 2000

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count itself
        for _ in range(10):
            yield b" " * 500
        yield json.dumps({"code": "1"}).encode()

    with httpx.Client(timeout=20) as client:
        streamed = client.post(f"{api.url}/execute", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert execute(api, {"code": "print(3)"}).json()["output"] == "3\n"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "1", "language": "javascript"}, "language"),
        ({"code": "1", "execution_options": {"max_run_time": 6}}, "execution_options.max_run_time"),
        (
            {"code": "1", "execution_options": {"max_run_time": -1}},
            "execution_options.max_run_time",
        ),
        ({"code": "1", "execution_options": {"max_run_time": 0}}, "execution_options.max_run_time"),
        (
            {"code": "1", "execution_options": {"max_run_time": "5"}},
            "execution_options.max_run_time",
        ),
        (
            {"code": "1", "execution_options": {"max_run_time": True}},
            "execution_options.max_run_time",
        ),
        ({"code": "1", "execution_options": []}, "execution_options"),
        ({"code": 5}, "code"),
        ({}, "code"),
        ([1, 2], ""),
        ({"code": "1", "environment": {"libraries": "numpy"}}, "environment.libraries"),
        ({"code": "1", "environment": {"libraries": ["--index-url=x"]}}, "environment.libraries"),
        ({"code": "1", "environment": {"libraries": ["numpy>=1"]}}, "environment.libraries"),
    ],
)
def test_invalid_requests_are_422(start_api: StartApi, body: Any, field: str) -> None:
    response = execute(start_api(), body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert response.json()["detail"]["field"] == field


def test_max_run_time_over_the_cap_names_the_cap(start_api: StartApi) -> None:
    response = execute(start_api(), {"code": "1", "execution_options": {"max_run_time": 600}})
    assert response.json()["detail"]["maximum"] == 5.0
    assert "maximum of 5 s" in response.json()["error"]


def test_not_json_is_400(start_api: StartApi) -> None:
    with httpx.Client(timeout=20) as client:
        response = client.post(f"{start_api().url}/execute", content=b"{nope", headers=AUTH)
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def test_unknown_paths_and_methods_answer_json(start_api: StartApi) -> None:
    api = start_api()
    assert httpx.get(f"{api.url}/nope").json()["code"] == "not_found"
    assert httpx.get(f"{api.url}/execute").status_code == 405


async def test_queue_full_is_503_with_retry_after(start_api: StartApi) -> None:
    api = start_api(max_concurrency=1, queue_size=0, retry_after_s=2)
    sleeper = {"code": "import time\ntime.sleep(1.5)\nprint('slept')"}
    async with httpx.AsyncClient(base_url=api.url, timeout=20, headers=AUTH) as client:
        first = asyncio.create_task(client.post("/execute", json=sleeper))
        for _ in range(200):
            if (await client.get("/healthz")).json()["running"] == 1:
                break
            await asyncio.sleep(0.02)
        refused = await client.post("/execute", json={"code": "print(1)"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["code"] == "busy"
        assert (await first).json()["output"] == "slept\n"
        assert (await client.post("/execute", json={"code": "print(1)"})).status_code == 200


async def test_queued_requests_wait_their_turn(start_api: StartApi) -> None:
    api = start_api(max_concurrency=1, queue_size=2)
    body = {"code": "import time\ntime.sleep(0.3)\nprint('done')"}
    async with httpx.AsyncClient(base_url=api.url, timeout=20, headers=AUTH) as client:
        answers = await asyncio.gather(*(client.post("/execute", json=body) for _ in range(3)))
    assert [a.json()["output"] for a in answers] == ["done\n"] * 3


async def test_client_that_hangs_up_stops_its_run(start_api: StartApi) -> None:
    api = start_api(max_concurrency=1, queue_size=0)
    body = {"code": "import time\ntime.sleep(30)"}
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/execute", json=body, timeout=httpx.Timeout(20, read=0.5))
        for _ in range(250):
            health = (await client.get("/healthz", timeout=5)).json()
            if health["running"] == 0:
                break
            await asyncio.sleep(0.02)
        assert health["running"] == 0


async def test_admission_counts_running_and_waiting() -> None:
    admission = Admission(max_running=1, max_waiting=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    assert (admission.running, admission.waiting) == (1, 1)
    with pytest.raises(QueueFull):
        async with admission.slot():
            pass
    tasks[1].cancel()  # a waiter whose client left gives its place back
    await asyncio.sleep(0)
    assert admission.waiting == 0
    release.set()
    await asyncio.gather(tasks[0])
    assert (admission.running, admission.waiting) == (0, 0)


# --- health and OpenAPI ----------------------------------------------------------------------


def test_healthz_needs_no_token(start_api: StartApi) -> None:
    body = httpx.get(f"{start_api(max_concurrency=3, queue_size=4).url}/healthz").json()
    assert body == {
        "status": "ok",
        "running": 0,
        "waiting": 0,
        "max_concurrency": 3,
        "queue_size": 4,
        "max_run_time": 5.0,
    }


def test_openapi_document_validates(start_api: StartApi) -> None:
    openapi_spec_validator = pytest.importorskip("openapi_spec_validator")
    document = httpx.get(f"{start_api().url}/openapi.json").json()
    openapi_spec_validator.validate(document)
    request_schema = document["components"]["schemas"]["ExecuteRequest"]
    limit = request_schema["properties"]["execution_options"]["properties"]["max_run_time"]
    assert limit["maximum"] == 5.0


# --- libraries -------------------------------------------------------------------------------


def test_missing_library_is_a_clear_error(start_api: StartApi) -> None:
    body = {"code": "1", "environment": {"libraries": ["json", "no_such_lib_zq"]}}
    answer = execute(start_api(), body).json()
    assert answer["status"] == "error"
    assert "'no_such_lib_zq' is not installed" in answer["error"]
    assert "--allow-install" in answer["error"] and "json" not in answer["error"]
    assert answer["error_info"]["type"] == "ModuleNotFoundError"


def test_present_libraries_pass_the_check(start_api: StartApi) -> None:
    body = {"code": "import httpx\nprint('ok')", "environment": {"libraries": ["httpx", "json"]}}
    assert execute(start_api(), body).json()["output"] == "ok\n"


async def test_allow_install_installs_once_into_a_cached_environment(
    start_api: StartApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "codeexec_tinylib", "1.0", "ANSWER = 42\n")
    # pip reads these from the environment the server passes on: no index, no network.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    api = start_api(allow_install=True, max_concurrency=2, queue_size=2)
    code = "import codeexec_tinylib, httpx\nprint(codeexec_tinylib.ANSWER)"
    body = {"code": code, "environment": {"libraries": ["codeexec_tinylib", "httpx"]}}
    async with httpx.AsyncClient(base_url=api.url, timeout=60, headers=AUTH) as client:
        answers = await asyncio.gather(*(client.post("/execute", json=body) for _ in range(2)))
        for answer in answers:
            assert answer.json()["output"] == "42\n", answer.text
        again = await client.post("/execute", json=body)
        assert again.json()["output"] == "42\n"
        broken = {"code": "1", "environment": {"libraries": ["codeexec_absent_lib"]}}
        failed = (await client.post("/execute", json=broken)).json()
    service = api.app.state.service
    assert service.libraries.installs_completed == 1  # two at once and a third: one install
    assert failed["status"] == "error" and "InstallError" in failed["error"]
    key = environment_key(sys.executable, ["codeexec_tinylib", "httpx"])
    assert (tmp_path / "envs" / key / ".codeexec-ready").is_file()


async def test_without_libraries_the_base_interpreter_runs(tmp_path: Path) -> None:
    manager = LibraryManager(ApiSettings(cache_dir=tmp_path))
    assert await manager.interpreter_for((), {}, str(tmp_path)) == sys.executable


# --- property-based fuzzing ------------------------------------------------------------------


def test_fuzzed_requests_never_get_a_500(start_api: StartApi) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    api = start_api(max_run_time=2.0, default_run_time=2.0, max_concurrency=4, queue_size=8)
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    # Valid bodies exercise the runs; invalid ones (wrong types, missing fields, bad
    # headers) exercise every refusal path.
    cases = st.one_of(
        schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    statuses: list[int] = []

    @given(case=cases)
    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def never_a_server_error(case: Any) -> None:
        response = case.call(base_url=api.url, headers=AUTH, timeout=15)
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text

    never_a_server_error()
    assert 200 in statuses and any(400 <= status < 500 for status in statuses)


def test_a_server_without_its_interpreter_does_not_start(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-python")
    with pytest.raises(ConfigError) as refused:
        create_app(ApiSettings(python=missing, cache_dir=tmp_path / "envs"))
    assert str(refused.value) == (
        f"--python {missing!r} is not an executable interpreter: give the Python that code "
        "sent to /execute should run under (default: the server's own)"
    )


def test_an_interpreter_gone_after_start_is_a_500_and_the_log_names_the_option(
    start_api: StartApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The client learns only that the server failed; the operator's log says which
    interpreter, set where, and why."""
    python = tmp_path / "python3"
    python.symlink_to(sys.executable)
    api = start_api(python=str(python))
    python.unlink()
    with caplog.at_level("INFO", logger="codeexec_lsp.api"):
        response = execute(api, {"code": "print(1)"})
    assert response.status_code == 500
    assert response.json() == {
        "error": "The execution server could not run the code; see its log",
        "code": "internal",
    }
    assert (
        f"Could not start the interpreter {str(python)!r} (the API server's --python): "
        "No such file or directory" in caplog.text
    )


def test_the_servers_output_limit_is_the_runs_and_not_the_default(start_api: StartApi) -> None:
    """5,000 bytes: well within the default 1,000,000, over the server's 1,000."""
    body = execute(start_api(max_output_bytes=1000), {"code": "print('x' * 5000)"}).json()
    assert body["truncated"] is True
    assert body["output"].count("x") <= 1000


def test_the_servers_memory_limit_is_the_runs_and_not_the_default(start_api: StartApi) -> None:
    """300 MB: well within the default 1024 MB, over the server's 128 MB."""
    code = "block = bytearray(300 * 1024 * 1024)\nprint('allocated')"
    body = execute(start_api(memory_mb=128), {"code": code}).json()
    assert body["status"] == "error", body
    assert "allocated" not in body["output"]
    assert execute(start_api(), {"code": code}).json()["output"] == "allocated\n"


def test_home_is_the_requests_own_directory(start_api: StartApi) -> None:
    """Files the code writes to its home go away with the request (its temporary files go
    to the strict box's private /tmp, which goes away with the run)."""
    code = "import os\nprint(os.environ['HOME'] == os.getcwd() == os.path.expanduser('~'))"
    assert execute(start_api(), {"code": code}).json()["output"] == "True\n"
