"""Finding the enclosing unit, the fix target and the imports around a selection."""

from __future__ import annotations

from codeexec_lsp.code_context import (
    MAX_FIX_UNIT_LINES,
    CodeUnit,
    DiagnosticInfo,
    build_context,
    find_enclosing,
    fix_target,
    module_imports,
)
from codeexec_lsp.results import ErrorInfo, RunResult

MODULE = '''\
"""Statistics helpers."""
from __future__ import annotations

import math
from typing import (
    TYPE_CHECKING,
    Sequence,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

try:
    import numpy as np
except ImportError:
    np = None


class Stats:
    """Numbers with summaries."""

    scale = compute_scale(
        1,
        2,
    )

    def __init__(self, xs: Sequence[float]) -> None:
        self.xs = list(xs)

    @property
    def mean(self) -> float:
        total = 0.0
        for x in self.xs:
            total += x
        return total / len(self.xs)


def report(xs):
    stats = Stats(xs)
    # print the mean
    print(
        stats.mean,
    )
    return math.floor(stats.mean)


report([])
'''
LINES = MODULE.split("\n")


def _line(text: str) -> int:
    """0-based index of the first line containing ``text``."""
    return next(index for index, line in enumerate(LINES) if text in line)


def _unit_lines(unit: CodeUnit | None) -> tuple[str, str] | None:
    if unit is None:
        return None
    return LINES[unit.start_line].strip(), LINES[unit.end_line].strip()


# --- find_enclosing -----------------------------------------------------------------------


def test_enclosing_method_includes_its_decorators() -> None:
    line = _line("total += x")
    unit = find_enclosing(MODULE, line - 1, line)
    assert unit is not None
    assert (unit.kind, unit.name) == ("function", "mean")
    assert _unit_lines(unit) == ("@property", "return total / len(self.xs)")
    assert unit.text.split("\n")[0] == "    @property"
    assert unit.text.endswith("        return total / len(self.xs)")


def test_a_range_starting_on_the_def_line_is_enclosed_by_the_class() -> None:
    unit = find_enclosing(MODULE, _line("def mean"), _line("total / len"))
    assert unit is not None
    assert (unit.kind, unit.name) == ("class", "Stats")


def test_top_level_code_has_no_enclosing_unit() -> None:
    assert find_enclosing(MODULE, _line("report([])"), _line("report([])")) is None
    assert find_enclosing("", 0, 0) is None


def test_enclosing_by_indentation_when_the_document_does_not_parse() -> None:
    broken = MODULE.replace("return math.floor(stats.mean)", "return math.floor(stats.mean")
    line = _line("stats = Stats(xs)")
    unit = find_enclosing(broken, line, line)
    assert unit is not None
    assert (unit.kind, unit.name) == ("function", "report")
    assert unit.text.startswith("def report(xs):\n")
    assert unit.text.endswith("\n    return math.floor(stats.mean")
    method = find_enclosing(broken, _line("total += x"), _line("total += x"))
    assert method is not None
    assert method.name == "mean"
    assert _unit_lines(method) == ("@property", "return total / len(self.xs)")


# --- fix_target ---------------------------------------------------------------------------


def test_a_diagnostic_line_targets_the_enclosing_function() -> None:
    line = _line("total / len")
    unit = fix_target(MODULE, line, line, selection_empty=True)
    assert (unit.kind, unit.name) == ("function", "mean")
    assert _unit_lines(unit) == ("@property", "return total / len(self.xs)")


def test_a_diagnostic_outside_functions_targets_the_statement() -> None:
    unit = fix_target(MODULE, _line("report([])"), _line("report([])"), selection_empty=True)
    assert (unit.kind, unit.text) == ("statement", "report([])")
    # In a class body: the class-level statement, not the whole class.
    unit = fix_target(MODULE, _line("        2,"), _line("        2,"), selection_empty=True)
    assert _unit_lines(unit) == ("scale = compute_scale(", ")")


def test_a_diagnostic_on_a_blank_line_targets_that_line() -> None:
    line = _line("np = None") + 1
    unit = fix_target(MODULE, line, line, selection_empty=True)
    assert (unit.kind, unit.start_line, unit.end_line) == ("lines", line, line)


def test_a_selection_is_widened_to_whole_statements() -> None:
    # Starts halfway through the multi-line print call.
    unit = fix_target(MODULE, _line("stats.mean,"), _line("return math.floor"))
    assert unit.kind == "selection"
    assert _unit_lines(unit) == ("print(", "return math.floor(stats.mean)")
    # Covers a `for` header but not its body.
    unit = fix_target(MODULE, _line("total = 0.0"), _line("for x in"))
    assert _unit_lines(unit) == ("total = 0.0", "total += x")
    # Covers the `except` clause of a try statement.
    unit = fix_target(MODULE, _line("except ImportError"), _line("except ImportError"))
    assert _unit_lines(unit) == ("try:", "np = None")


def test_a_selection_inside_a_block_is_not_widened() -> None:
    unit = fix_target(MODULE, _line("total += x"), _line("total += x"))
    assert (unit.start_line, unit.end_line) == (_line("total += x"), _line("total += x"))
    unit = fix_target(MODULE, _line("# print the mean"), _line("# print the mean"))
    assert unit.text == "    # print the mean"


def test_a_huge_function_gives_way_to_the_statement_inside_it() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FIX_UNIT_LINES + 5))
    source = f"def big():\n{body}\n    return x0 / 0\n"
    line = MAX_FIX_UNIT_LINES + 6
    unit = fix_target(source, line, line, selection_empty=True)
    assert (unit.kind, unit.text) == ("statement", "    return x0 / 0")


def test_fix_target_by_indentation_when_the_document_does_not_parse() -> None:
    broken = "import os\n\ndef f(x):\n    y = x +\n    return y\n\nprint(f(1))\n"
    unit = fix_target(broken, 3, 3, selection_empty=True)
    assert (unit.kind, unit.name, unit.start_line, unit.end_line) == ("function", "f", 2, 4)
    unit = fix_target(broken, 6, 6, selection_empty=True)
    assert (unit.kind, unit.start_line, unit.end_line) == ("lines", 6, 6)
    unit = fix_target(broken, 3, 4)
    assert (unit.kind, unit.start_line, unit.end_line) == ("selection", 3, 4)


def test_line_numbers_follow_crlf_and_form_feeds() -> None:
    source = "import os\r\n\x0c\r\ndef f():\r\n    return 1 / 0\r\n"
    unit = fix_target(source, 3, 3, selection_empty=True)
    assert (unit.name, unit.start_line, unit.end_line) == ("f", 2, 3)
    assert unit.text == "def f():\n    return 1 / 0"


# --- imports ------------------------------------------------------------------------------


def test_module_imports() -> None:
    assert module_imports(MODULE).split("\n") == [
        "from __future__ import annotations",
        "import math",
        "from typing import (",
        "TYPE_CHECKING,",
        "Sequence,",
        ")",
        "from collections.abc import Iterable",
        "import numpy as np",
    ]


def test_module_imports_when_the_document_does_not_parse() -> None:
    broken = "import os\nfrom a import (\n    b,\n)\nx = (\n  import_thing = 1\n"
    assert module_imports(broken) == "import os\nfrom a import (\n    b,\n)"


# --- build_context ------------------------------------------------------------------------


def test_build_context_for_explain_keeps_the_exact_selection() -> None:
    run = RunResult(status="error", error=ErrorInfo("ZeroDivisionError", "division by zero"))
    start = _line("total = 0.0")
    ctx = build_context(MODULE, "stats.py", start, start + 1, last_run=run)
    assert ctx.selection == "        total = 0.0\n        for x in self.xs:"
    assert (ctx.selection_start_line, ctx.selection_end_line) == (start, start + 1)
    assert ctx.enclosing is not None
    assert ctx.enclosing.name == "mean"
    assert "import math" in ctx.imports
    assert ctx.last_run is run


def test_build_context_for_a_fix_uses_the_fix_target() -> None:
    line = _line("total / len")
    diagnostic = DiagnosticInfo("division by zero", line, "codeexec", "ZeroDivisionError")
    ctx = build_context(
        MODULE, "stats.py", line, line, diagnostic=diagnostic, for_fix=True, selection_empty=True
    )
    assert ctx.selection.startswith("    @property\n    def mean(self) -> float:")
    assert ctx.selection_end_line == line
    assert ctx.enclosing is not None
    assert ctx.enclosing.name == "Stats"
    assert ctx.diagnostic == diagnostic
