"""A real LiteLLM proxy on 127.0.0.1, in its own virtualenv, in front of the fake model server.

The proxy is the gateway many teams put between editors and their providers; it is started
once per test session with models of two kinds:

- `up-*`: real upstreams, i.e. the fake server on 127.0.0.1 speaking OpenAI's and Anthropic's
  wire formats, so what reaches our client is exactly what LiteLLM makes of an upstream's
  answers and errors (renamed Retry-After headers, wrapped messages, mid-stream errors);
- `mock-*`: LiteLLM's own `mock_response` models, which need no upstream at all.

When the proxy cannot be installed (no package index), the tests skip and say why, unless
CODEEXEC_REQUIRE_GATEWAY=1, as CI sets, which makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.llm_server import FakeLlmServer
from tests.gateway.litellm_env import ensure_venv, proxy_executable

REQUIRE_ENV = "CODEEXEC_REQUIRE_GATEWAY"
MASTER_KEY = "sk-gateway-master-5d1e"
UPSTREAM_KEY = "sk-upstream-3b7c"
STARTUP_SECONDS = 180.0


@dataclass(frozen=True)
class Gateway:
    url: str
    master_key: str
    upstream: FakeLlmServer
    log: Path

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def base_url(self, provider: str) -> str:
        return self.openai_base_url if provider == "openai" else self.anthropic_base_url


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def litellm_venv() -> Path:
    try:
        return ensure_venv()
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or "").strip().splitlines()
        errors = [line for line in output if "ERROR" in line] or output[-3:]
        _unavailable(f"LiteLLM's proxy could not be installed: {' '.join(errors[-2:])[:400]}")
    except OSError as exc:
        _unavailable(f"LiteLLM's proxy could not be installed: {exc}")
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(upstream: FakeLlmServer) -> str:
    def upstream_model(name: str, provider: str, key: str) -> str:
        base = upstream.openai_base_url if provider == "openai" else upstream.url
        return (
            f"  - model_name: {name}\n"
            f"    litellm_params: {{model: {provider}/up-model, api_base: '{base}', "
            f"api_key: '{key}'}}\n"
        )

    def mock_model(name: str, provider: str, response: str) -> str:
        model = "openai/gpt-4o-mini" if provider == "openai" else "anthropic/claude-haiku-4-5"
        return (
            f"  - model_name: {name}\n"
            f"    litellm_params: {{model: {model}, api_key: unused, "
            f"mock_response: '{response}'}}\n"
        )

    return (
        "model_list:\n"
        + upstream_model("up-gpt", "openai", UPSTREAM_KEY)
        + upstream_model("up-claude", "anthropic", UPSTREAM_KEY)
        + upstream_model("up-gpt-badkey", "openai", "sk-wrong-upstream")
        + upstream_model("up-claude-badkey", "anthropic", "sk-wrong-upstream")
        + mock_model("mock-gpt", "openai", "A mock answer from the gateway.")
        + mock_model("mock-ratelimit", "openai", "litellm.RateLimitError")
        + mock_model("mock-claude-ratelimit", "anthropic", "litellm.RateLimitError")
        # The proxy's own retries and cooldowns would hide what the upstream said.
        + "litellm_settings:\n  num_retries: 0\n"
        + "router_settings:\n  num_retries: 0\n  disable_cooldowns: true\n"
        + f"general_settings:\n  master_key: {MASTER_KEY}\n"
    )


@pytest.fixture(scope="session")
def gateway(litellm_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("litellm")
    config = home / "config.yaml"
    log = home / "proxy.log"
    with FakeLlmServer(require_key=UPSTREAM_KEY) as upstream:
        config.write_text(_config(upstream))
        port = _free_port()
        env = {
            **os.environ,
            # No cost map from the internet, no telemetry, no key of ours in its environment.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "HOME": str(home),
        }
        for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DATABASE_URL"):
            env.pop(name, None)
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    str(proxy_executable(litellm_venv)),
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(process, url, log)
            yield Gateway(url, MASTER_KEY, upstream, log)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            _unavailable(f"LiteLLM's proxy exited with {process.returncode}: {tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    _unavailable(f"LiteLLM's proxy did not answer within {STARTUP_SECONDS:g} s; see {log}")


@pytest.fixture
def upstream(gateway: Gateway) -> Iterator[FakeLlmServer]:
    """The fake behind the gateway, with no replies left over from another test."""
    gateway.upstream.clear_script()
    yield gateway.upstream
    gateway.upstream.clear_script()
