"""pytest fixtures for the fake model server.

Import into a test module with `from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401`
and take a `fake_llm` argument. (Importing the alias `fake_llm` works for pytest too, but then
ruff reports every `fake_llm` argument as F811, a redefinition of the import.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.llm_server import FakeLlmServer


@pytest.fixture(name="fake_llm")
def fake_llm_fixture() -> Iterator[FakeLlmServer]:
    """A started FakeLlmServer on 127.0.0.1: `.url`, `.openai_base_url`, `.script(...)`."""
    with FakeLlmServer() as server:
        yield server


fake_llm = fake_llm_fixture
