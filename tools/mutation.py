"""Mutation testing of the modules that carry promises, on demand (slow: not part of CI).

    pip install -e '.[dev]'                 # brings mutmut
    python tools/mutation.py                # every promise module
    python tools/mutation.py redact logs    # some of them (names as in the table below)
    python tools/mutation.py --survivors    # also print each surviving mutant's diff
    python tools/mutation.py app --only '*_authorize*' '*_read_body*'   # some functions
    python tools/mutation.py --promises     # the six promise tests each catch their bug

mutmut changes one thing at a time in a module (a comparison, a constant, an argument...),
runs the tests that cover the changed function, and counts the changes no test noticed. Each
module is run against the fast unit tests that exercise it (MODULES below), in a scratch
copy of the project, so the work tree is never touched and runs can go side by side.

It prints one line per module: mutants, killed, survived, no tests, timeouts, the score
(killed + timeouts over all mutants that ran) and how long it took, then the survivors'
names (and diffs with --survivors). Survivors that are equivalent (no behaviour change) are
listed with the reason in tools/MUTATION.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMISES = "tests/unit/test_promises.py"

# module (short name) -> (file, the tests that exercise it: files or node ids)
MODULES: dict[str, tuple[str, list[str]]] = {
    # line mapping
    "snippet": (
        "codeexec_lsp/snippet.py",
        [
            "tests/unit/test_snippet.py",
            "tests/unit/test_snippet_edges.py",
            "tests/unit/test_snippet_mutants.py",
            "tests/unit/test_cells_cache.py",
            "tests/unit/test_runner_mapping.py",
        ],
    ),
    "runner": (
        "codeexec_lsp/execution/runner.py",
        [
            "tests/unit/test_runner_mapping.py",
            "tests/unit/test_runner_child.py",
            "tests/unit/test_runner_run.py",
            "tests/unit/test_runner_context.py",
            "tests/unit/test_runner_compile.py",
            "tests/unit/test_runner_errors.py",
        ],
    ),
    "outcome": (
        "codeexec_lsp/execution/outcome.py",
        ["tests/unit/test_runner_mapping.py", "tests/unit/test_outcome.py"],
    ),
    "positions": (
        "codeexec_lsp/positions.py",
        ["tests/unit/test_present.py", "tests/unit/test_snippet.py"],
    ),
    "lines": (
        "codeexec_lsp/lines.py",
        ["tests/unit/test_lines.py", "tests/unit/test_edit_boundaries.py"],
    ),
    # secrets
    "environment": (
        "codeexec_lsp/execution/environment.py",
        ["tests/unit/test_environment.py"],
    ),
    "redact": (
        "codeexec_lsp/redact.py",
        ["tests/unit/test_logs.py", "tests/unit/test_llm_redaction.py", PROMISES],
    ),
    "logs": ("codeexec_lsp/logs.py", ["tests/unit/test_logs.py", PROMISES]),
    # limits
    "capture": ("codeexec_lsp/execution/capture.py", ["tests/unit/test_capture.py"]),
    "local": (
        "codeexec_lsp/execution/local.py",
        [
            "tests/unit/test_local_executor.py",
            "tests/unit/test_live.py",
            "tests/unit/test_mutation_launcher.py",
            "tests/unit/test_mutation_local.py",
        ],
    ),
    # the sandbox launcher: every process-based run starts through it
    "launcher": (
        "codeexec_lsp/execution/launcher.py",
        [
            "tests/unit/test_local_executor.py",
            "tests/unit/test_sandbox.py",
            "tests/unit/test_mutation_launcher.py",
            "tests/unit/test_mutation_local.py",
        ],
    ),
    # edits and fixes
    "edits": (
        "codeexec_lsp/edits.py",
        ["tests/unit/test_edits.py", "tests/unit/test_edit_boundaries.py"],
    ),
    "fix": (
        "codeexec_lsp/actions/fix.py",
        [
            "tests/unit/test_fix_loop.py",
            "tests/unit/test_untrusted_answers.py",
            "tests/unit/test_mutation_fix.py",
            PROMISES,
        ],
    ),
    "untrusted": (
        "codeexec_lsp/actions/untrusted.py",
        [
            "tests/unit/test_untrusted_answers.py",
            "tests/unit/test_untrusted_rules.py",
            "tests/unit/test_mutation_untrusted.py",
        ],
    ),
    # the /execute API's auth and limits
    "app": (
        "codeexec_lsp/api/app.py",
        [
            "tests/unit/test_api_body.py",
            "tests/unit/test_api_server.py",
            "tests/unit/test_api_abuse.py",
            PROMISES,
            # what the strict box promises code sent to /execute
            "tests/unit/test_sandbox.py::test_the_api_server_runs_code_without_network_or_writes_outside",
            "tests/hostile/test_boxes.py::test_an_api_tenant_cannot_see_another_tenants_files",
        ],
    ),
    "admission": ("codeexec_lsp/api/admission.py", ["tests/unit/test_api_server.py"]),
}

# Tests that cannot run against mutated code: they start the project under another
# interpreter (the system python3, without mutmut, which every mutated module imports).
DESELECT: dict[str, list[str]] = {
    "launcher": ["tests/unit/test_sandbox.py::test_a_non_root_server_degrades_to_what_it_may_do"],
    "local": ["tests/unit/test_sandbox.py::test_a_non_root_server_degrades_to_what_it_may_do"],
}

# Issue 15's six promises, each with the realistic bug that once went unnoticed: (what,
# file, text, the bug put in its place, the tests that must fail on it). `--promises` puts
# each bug in a scratch copy and runs its tests; they must pass on the copy without the bug.
E2E_PROMISES = "tests/e2e/test_promises.py"
PROMISE_BUGS: list[tuple[str, str, str, str, list[str]]] = [
    (
        "a fix raising a different exception is accepted",
        "codeexec_lsp/actions/fix.py",
        '        if result.status == "ok":',
        '        if result.status == "ok" or (result.error is not None and request.last_run is not'
        " None and request.last_run.error is not None and result.error.type !="
        " request.last_run.error.type):",
        [f"{PROMISES}::test_candidate_raising_a_new_exception_is_neither_verified_nor_applied"],
    ),
    (
        "the /execute token is compared by length only",
        "codeexec_lsp/api/app.py",
        'if not hmac.compare_digest(presented.encode("latin-1"), self._token):',
        'if len(presented.encode("latin-1")) != len(self._token):',
        [f"{PROMISES}::test_a_token_close_to_the_real_one_is_refused_and_the_code_never_runs"],
    ),
    (
        "the server's stale-version check is gone",
        "codeexec_lsp/actions/fix_session.py",
        "    return current_version == fixed_version and outcome.target is not None",
        "    return outcome.target is not None",
        [
            f"{E2E_PROMISES}::test_verified_fix_for_an_older_version_is_refused_by_the_server",
            f"{E2E_PROMISES}::test_unverified_fix_for_an_older_version_is_refused_by_the_server",
        ],
    ),
    (
        "configure_logging builds the redacting filter but does not attach it",
        "codeexec_lsp/logs.py",
        "    redaction = install_redaction(handler, secret_env_names)",
        "    from codeexec_lsp.redact import RedactingFilter\n"
        "    redaction = RedactingFilter()\n"
        "    redaction.add_env_names(secret_env_names)",
        [f"{PROMISES}::test_configure_logging_alone_redacts_every_handler_from_the_first_line"],
    ),
    (
        "a client column is used without conversion",
        "codeexec_lsp/positions.py",
        '    """The code-point column at client offset `units`, clamped to the line."""\n',
        '    """The code-point column at client offset `units`, clamped to the line."""\n'
        "    return max(0, min(units, len(line_text)))\n",
        [
            f"{E2E_PROMISES}::test_selection_after_an_astral_character_runs_exactly_the_selected_code"
        ],
    ),
    (
        "`truncated` ignores stderr",
        "codeexec_lsp/execution/outcome.py",
        "truncated=stdout.truncated or stderr.truncated,",
        "truncated=stdout.truncated,",
        [f"{PROMISES}::test_only_stderr_overflowing_marks_the_run_truncated"],
    ),
]

KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # mutmut's exit codes: a test failed or timed out
SURVIVED, NO_TESTS, SKIPPED = 0, {5, 33}, 34


@dataclass
class Score:
    module: str
    total: int = 0
    killed: int = 0
    survived: int = 0
    no_tests: int = 0
    other: int = 0
    seconds: float = 0.0
    survivors: tuple[str, ...] = ()

    @property
    def ran(self) -> int:
        return self.killed + self.survived + self.no_tests + self.other

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.ran if self.ran else 0.0


def copy_project(destination: Path, rev: str | None) -> None:
    """The tracked files (as in the work tree, or at `rev`) into `destination`."""
    if rev is not None:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
        return
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file() and not name.startswith(("editors/", "mutants/")):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def configure(project: Path, path: str, tests: list[str], deselect: Sequence[str] = ()) -> None:
    """Point [tool.mutmut] of the copy's pyproject at one module and its tests."""
    pyproject = project / "pyproject.toml"
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", pyproject.read_text())
    present = [test for test in tests if (project / test.split("::")[0]).exists()]
    if not present:
        # An empty selection would make mutmut run the whole suite.
        raise FileNotFoundError(f"none of the tests for {path} exist: {', '.join(tests)}")
    pytest_args = ["-p", "no:cacheprovider"]
    for test in deselect:
        pytest_args += ["--deselect", test]
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["codeexec_lsp"]\n'
        f"only_mutate = {json.dumps([path])}\n"
        f"pytest_add_cli_args = {json.dumps(pytest_args)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(present)}\n"
    )
    pyproject.write_text(text.rstrip("\n") + "\n" + section)


def mutmut_command() -> list[str]:
    beside = Path(sys.executable).with_name("mutmut")
    found = str(beside) if beside.exists() else shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed: pip install -e '.[dev]'")
    return [found]


def score_of(
    project: Path, name: str, path: str, seconds: float, only: Sequence[str] = ()
) -> Score:
    meta = project / "mutants" / (path + ".meta")
    score = Score(name, seconds=seconds)
    if not meta.exists():
        return score
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    survivors = []
    for key, code in codes.items():
        if only and not any(fnmatch.fnmatch(key, pattern) for pattern in only):
            continue
        score.total += 1
        if code in KILLED:
            score.killed += 1
        elif code == SURVIVED:
            score.survived += 1
            survivors.append(key)
        elif code in NO_TESTS:
            score.no_tests += 1
            survivors.append(key)
        elif code != SKIPPED:
            score.other += 1
    score.survivors = tuple(sorted(survivors))
    return score


def run_module(
    name: str,
    rev: str | None,
    children: int,
    keep: Path | None,
    show: bool,
    only: Sequence[str] = (),
) -> Score:
    path, tests = MODULES[name]
    project = Path(tempfile.mkdtemp(prefix=f"codeexec-mutation-{name}-"))
    # mkdtemp makes it 0700: the sandbox tests run code under another uid (nobody), which
    # must still reach the copy's sandbox_child.py and runner.py, as it reaches the project.
    project.chmod(0o755)
    try:
        copy_project(project, rev)
        configure(project, path, tests, DESELECT.get(name, ()))
        started = time.monotonic()
        log = project / "mutmut.log"
        with log.open("w") as out:
            subprocess.run(
                [*mutmut_command(), "run", "--max-children", str(children), *only],
                cwd=project,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                check=False,
            )
        score = score_of(project, name, path, time.monotonic() - started, only)
        if score.total == 0:
            tail = log.read_text(errors="replace")[-2000:]
            print(f"{name}: mutmut produced no results; the end of its log:\n{tail}")
        if show:
            for key in score.survivors:
                shown = subprocess.run(
                    [*mutmut_command(), "show", key], cwd=project, capture_output=True, text=True
                )
                print(shown.stdout)
        return score
    finally:
        if keep is not None:
            target = keep / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(project), target)
        else:
            shutil.rmtree(project, ignore_errors=True)


def check_promises(rev: str | None) -> bool:
    """Each of PROMISE_BUGS: its tests pass on a clean copy and fail with the bug put in."""
    every_bug_caught = True
    for what, path, text, bug, tests in PROMISE_BUGS:
        verdicts = []
        for mutated in (False, True):
            project = Path(tempfile.mkdtemp(prefix="codeexec-promise-"))
            project.chmod(0o755)
            try:
                copy_project(project, rev)
                source = project / path
                original = source.read_text()
                if original.count(text) != 1:
                    sys.exit(f"{path} changed: update PROMISE_BUGS ({what!r}) in {__file__}")
                if mutated:
                    source.write_text(original.replace(text, bug))
                done = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                    cwd=project,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                )
                lines = done.stdout.strip().splitlines() or ["no output"]
                verdicts.append((done.returncode, lines[-1]))
            finally:
                shutil.rmtree(project, ignore_errors=True)
        (clean_code, clean), (bug_code, with_bug) = verdicts
        caught = clean_code == 0 and bug_code == 1
        every_bug_caught &= caught
        print(
            f"{'caught' if caught else 'MISSED'}: {what} "
            f"(clean: {clean}; with the bug: {with_bug})",
            flush=True,
        )
    return every_bug_caught


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    parser.add_argument("--rev", help="test this commit instead of the work tree")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run side by side")
    parser.add_argument("--keep", type=Path, help="keep each scratch copy under this folder")
    parser.add_argument("--survivors", action="store_true", help="print survivors' diffs")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="GLOB",
        help="only mutants whose names match, e.g. '*_authorize*' (the functions of a promise)",
    )
    parser.add_argument(
        "--promises",
        action="store_true",
        help="instead: check that the tests of issue 15's six promises catch their bugs",
    )
    args = parser.parse_args()
    if args.promises:
        sys.exit(0 if check_promises(args.rev) else 1)
    names = args.modules or list(MODULES)
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    scores = []
    print(
        f"{'module':<12} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} "
        f"{'other':>5} {'score':>7} {'time':>7}"
    )
    for name in names:
        score = run_module(name, args.rev, args.jobs, args.keep, args.survivors, args.only)
        scores.append(score)
        print(
            f"{name:<12} {score.total:>7} {score.killed:>6} {score.survived:>8} "
            f"{score.no_tests:>8} {score.other:>5} {score.percent:>6.1f}% "
            f"{score.seconds:>6.0f}s",
            flush=True,
        )
    killed = sum(score.killed for score in scores)
    ran = sum(score.ran for score in scores)
    print(
        f"{'all':<12} {sum(s.total for s in scores):>7} {killed:>6} "
        f"{sum(s.survived for s in scores):>8} {sum(s.no_tests for s in scores):>8} "
        f"{sum(s.other for s in scores):>5} {100.0 * killed / ran if ran else 0.0:>6.1f}%"
    )
    for score in scores:
        for key in score.survivors:
            print(f"survived: {key}")


if __name__ == "__main__":
    main()
