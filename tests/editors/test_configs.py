"""The editor set-ups that cannot be driven here are parsed and checked against the server.

Helix (TOML), Sublime Text (JSON with comments and trailing commas, as Sublime reads it) and
Zed (settings JSON with comments, extension manifest): the command is `codeexec-lsp`, Python
files are selected, every settings key exists in the server's settings table
(`codeexec_lsp.config._KEYS`) with a value the server accepts, and key bindings name commands
and code action kinds the server really has. The Emacs file is byte-compiled with warnings as
errors and its Eglot contact inspected when `emacs` is installed (test_emacs.py drives it).
The code blocks of the editor READMEs are parsed too, so the copy-paste snippets stay valid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import server
from codeexec_lsp.config import _KEYS, parse_settings

REPO = Path(__file__).resolve().parents[2]
EDITORS = REPO / "editors"
HELIX = EDITORS / "helix" / "languages.toml"
SUBLIME = EDITORS / "sublime"
ZED = EDITORS / "zed"
EMACS_EL = EDITORS / "emacs" / "codeexec.el"
EMACS = shutil.which("emacs")

SETTINGS_KEYS = {key for key, _, _ in _KEYS}
SERVER_COMMANDS = {server.RUN, server.EXPLAIN, server.FIX, server.RESTART, server.APPLY_FIX}
ACTION_KINDS = {
    server.KIND_RUN,
    server.KIND_RUN_FILE,
    server.KIND_EXPLAIN,
    server.KIND_FIX,
    server.KIND_RESTART,
}
COMMANDS = (["codeexec-lsp"], ["python", "-m", "codeexec_lsp"], ["python3", "-m", "codeexec_lsp"])

needs_tomllib = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="tomllib (the TOML parser) is in Python 3.11+"
)


def load_toml(path_or_text: Path | str) -> dict[str, Any]:
    import tomllib  # Python 3.11+; the tests that call this are marked needs_tomllib

    if isinstance(path_or_text, Path):
        return tomllib.loads(path_or_text.read_text(encoding="utf-8"))
    return tomllib.loads(path_or_text)


def strip_jsonc(text: str) -> str:
    """JSON from JSON with `//` and `/* */` comments and trailing commas (Sublime, Zed)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':  # a string: copy it whole, escapes included
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(char)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def load_jsonc(path_or_text: Path | str) -> Any:
    if isinstance(path_or_text, Path):
        return json.loads(strip_jsonc(path_or_text.read_text(encoding="utf-8")))
    return json.loads(strip_jsonc(path_or_text))


def dotted_keys(settings: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in SETTINGS_KEYS:
            yield from dotted_keys(value, f"{dotted}.")
        else:
            yield dotted


def check_settings(settings: Any, where: str) -> None:
    """A `codeexec` settings object: known keys only, values the server accepts."""
    assert isinstance(settings, dict), f"{where}: settings must be an object"
    unknown = sorted(set(dotted_keys(settings)) - SETTINGS_KEYS)
    assert not unknown, f"{where}: keys the server does not have: {unknown}"
    _, warnings = parse_settings(settings)
    assert warnings == [], f"{where}: {warnings}"


def test_jsonc_reader_keeps_strings_and_drops_comments() -> None:
    text = '{"a": "// not a comment", /* x */ "b": [1, 2,], // y\n "c": "\\"/*\\"",}'
    assert load_jsonc(text) == {"a": "// not a comment", "b": [1, 2], "c": '"/*"'}


def test_the_settings_checker_rejects_unknown_keys_and_bad_values() -> None:
    check_settings({"timeout": 5, "llm": {"model": "m"}, "envPassthrough": ["X"]}, "good")
    with pytest.raises(AssertionError, match=r"llm\.modle"):
        check_settings({"llm": {"modle": "m"}}, "typo")
    with pytest.raises(AssertionError, match="timeout"):
        check_settings({"timeout": "soon"}, "bad value")


# --- Helix ------------------------------------------------------------------------------


@needs_tomllib
def test_helix_languages_toml() -> None:
    config = load_toml(HELIX)
    codeexec = config["language-server"]["codeexec"]
    assert [codeexec["command"], *codeexec.get("args", [])] in COMMANDS
    # Helix sends `config` as initializationOptions (the server takes {"codeexec": {...}})
    # and answers workspace/configuration for section "codeexec" with config["codeexec"].
    assert list(codeexec["config"]) == ["codeexec"]
    check_settings(codeexec["config"]["codeexec"], "helix config.codeexec")

    [python] = [language for language in config["language"] if language["name"] == "python"]
    servers = [s if isinstance(s, str) else s["name"] for s in python["language-servers"]]
    assert "codeexec" in servers
    assert len(servers) >= 2, "codeexec goes next to the usual Python server, not instead"
    # file-types stay Helix's own: the entry only adds a server.
    assert "file-types" not in python


# --- Sublime Text -----------------------------------------------------------------------


def test_sublime_client_settings() -> None:
    settings = load_jsonc(SUBLIME / "LSP.sublime-settings")
    client = settings["clients"]["codeexec"]
    assert client["enabled"] is True
    assert client["command"] in COMMANDS
    assert client["selector"] == "source.python"
    check_settings(client["settings"]["codeexec"], "sublime settings.codeexec")
    init = client.get("initializationOptions", {})
    check_settings(init.get("codeexec", init), "sublime initializationOptions")


def sublime_bindings() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in ("Default.sublime-keymap", "Codeexec.sublime-commands"):
        for binding in load_jsonc(SUBLIME / name):
            yield name, binding


def test_sublime_key_bindings_and_commands_call_what_the_server_has() -> None:
    bindings = list(sublime_bindings())
    assert len(bindings) >= 10
    used = set()
    for name, binding in bindings:
        args = binding["args"]
        if binding["command"] == "lsp_execute":
            assert args["session_name"] == "codeexec", name  # the key under "clients"
            command = args["command_name"]
            assert command in SERVER_COMMANDS, (name, command)
            expected = {
                server.RUN: (["$file_uri", "$range"], ["$file_uri"]),
                server.EXPLAIN: (["$file_uri", "$range"],),
                server.RESTART: ([],),
            }[command]
            assert args["command_args"] in expected, (name, binding)
            used.add(command)
        else:
            assert binding["command"] == "lsp_code_actions", (name, binding)
            assert set(args["only_kinds"]) <= ACTION_KINDS, (name, binding)
            used.update(args["only_kinds"])
        if name.endswith("keymap"):
            assert {"key": "selector", "operator": "equal", "operand": "source.python"} in (
                binding["context"]
            )
    assert {server.RUN, server.EXPLAIN, server.RESTART, server.KIND_FIX} <= used


# --- Zed --------------------------------------------------------------------------------


def test_zed_settings() -> None:
    settings = load_jsonc(ZED / "settings.json")
    lsp = settings["lsp"]["codeexec"]
    assert [lsp["binary"]["path"], *lsp["binary"].get("arguments", [])] in COMMANDS
    check_settings(lsp["settings"]["codeexec"], "zed lsp.codeexec.settings.codeexec")
    init = lsp.get("initialization_options", {})
    check_settings(init.get("codeexec", init), "zed initialization_options")
    servers = settings["languages"]["Python"]["language_servers"]
    assert "codeexec" in servers
    assert "!codeexec" not in servers
    assert servers[-1] == "..."


@needs_tomllib
def test_zed_extension_registers_the_server_for_python() -> None:
    manifest = load_toml(ZED / "extension" / "extension.toml")
    assert manifest["schema_version"] == 1
    assert {"id", "name", "version", "description", "authors", "repository"} <= set(manifest)
    # The key is the server's name in settings.json (lsp.codeexec, language_servers).
    assert manifest["language_servers"] == {
        "codeexec": {"name": "codeexec-lsp", "languages": ["Python"]}
    }
    cargo = load_toml(ZED / "extension" / "Cargo.toml")
    assert cargo["lib"]["crate-type"] == ["cdylib"]
    assert "zed_extension_api" in cargo["dependencies"]
    source = (ZED / "extension" / "src" / "lib.rs").read_text(encoding="utf-8")
    assert 'const SERVER: &str = "codeexec";' in source  # LspSettings::for_worktree(SERVER)
    assert 'const BINARY: &str = "codeexec-lsp";' in source
    assert 'const SECTION: &str = "codeexec";' in source
    assert "zed::register_extension!(CodeexecExtension);" in source


# --- Emacs ------------------------------------------------------------------------------

EMACS_PROBE = r"""
(progn
  (setq byte-compile-error-on-warn t)
  (let ((copy (expand-file-name "codeexec.el" (getenv "CODEEXEC_TMP"))))
    (copy-file (getenv "CODEEXEC_EL") copy t)
    (unless (byte-compile-file copy) (kill-emacs 4))
    (load (concat (file-name-sans-extension copy) ".elc") nil t))
  (let* ((entry (car eglot-server-programs))
         (contact (funcall (cdr entry)))
         (keyword (cl-position-if #'keywordp contact)))
    (princ (json-encode
            (list :modes (vconcat (mapcar #'symbol-name (car entry)))
                  :command (vconcat (cl-subseq contact 0 keyword))
                  :initargs (vconcat (mapcar (lambda (x) (format "%s" x))
                                             (cl-subseq contact keyword)))
                  :keys (cl-loop for key in '("r" "b" "e" "f" "R" "a")
                                 collect (cons key (format "%s" (lookup-key
                                                                 codeexec-command-map
                                                                 (kbd key)))))
                  :prefix (format "%s" (lookup-key codeexec-mode-map (kbd "C-c e")))))))
  (terpri))
"""


@pytest.mark.skipif(EMACS is None, reason="no `emacs` on PATH (apt-get install emacs-nox)")
@pytest.mark.timeout(120)
def test_emacs_file_byte_compiles_cleanly_and_registers_the_server(tmp_path: Path) -> None:
    assert EMACS is not None
    probe = subprocess.run(
        [EMACS, "--batch", "--eval", '(kill-emacs (if (locate-library "eglot") 0 3))'],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip("Emacs has no Eglot: apt-get install elpa-eglot (built in since Emacs 29)")
    done = subprocess.run(
        [EMACS, "--batch", "--eval", "(require 'cl-lib)", "--eval", EMACS_PROBE],
        env={
            "HOME": str(tmp_path),
            # the contact function checks that codeexec-lsp can be found: this venv's
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "CODEEXEC_EL": str(EMACS_EL),
            "CODEEXEC_TMP": str(tmp_path),
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, f"byte-compiling codeexec.el failed:\n{done.stderr}"
    observed = json.loads(done.stdout.strip().splitlines()[-1])
    assert observed["modes"] == ["python-mode", "python-ts-mode"]
    assert observed["command"] == ["codeexec-lsp"]
    assert observed["initargs"] == [":initializationOptions", "codeexec--initialization-options"]
    assert observed["keys"] == {
        "r": "codeexec-run-region",
        "b": "codeexec-run-buffer",
        "e": "codeexec-explain-region",
        "f": "codeexec-fix-region",
        "R": "codeexec-restart",
        "a": "codeexec-code-actions",
    }
    assert observed["prefix"] == "codeexec-command-map"


# --- README snippets --------------------------------------------------------------------

READMES = [
    EDITORS / "README.md",
    EDITORS / "helix" / "README.md",
    EDITORS / "sublime" / "README.md",
    EDITORS / "zed" / "README.md",
    EDITORS / "emacs" / "README.md",
]
SETTINGS_PARENTS = {"config", "settings", "initializationOptions", "initialization_options"}


def code_blocks(path: Path) -> Iterator[tuple[str, str, int]]:
    """(language, text, line) of each fenced code block."""
    language: str | None = None
    start, lines = 0, list[str]()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if language is None and stripped.startswith("```"):
            language, start, lines = stripped[3:].strip(), number, []
        elif language is not None and stripped == "```":
            yield language, "\n".join(lines), start
            language = None
        elif language is not None:
            lines.append(line)


def settings_objects(node: Any, parent: str | None = None) -> Iterator[Any]:
    """Every `codeexec` settings object: a "codeexec" member under config/settings/init."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "codeexec" and parent in SETTINGS_PARENTS:
                yield value
            else:
                yield from settings_objects(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from settings_objects(item, parent)


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(REPO)))
def test_readme_snippets_parse_and_use_real_settings(readme: Path) -> None:
    checked = 0
    for language, text, line in code_blocks(readme):
        where = f"{readme.relative_to(REPO)}:{line}"
        if language == "toml":
            if sys.version_info < (3, 11):
                continue
            parsed: Any = load_toml(text)
        elif language in ("json", "jsonc"):
            parsed = load_jsonc(text)
        else:
            continue
        for settings in settings_objects(parsed):
            check_settings(settings, where)
        checked += 1
    if readme.parent.name in ("sublime", "helix") or readme == EDITORS / "README.md":
        assert checked, f"{readme}: no TOML/JSON snippet found"


# --- install instructions ---------------------------------------------------------------

# The package is not published on any index: an install line must name a clone (`.`, a path)
# or a git URL, never the bare package name.
INSTALL_DOCS = [
    REPO / "README.md",
    EDITORS / "README.md",
    *(EDITORS / name / "README.md" for name in ("nvim", "helix", "emacs", "sublime", "zed")),
    EDITORS / "helix" / "languages.toml",
    EDITORS / "sublime" / "LSP.sublime-settings",
    EDITORS / "emacs" / "codeexec.el",
    EDITORS / "nvim" / "init.lua",
    EDITORS / "nvim" / "lua" / "codeexec" / "init.lua",
    EDITORS / "nvim" / "lua" / "codeexec" / "health.lua",
    EDITORS / "zed" / "extension" / "src" / "lib.rs",
]
FROM_AN_INDEX = re.compile(
    r"(pip3?|pipx|uv tool|uv pip|python3? -m pip)\s+install\s+(-U\s+|--upgrade\s+)?"
    r"codeexec[-_]lsp\b"
)


@pytest.mark.parametrize("doc", INSTALL_DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_install_instructions_use_a_clone_or_a_git_url(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert not FROM_AN_INDEX.search(text), f"{doc}: installs codeexec-lsp from an index"
    assert "OWNER/" not in text, f"{doc}: unexplained OWNER/ placeholder"
    assert "python3 -m pip install -e ." not in text, f"{doc}: fails under PEP 668"


def test_readme_commands_work_without_an_activated_virtualenv() -> None:
    """The first line of the sh block after each marker is what .ci/run and a new user run:
    it must make its own virtualenv and call its tools by path (PEP 668 systems)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    for marker in ("<!-- demo-command -->", "<!-- test-command -->"):
        block = readme.index(marker) + 1
        assert readme[block] == "```sh", marker
        command = readme[block + 1]
        # made once, then reused: `python3 -m venv` over a .venv made by another Python
        # leaves a mix that cannot import ssl
        assert command.startswith("test -x .venv/bin/pip || python3 -m venv .venv && "), command
        assert " pip install" not in command.replace(".venv/bin/pip install", "")
        steps = command.removeprefix("test -x .venv/bin/pip || ").split(" && ")
        assert all(step.startswith(("python3 -m venv", ".venv/bin/")) for step in steps), command
