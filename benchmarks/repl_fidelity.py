"""REPL fidelity: CPython's own doctest examples run through the session executor.

Each docstring of the modules below is one doctest: its examples run one by one in a fresh
session namespace seeded with the module's globals (doctest's `globs`), each as one run.
What a run shows is compared with what the example expects, with doctest's own
OutputChecker and the example's options: stdout then the trailing value's repr, or for an
exception `Type: message`. The denominator is the examples that pass under doctest itself in
this interpreter (so examples that depend on the machine do not count against us).

    python benchmarks/repl_fidelity.py [--modules fractions,statistics] [--show 20] [--json F]

Prints the match rate and the first mismatches (source, expected, got), the list to work on.
"""

from __future__ import annotations

import argparse
import asyncio
import doctest
import importlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult

# Pure-Python stdlib modules whose docstrings hold doctests (C modules' docstrings hold few).
# (A module that cannot be imported is left out: the count says how many ran.)
MODULES = (
    "_pydecimal",
    "fractions",
    "statistics",
    "textwrap",
    "difflib",
    "collections",
    "functools",
    "heapq",
    "bisect",
    "string",
    "base64",
    "shlex",
    "pprint",
    "ipaddress",
    "enum",
    "dataclasses",
    "typing",
    "inspect",
    "calendar",
    "fnmatch",
    "posixpath",
    "ntpath",
    "urllib.parse",
    "email.utils",
    "html",
    "numbers",
    "operator",
    "copy",
    "graphlib",
    "contextlib",
    "json",
    "tokenize",
    "ast",
    "doctest",
    "pickle",
    "pickletools",
    "random",
    "reprlib",
    "secrets",
    "struct",
    "zipfile",
    # CPython's own doctest-based tests (absent where a distribution splits off `test`):
    # syntax errors and their messages, generators, comprehensions, unpacking, calls.
    "test.test_syntax",
    "test.test_generators",
    "test.test_genexps",
    "test.test_listcomps",
    "test.test_setcomps",
    "test.test_unpack",
    "test.test_unpack_ex",
    "test.test_extcall",
    "test.test_descrtut",
    "test.test_deque",
    "test.test_metaclass",
    "test.test_pep646_syntax",
    "test.test_exceptions",
    "test.test_code",
    "test.test_defaultdict",
    "test.test_sort",
)

SEED = (
    "import importlib as _codeexec_importlib\n"
    "globals().update({{k: v for k, v in vars(_codeexec_importlib.import_module({module!r}))"
    ".items() if not k.startswith('__')}})\n"
    "del _codeexec_importlib\n"
)
CLEAR = (
    "for _codeexec_name in [n for n in globals() if not n.startswith('__')]:\n"
    "    del globals()[_codeexec_name]\n"
    "globals().pop('_codeexec_name', None)\n"
)


@dataclass
class Mismatch:
    test: str
    source: str
    want: str
    got: str


def collect(modules: list[str]) -> list[tuple[str, doctest.DocTest]]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: list[tuple[str, doctest.DocTest]] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for test in sorted(finder.find(module), key=lambda t: t.name):
            if test.examples:
                tests.append((name, test))
    return tests


def passes_in_doctest(test: doctest.DocTest) -> list[bool]:
    """Which examples pass under doctest itself, run in order as doctest runs them."""
    results: list[bool] = []

    class Recorder(doctest.DocTestRunner):
        def report_success(self, out: Any, test: Any, example: Any, got: str) -> None:
            results.append(True)

        def report_failure(self, out: Any, test: Any, example: Any, got: str) -> None:
            results.append(False)

        def report_unexpected_exception(self, out: Any, test: Any, example: Any, exc: Any) -> None:
            results.append(False)

    # Run as a REPL runs code, in __main__: an example that shows the module's name
    # (`<class 'fractions.X'>`) would show `__main__` in any REPL, so it is not counted.
    globs = dict(test.globs, __name__="__main__")
    copy = doctest.DocTest(
        test.examples, globs, test.name, test.filename, test.lineno, test.docstring
    )
    runner = Recorder(verbose=False)
    runner.run(copy, out=lambda text: None, clear_globs=True)
    return results


def shown(result: RunResult) -> tuple[str, str | None]:
    """(what the session printed, its exception line as doctest formats it, or None)."""
    got = result.stdout
    if result.value is not None:
        got += result.value + "\n"
    if got and not got.endswith("\n"):
        got += "\n"  # as doctest's own capture does ("make sure there's a trailing newline")
    if result.error is None:
        return got, None
    message = result.error.message.split("\n")[0] if result.error.message else ""
    return got, f"{result.error.type}: {message}\n" if message else f"{result.error.type}\n"


def matches(example: doctest.Example, result: RunResult, flags: int) -> tuple[bool, str]:
    checker = doctest.OutputChecker()
    got, exception = shown(result)
    if result.status not in ("ok", "error"):
        return False, f"[{result.status}: {result.message}]"
    if example.exc_msg is None:
        if exception is not None:
            return False, got + "Traceback (most recent call last):\n...\n" + exception
        return checker.check_output(example.want, got, flags), got
    if exception is None:
        return False, got
    if checker.check_output(example.exc_msg, exception, flags):
        return True, exception
    if flags & doctest.IGNORE_EXCEPTION_DETAIL:
        expected = example.exc_msg.split(":")[0].rsplit(".", 1)[-1]
        return exception.split(":")[0].strip().rsplit(".", 1)[-1] == expected.strip(), exception
    return False, exception


async def measure(modules: list[str], show: int) -> dict[str, Any]:
    tests = collect(modules)
    folder = Path(tempfile.mkdtemp(prefix="codeexec-fidelity-"))
    path = folder / "example.py"
    settings = Settings(timeout=20.0)
    session = SessionExecutor()
    counted = matched = skipped = 0
    mismatches: list[Mismatch] = []
    started = time.perf_counter()

    async def run(code: str) -> RunResult:
        return await session.run(
            build_request(snippet.whole_file(code, str(path)), settings, folder)
        )

    try:
        for module, test in tests:
            reference = passes_in_doctest(test)
            await run(CLEAR)
            await run(SEED.format(module=module))
            for index, example in enumerate(test.examples):
                flags = 0
                for flag, on in example.options.items():
                    flags = flags | flag if on else flags & ~flag
                if flags & doctest.SKIP:
                    continue
                result = await run(example.source)
                if index >= len(reference) or not reference[index]:
                    skipped += 1
                    continue
                counted += 1
                ok, got = matches(example, result, flags)
                if ok:
                    matched += 1
                elif len(mismatches) < show:
                    want = example.want if example.exc_msg is None else example.exc_msg
                    mismatches.append(Mismatch(test.name, example.source, want, got))
    finally:
        await session.close()
    return {
        "python": sys.version.split()[0],
        "docstrings": len(tests),
        "examples_counted": counted,
        "examples_matching": matched,
        "match_rate": matched / counted if counted else None,
        "not_passing_in_doctest_itself": skipped,
        "seconds": time.perf_counter() - started,
        "mismatches": [m.__dict__ for m in mismatches],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", help="comma-separated module names (default: the list)")
    parser.add_argument("--show", type=int, default=20, help="mismatches to print")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    modules = args.modules.split(",") if args.modules else list(MODULES)
    report = asyncio.run(measure(modules, args.show))
    for mismatch in report["mismatches"]:
        print(f"--- {mismatch['test']}\n{mismatch['source']}", end="")
        print(f"expected:\n{mismatch['want']}got:\n{mismatch['got']}")
    rate = report["match_rate"]
    print(
        f"{report['examples_matching']}/{report['examples_counted']} examples match ({rate:.1%})"
        if rate is not None
        else "no examples",
        f"from {report['docstrings']} docstrings in {report['seconds']:.0f} s "
        f"(Python {report['python']}; {report['not_passing_in_doctest_itself']} examples "
        "that fail under doctest itself not counted)",
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
