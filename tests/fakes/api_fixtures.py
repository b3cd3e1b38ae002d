"""pytest fixture starting the real /execute app on loopback with ApiSettings overrides.

Import with `from tests.fakes.api_fixtures import TOKEN, AUTH, StartApi, start_api_fixture
# noqa: F401` and take a `start_api` argument.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.settings import ApiSettings
from tests.fakes.api_harness import ThreadedApi

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
StartApi = Callable[..., ThreadedApi]


@pytest.fixture(name="start_api")
def start_api_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StartApi]:
    """Starts the real app (with `ApiSettings` overrides) on a free loopback port."""
    monkeypatch.setenv("CODEEXEC_API_TOKEN", TOKEN)
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> ThreadedApi:
            values: dict[str, Any] = {
                "max_run_time": 5.0,
                "default_run_time": 5.0,
                "max_concurrency": 2,
                "cache_dir": tmp_path / "envs",
                **options,
            }
            return stack.enter_context(ThreadedApi(create_app(ApiSettings(**values))))

        yield start
