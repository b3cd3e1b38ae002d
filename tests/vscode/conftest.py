"""Counts failed tests per module, so the real-VS-Code fixture keeps its screenshots then."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        module = getattr(item, "module", None)
        if module is not None:
            module._vscode_failures = getattr(module, "_vscode_failures", 0) + 1
