"""Real Emacs (batch) running editors/emacs/codeexec.el with Eglot against the real server.

Each test writes a Python file and a `.dir-locals.el` (the documented way to set
`eglot-workspace-configuration`) into a temporary project, then runs

    emacs --batch -l editors/emacs/codeexec.el -l DRIVER

where DRIVER (the Emacs Lisp below, written to the temp dir) opens the file, starts Eglot
with the contact codeexec.el registered, drives the shipped commands and key bindings, waits
(bounded) for the answers and for Flymake's diagnostics, and writes what it saw as JSON:
diagnostics with 1-based lines and columns in characters (Emacs columns), the hover text as
the server sent it and as Eldoc got it, the buffer after a fix.

`--batch` already skips the user's init file; `-Q` is not used because it also skips
Debian's site-start, which is what puts the `elpa-eglot` package on the load path on
Emacs 28 (Emacs 29+ has Eglot built in). CI installs them with
`apt-get install -y --no-install-recommends emacs-nox elpa-eglot`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
CODEEXEC_EL = REPO / "editors" / "emacs" / "codeexec.el"
EMACS = shutil.which("emacs")
EMACS_TIMEOUT = 120  # seconds for one whole Emacs run; every wait inside is shorter


@functools.cache
def eglot_missing() -> str | None:
    """Why Emacs cannot run these tests, or None."""
    if EMACS is None:
        return (
            "no `emacs` on PATH: `apt-get install -y --no-install-recommends emacs-nox "
            "elpa-eglot` (Debian/Ubuntu) to run the Emacs tests"
        )
    probe = subprocess.run(
        [EMACS, "--batch", "--eval", '(kill-emacs (if (locate-library "eglot") 0 3))'],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    if probe.returncode != 0:
        return "Emacs has no Eglot: `apt-get install elpa-eglot` (Emacs 29+ has it built in)"
    return None


pytestmark = [
    pytest.mark.skipif(eglot_missing() is not None, reason=str(eglot_missing())),
    pytest.mark.timeout(EMACS_TIMEOUT + 30),
]

DRIVER = r""";;; driver.el --- drive codeexec.el in batch Emacs  -*- lexical-binding: t; -*-
(require 'json)
(require 'cl-lib)

(defvar ct-params (let ((json-object-type 'alist) (json-key-type 'symbol))
                    (json-read-file (getenv "CODEEXEC_TEST_PARAMS"))))
(defvar ct-out (make-hash-table :test 'equal))

(defun ct-param (key) (alist-get key ct-params))
(defun ct-put (key value) (puthash key value ct-out))
(defun ct-write ()
  (let ((coding-system-for-write 'utf-8))
    (with-temp-file (ct-param 'out) (insert (json-encode ct-out)))))

(defun ct-fail (what)
  (ct-put "failure" what)
  (ct-write)
  (kill-emacs 1))

(defun ct-idle ()
  "Run the idle timers, as Emacs does when the user stops typing.
Batch Emacs is never idle: without this, Eglot would not send its
pending didChange (it waits for 0.5 s of idleness) after an edit."
  (dolist (timer (copy-sequence timer-idle-list))
    (timer-event-handler timer)))

(defun ct-wait (what seconds predicate)
  "Wait at most SECONDS for PREDICATE to return non-nil; fail naming WHAT."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      (accept-process-output nil 0.05)
      (ct-idle))
    (or value (ct-fail (format "no %s after %s s" what seconds)))))

(defun ct-goto-line (line)
  (goto-char (point-min))
  (forward-line (1- line)))

(defun ct-lines (first last)
  "Buffer positions of the start of line FIRST and the end of line LAST."
  (list (progn (ct-goto-line first) (point))
        (progn (ct-goto-line last) (line-end-position))))

(defun ct-column (pos)
  (save-excursion (goto-char pos) (- pos (line-beginning-position))))

(defun ct-diagnostics ()
  "codeexec's Flymake diagnostics: lines 1-based, columns in characters."
  (vconcat
   (cl-loop
    for d in (sort (flymake-diagnostics)
                   (lambda (a b) (< (flymake-diagnostic-beg a)
                                    (flymake-diagnostic-beg b))))
    for lsp = (cdr (assoc 'eglot-lsp-diag (flymake-diagnostic-data d)))
    when (and lsp (equal (plist-get lsp :source) "codeexec"))
    collect (let ((beg (flymake-diagnostic-beg d))
                  (end (flymake-diagnostic-end d)))
              (list :line (line-number-at-pos beg) :column (ct-column beg)
                    :end_line (line-number-at-pos end) :end_column (ct-column end)
                    :type (symbol-name (flymake-diagnostic-type d))
                    :code (plist-get lsp :code)
                    :text (flymake-diagnostic-text d))))))

(defun ct-run (label thunk)
  "Call THUNK, wait for the codeexec command's answer, store it under LABEL."
  (setq codeexec-last-result nil)
  (funcall thunk)
  (ct-wait (format "answer to %s" label) 60 (lambda () codeexec-last-result))
  (ct-put label (list :command (nth 0 codeexec-last-result)
                      :result (nth 1 codeexec-last-result)
                      :error (nth 2 codeexec-last-result))))

(defun ct-hover (line)
  (let ((hover (jsonrpc-request
                (eglot-current-server) :textDocument/hover
                (list :textDocument (eglot--TextDocumentIdentifier)
                      :position (list :line (1- line) :character 4)))))
    (plist-get (plist-get hover :contents) :value)))

(defun ct-start ()
  (setq eglot-sync-connect t
        eglot-connect-timeout 30
        ;; Eglot asks y/n before applying a server's edit; batch Emacs cannot answer.
        eglot-confirm-server-initiated-edits nil)
  (transient-mark-mode 1)
  (find-file (ct-param 'file))
  (ct-put "major_mode" (symbol-name major-mode))
  (ct-put "workspace_configuration" (format "%S" eglot-workspace-configuration))
  (apply #'eglot (eglot--guess-contact))
  (ct-wait "Eglot connection" 30
           (lambda () (and (eglot-current-server) eglot--managed-mode)))
  (let ((server (eglot-current-server)))
    (ct-put "command" (vconcat (process-command (jsonrpc--process server))))
    (ct-put "server_name" (plist-get (eglot--server-info server) :name))
    (ct-put "codeexec_mode" (and codeexec-mode t))
    (ct-put "keys" (cl-loop for key in '("r" "b" "e" "f" "R" "a")
                            for command = (key-binding (kbd (concat "C-c e " key)))
                            collect (cons key (format "%s" command))))))

(defun ct-scenario-run ()
  (ct-start)
  (pcase-let ((`(,beg ,end) (ct-lines (ct-param 'first) (ct-param 'last))))
    (ct-put "action_titles"
            (vconcat (mapcar (lambda (a) (plist-get a :title))
                             (eglot-code-actions beg end))))
    ;; C-c e r on the active region, as a user types it.
    (goto-char beg) (set-mark beg) (goto-char end) (activate-mark)
    (ct-run "region_run" (lambda () (execute-kbd-macro (kbd "C-c e r")))))
  (ct-wait "codeexec diagnostic" 30 (lambda () (> (length (ct-diagnostics)) 0)))
  (ct-put "diagnostics" (ct-diagnostics))
  (ct-put "hover" (ct-hover (ct-param 'hover_line)))
  (let (eldoc-text)
    (ct-goto-line (ct-param 'hover_line))
    (eglot-hover-eldoc-function (lambda (info &rest _) (setq eldoc-text info)))
    (ct-put "eldoc" (ct-wait "Eldoc hover" 15 (lambda () eldoc-text))))
  ;; No region: M-x codeexec-run-region runs the statement at point.
  (deactivate-mark)
  (ct-goto-line (ct-param 'statement_line))
  (ct-run "statement_run" (lambda () (call-interactively #'codeexec-run-region)))
  (ct-wait "second diagnostic" 30 (lambda () (> (length (ct-diagnostics)) 1)))
  (ct-put "diagnostics_after_statement" (ct-diagnostics))
  ;; A region ending in an expression: its value comes back.
  (pcase-let ((`(,beg ,end) (ct-lines (ct-param 'value_first) (ct-param 'value_last))))
    (ct-run "value_run" (lambda () (codeexec-run-region beg end))))
  (ct-put "value_summary" (codeexec--run-summary (nth 1 codeexec-last-result)))
  (ct-run "restart" (lambda () (call-interactively #'codeexec-restart))))

(defun ct-scenario-llm ()
  (ct-start)
  (pcase-let ((`(,beg ,end) (ct-lines (ct-param 'first) (ct-param 'last))))
    (ct-run "run" (lambda () (codeexec-run-region beg end)))
    (ct-wait "codeexec diagnostic" 30 (lambda () (> (length (ct-diagnostics)) 0)))
    (ct-put "diagnostics" (ct-diagnostics))
    ;; C-c e f with point on the error, as after `M-x flymake-goto-next-error':
    ;; the diagnostic goes along, and the server fixes the enclosing function.
    (deactivate-mark)
    (goto-char (flymake-diagnostic-beg (car (flymake-diagnostics beg end))))
    (ct-put "fix_from" (list :line (line-number-at-pos) :column (current-column)))
    (ct-run "fix" (lambda () (execute-kbd-macro (kbd "C-c e f"))))
    (ct-put "fixed_text" (buffer-substring-no-properties (point-min) (point-max)))
    (ct-put "modified" (and (buffer-modified-p) t))
    (ct-wait "stale diagnostic to go" 15 (lambda () (= (length (ct-diagnostics)) 0)))
    (ct-put "diagnostics_after_fix" (ct-diagnostics))
    (pcase-let ((`(,beg ,end) (ct-lines (ct-param 'first) (ct-param 'explain_last))))
      (ct-run "explain" (lambda () (codeexec-explain-region beg end))))
    (let ((buffer (get-buffer "*codeexec explanation*")))
      (ct-put "explanation_buffer"
              (and buffer (with-current-buffer buffer (buffer-string)))))
    (ct-put "visible_buffers"
            (vconcat (mapcar (lambda (w) (buffer-name (window-buffer w)))
                             (window-list))))))

(defun ct-scenario-missing ()
  "The user's hook (eglot-ensure) on a Python file, with no codeexec-lsp to find."
  (find-file (ct-param 'file))
  (ct-put "found" (executable-find "codeexec-lsp"))
  (eglot-ensure)
  ;; eglot-ensure connects after the next command: run what the command loop runs then.
  (condition-case err
      (run-hooks 'post-command-hook)
    (error (ct-put "error" (error-message-string err))))
  (ct-put "connected" (and (eglot-current-server) t)))

(defun ct-scenario-exits ()
  "A configured server command that dies during initialize."
  (setq codeexec-server-command (append (ct-param 'failing_cmd) nil)
        eglot-sync-connect t
        eglot-connect-timeout 30)
  (find-file (ct-param 'file))
  (condition-case err
      (apply #'eglot (eglot--guess-contact))
    (error (ct-put "error" (error-message-string err))))
  (ct-put "connected" (and (eglot-current-server) t)))

(condition-case err
    (progn
      (pcase (ct-param 'scenario)
        ("run" (ct-scenario-run))
        ("llm" (ct-scenario-llm))
        ("missing" (ct-scenario-missing))
        ("exits" (ct-scenario-exits))
        (other (ct-fail (format "unknown scenario %S" other))))
      (ignore-errors (eglot-shutdown (eglot-current-server) nil 5))
      (ct-write)
      (kill-emacs 0))
  (error (ct-fail (format "Lisp error: %S" err))))
"""

PADDING = [f"étape_{n} = {n}  # ligne de remplissage" for n in range(20)]


def lines(*items: str | list[str]) -> str:
    flat = [line for item in items for line in ([item] if isinstance(item, str) else item)]
    return "\n".join(flat) + "\n"


RUN_SOURCE = lines(
    '"""Prix moyens — un petit script d\'analyse."""',
    "",
    'AUTEUR = "Zoë"',
    "",
    "if True:",
    "    côté = 6",
    '    print("surface:", côté * côté)',
    "    côté * 7",
    "",
    PADDING,
    "",
    "",
    'if __name__ == "__main__":',
    '    panier = {"café": 2.5, "thé": 1.5}',
    '    print("Récapitulatif:", len(panier), sum(panier.values()) / len(panier))',
    '    vide = {}; note = "déjà vu → ∅ 🍰"; moyenne = sum(vide.values()) / len(vide)',
    '    print("jamais atteint")',
    "",
    "for i in range(3):",
    '    mot = "naïf"',
    '    résultat = mot + str(int("x" if i == 2 else i))',
)

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


def line_no(source: str, needle: str) -> int:
    """1-based number of the only line containing `needle`."""
    found = [n for n, text in enumerate(source.splitlines(), 1) if needle in text]
    assert len(found) == 1, (needle, found)
    return found[0]


def char_col(source: str, needle: str) -> int:
    """Column of `needle` in its line, in characters (code points), as Emacs counts."""
    return source.splitlines()[line_no(source, needle) - 1].index(needle)


def elisp(value: Any) -> str:
    """A JSON-like value as the Lisp data Eglot expects in eglot-workspace-configuration."""
    if isinstance(value, dict):
        return "(" + " ".join(f":{key} {elisp(item)}" for key, item in value.items()) + ")"
    if isinstance(value, bool):
        return "t" if value else ":json-false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # the escapes that matter here read the same in Lisp
    if isinstance(value, list):
        return "[" + " ".join(elisp(item) for item in value) + "]"
    raise TypeError(value)


def run_emacs(
    tmp_path: Path,
    source: str,
    settings: dict[str, Any],
    scenario: str,
    path: str | None = None,
    **params: Any,
) -> tuple[dict[str, Any], Path]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.0.0"\n')
    # What a user puts in .dir-locals.el (codeexec.el's commentary and editors/README.md).
    (project / ".dir-locals.el").write_text(
        f"((python-mode . ((eglot-workspace-configuration . (:codeexec {elisp(settings)})))))\n"
    )
    script = project / "analyse.py"
    script.write_text(source, encoding="utf-8")
    driver = tmp_path / "driver.el"
    driver.write_text(DRIVER, encoding="utf-8")
    out = tmp_path / "observed.json"
    params_file = tmp_path / "params.json"
    params_file.write_text(
        json.dumps({"scenario": scenario, "out": str(out), "file": str(script), **params})
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("EMACS")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),  # no explanation cached by an earlier run
        # this venv's codeexec-lsp, unless the test says otherwise
        PATH=path or os.pathsep.join([str(BIN), env.get("PATH", "")]),
        CODEEXEC_TEST_PARAMS=str(params_file),
    )
    assert EMACS is not None
    command = [EMACS, "--batch", "-l", str(CODEEXEC_EL), "-l", str(driver)]
    try:
        done = subprocess.run(
            command,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=EMACS_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"Emacs hung (killed after {EMACS_TIMEOUT} s)\n{output(exc)}")
    observed = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    if done.returncode != 0 or not out.exists() or "failure" in observed:
        pytest.fail(
            f"Emacs exited with {done.returncode}: {observed.get('failure')}\n"
            f"observed: {json.dumps(observed, indent=1, ensure_ascii=False)[:6000]}\n"
            f"{output(done)}"
        )
    return observed, script


def output(done: Any) -> str:
    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else value or ""

    return f"--- emacs stdout ---\n{text(done.stdout)}\n--- emacs stderr ---\n{text(done.stderr)}"


def check_started_by_codeexec_el(observed: dict[str, Any]) -> None:
    assert observed["major_mode"] == "python-mode"
    assert observed["command"] == ["codeexec-lsp"]  # codeexec-server-command, found on PATH
    assert observed["server_name"] == "codeexec-lsp"
    assert observed["codeexec_mode"] is True
    assert observed["keys"] == {
        "r": "codeexec-run-region",
        "b": "codeexec-run-buffer",
        "e": "codeexec-explain-region",
        "f": "codeexec-fix-region",
        "R": "codeexec-restart",
        "a": "codeexec-code-actions",
    }


def test_run_region_puts_the_error_on_the_real_line_and_column(tmp_path: Path) -> None:
    source = RUN_SOURCE
    error_line = line_no(source, "moyenne = ")
    assert error_line >= 30  # far down the file
    first = line_no(source, "panier = {")  # the indented body of the `if`
    observed, _ = run_emacs(
        tmp_path,
        source,
        {"executor": "local", "timeout": 20, "memoryMb": 1024},
        "run",
        first=first,
        last=error_line + 1,
        hover_line=first,
        statement_line=line_no(source, "for i in range(3):"),
        value_first=line_no(source, "côté = 6"),
        value_last=line_no(source, "côté * 7"),
    )
    check_started_by_codeexec_el(observed)
    assert ":executor" in observed["workspace_configuration"]  # .dir-locals.el was read

    # Listed instantly as code actions; no "Restart session" with the local executor.
    assert observed["action_titles"] == [
        "Run selection",
        "Run file",
        "Explain selection",
        "Fix with LLM",
    ]

    # C-c e r on the region
    run = observed["region_run"]
    assert run["command"] == "codeexec.run"
    assert run["error"] is None
    result = run["result"]
    assert result["executor"] == "local"  # the .dir-locals.el settings reached the server
    assert result["status"] == "error"
    assert "Récapitulatif: 2 2.0" in result["stdout"]

    # Flymake shows it on the real line, at the real column in characters: the line has
    # an emoji (2 UTF-16 units, 1 Emacs character) before the error.
    [diagnostic] = observed["diagnostics"]
    error_col = char_col(source, "sum(vide.values()) / len(vide)")
    assert diagnostic["line"] == error_line
    assert diagnostic["column"] == error_col
    assert diagnostic["end_line"] == error_line
    assert diagnostic["end_column"] == error_col + len("sum(vide.values()) / len(vide)")
    assert diagnostic["code"] == "ZeroDivisionError"
    assert diagnostic["type"] == "eglot-error"
    assert "division by zero" in diagnostic["text"]

    for hover in (observed["hover"], observed["eldoc"]):
        assert "Récapitulatif: 2 2.0" in hover
        assert "ZeroDivisionError" in hover
        assert f"line {error_line}" in hover
        assert "jamais atteint" not in hover

    # M-x codeexec-run-region with no region: the whole `for` statement at point.
    statement = observed["statement_run"]["result"]
    assert statement["error"]["type"] == "ValueError"
    value_line = line_no(source, "résultat = mot")
    located = [(d["code"], d["line"], d["column"]) for d in observed["diagnostics_after_statement"]]
    assert located == [
        ("ZeroDivisionError", error_line, error_col),
        ("ValueError", value_line, char_col(source, 'int("x"')),
    ]

    value = observed["value_run"]["result"]
    assert value["status"] == "ok"
    assert value["value"] == "42"
    assert value["stdout"] == "surface: 36\n"
    assert observed["value_summary"] == "ran fine → 42"

    restart = observed["restart"]
    assert restart["error"] is None
    assert restart["result"]["restarted"] == 0  # the local executor keeps no session
    assert "no session" in restart["result"]["message"]


def test_fix_changes_the_buffer_and_explain_shows_markdown(
    tmp_path: Path, fake_llm: FakeLlmServer
) -> None:
    source = LLM_SOURCE
    fake_llm.script(
        Answer(f"Voici la correction :\n```python\n{FIXED_FUNCTION}```"),
        Answer("`moyenne([])` divise par **zéro**."),
    )
    first = line_no(source, "def moyenne")
    observed, _ = run_emacs(
        tmp_path,
        source,
        {
            "executor": "local",
            "llm": {"provider": "openai", "baseUrl": fake_llm.openai_base_url, "model": "m-1"},
            "fix": {"verify": True, "attempts": 2},
        },
        "llm",
        first=first,
        last=len(source.splitlines()),
        explain_last=first + 1,
    )
    check_started_by_codeexec_el(observed)
    [diagnostic] = observed["diagnostics"]
    assert diagnostic["code"] == "ZeroDivisionError"
    assert diagnostic["line"] == line_no(source, "return sum(valeurs)")

    fix = observed["fix"]
    assert fix["error"] is None, fix
    assert fix["result"]["applied"] is True
    assert fix["result"]["verified"] is True
    expected = source.replace(
        "def moyenne(valeurs):\n    return sum(valeurs) / len(valeurs)\n", FIXED_FUNCTION
    )
    assert observed["fixed_text"] == expected
    assert observed["modified"] is True  # applied to the buffer, not written behind its back
    assert observed["diagnostics_after_fix"] == []

    explain = observed["explain"]
    assert explain["error"] is None, explain
    assert "zéro" in explain["result"]["markdown"]
    # Eglot 1.9 (Emacs 28) does not open documents for the server (window/showDocument),
    # so codeexec.el shows the Markdown itself; newer Eglot opens the server's .md file.
    shown = observed["explanation_buffer"] or ""
    opened = [name for name in observed["visible_buffers"] if name.endswith(".md")]
    assert "zéro" in shown or opened, observed["visible_buffers"]

    models = [request.body.get("model") for request in fake_llm.model_requests]
    assert models == ["m-1", "m-1"]  # llm.model from .dir-locals.el


def test_a_server_command_not_on_exec_path_is_one_message_naming_it_and_the_fix(
    tmp_path: Path,
) -> None:
    """Emacs started outside the server's virtualenv: instead of Eglot's "Searching for
    program: No such file or directory", one error naming the command and how to fix it."""
    emacs_dir = str(Path(EMACS or "/usr/bin/emacs").parent)
    observed, _ = run_emacs(
        tmp_path, "x = 1\n", {}, "missing", path=os.pathsep.join([emacs_dir, "/usr/bin", "/bin"])
    )
    assert observed["found"] is None
    assert observed["connected"] is None
    message = observed["error"]
    # user-error formats with format-message: Emacs may curve the quotes
    assert re.search("[`‘]codeexec-lsp['’] is not on Emacs['’]s exec-path", message), message
    assert "pipx install" in message and "codeexec-server-command" in message


def test_a_server_that_dies_while_starting_is_one_message_with_its_command_and_stderr(
    tmp_path: Path,
) -> None:
    """Eglot alone says "-1: Server died"; codeexec.el names the command, the server's last
    stderr line and the fix."""
    failing = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('codeexec test: pretend pygls is missing\\n'); sys.exit(3)",
    ]
    observed, _ = run_emacs(tmp_path, "x = 1\n", {}, "exits", failing_cmd=failing)
    assert observed["connected"] is None
    message = observed["error"]
    assert sys.executable in message and "exited while starting" in message
    assert "pretend pygls is missing" in message
    assert "pipx install" in message and "codeexec-server-command" in message
