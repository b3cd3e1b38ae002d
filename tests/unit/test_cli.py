"""The CLI as a user runs it: a real subprocess, output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.py"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_run_json_maps_error_inside_indented_selection_to_the_file_line() -> None:
    lines = DEMO.read_text().splitlines()
    cell = next(i for i, line in enumerate(lines, 1) if "Price ratios" in line)
    raising = next(i for i, line in enumerate(lines, 1) if "price / cheapest" in line)
    proc = cli("run", str(DEMO), "--lines", f"{cell}-{len(lines)}", "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert result["status"] == "error" and result["error"]["type"] == "ZeroDivisionError"
    assert result["error"]["line"] == raising
    assert result["error"]["column"] == lines[raising - 1].index("price / cheapest")
    assert result["stdout"] == "[1.0, 2.0]\n"
    assert result["error"]["frames"][0]["line"] == len(lines)  # the indented call site


def test_run_prints_output_value_and_compiler_style_location(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('hi')\nx = 2\nx * 21\nfor i in range(2):\n    1 / (i - 1 + 0)\n")
    ok = cli("run", str(script), "--lines", "1-3")
    assert (ok.returncode, ok.stdout) == (0, "hi\n42\n")
    failing = cli("run", str(script), "--lines", "4-5")
    assert failing.returncode == 1
    assert failing.stdout.strip() == f"{script}:5:5: ZeroDivisionError: division by zero"


def test_timeout_exit_code_and_usage_errors(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text("while True:\n    pass\n")
    proc = cli("run", str(script), "--timeout", "1")
    assert proc.returncode == 3 and "TimeoutError" in proc.stdout
    assert cli("run", str(script), "--lines", "9-3").returncode == 2
    assert cli("run", str(script), "--lines", "40-41").returncode == 2
    assert cli("run", str(tmp_path / "missing.py")).returncode == 2


@pytest.mark.parametrize("secret_name", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
def test_doctor_reports_without_leaking_secrets(tmp_path: Path, secret_name: str) -> None:
    canary = "sk-doctor-canary-1234567890"
    proc = cli("doctor", str(tmp_path), env={secret_name: canary})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert canary not in proc.stdout + proc.stderr
    assert "test run of 1+1 (session): ok, value 2" in proc.stdout
    assert "interpreter:" in proc.stdout and secret_name in proc.stdout


def test_demo_drives_the_real_server_and_shows_diagnostic_hover_and_hint() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codeexec_lsp", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    lines = DEMO.read_text().splitlines()
    raising = next(i for i, line in enumerate(lines, 1) if "price / cheapest" in line)
    column = lines[raising - 1].index("price / cheapest") + 1
    assert f"diagnostic at line {raising}, column {column} [codeexec/ZeroDivisionError]" in (
        proc.stdout
    )
    assert "hover over the run lines" in proc.stdout and "[1.0, 2.0]" in proc.stdout
    assert "inlay hint after line" in proc.stdout
