"""The code around a selection that an explanation or a fix needs, found with ``ast``.

All line numbers here are 0-based and spans are inclusive (``start_line``..``end_line``),
like the line range the editor sends. When the document does not parse (the user is
mid-edit), indentation heuristics stand in for the syntax tree.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from codeexec_lsp.lines import split_lines
from codeexec_lsp.results import RunResult

UnitKind = Literal["function", "class", "statement", "selection", "lines"]

MAX_FIX_UNIT_LINES = 200
"""A diagnostic's enclosing function longer than this is too big to send and rewrite
whole; the fix target shrinks to the largest statement inside it that fits."""

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEF_LINE = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+def|def|class)[ \t]+(?P<name>\w+)")
_IMPORT_LINE = re.compile(r"^(?:import|from)[ \t]+[\w.]")
# Lines that continue the statement above them rather than start a new top-level one.
_CONTINUATION = re.compile(r"^(?:[)\]}]|else\b|elif\b|except\b|finally\b|case\b)")


@dataclass(frozen=True)
class DiagnosticInfo:
    """A diagnostic to fix: ours from a run, or another server's (pyright, ruff).
    ``line`` is 0-based, as in LSP."""

    message: str
    line: int
    source: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class CodeUnit:
    """Whole lines ``start_line``..``end_line`` (0-based, inclusive) of the document."""

    kind: UnitKind
    name: str | None
    text: str
    start_line: int
    end_line: int

    @property
    def line_count(self) -> int:
        return self.end_line - self.start_line + 1


@dataclass(frozen=True)
class CodeContext:
    """What a prompt may say about the code. For a fix, ``selection`` is the fix target."""

    path: str
    selection: str
    selection_start_line: int
    enclosing: CodeUnit | None = None
    imports: str = ""
    diagnostic: DiagnosticInfo | None = None
    last_run: RunResult | None = None

    @property
    def selection_end_line(self) -> int:
        return self.selection_start_line + max(len(split_lines(self.selection)), 1) - 1


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes in the source
        return None


def _span(node: ast.stmt) -> tuple[int, int]:
    """0-based inclusive lines of a statement, decorators included."""
    start = node.lineno
    if isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)):
        start = min([start, *(decorator.lineno for decorator in node.decorator_list)])
    return start - 1, (node.end_lineno or node.lineno) - 1


def _blocks(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    """The statement lists nested directly in a compound statement."""
    for name in ("body", "orelse", "finalbody"):
        block = getattr(node, name, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block
    for handler in getattr(node, "handlers", ()):
        yield handler.body
    for case in getattr(node, "cases", ()):
        yield case.body


def _block_span(block: list[ast.stmt]) -> tuple[int, int]:
    return _span(block[0])[0], _span(block[-1])[1]


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.stmt))


def _chain(tree: ast.Module, start: int, end: int) -> list[ast.stmt]:
    """Statements containing lines start..end, outermost first."""
    chain: list[ast.stmt] = []
    block: list[ast.stmt] = tree.body
    while True:
        for node in block:
            first, last = _span(node)
            if first <= start and end <= last:
                chain.append(node)
                inner = [b for b in _blocks(node) if _contains(_block_span(b), start, end)]
                if inner:
                    block = inner[0]
                    break
                return chain
        else:
            return chain


def _contains(span: tuple[int, int], start: int, end: int) -> bool:
    return span[0] <= start and end <= span[1]


def _node_name(node: ast.stmt) -> str | None:
    return node.name if isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)) else None


def _kind(node: ast.stmt) -> UnitKind:
    if isinstance(node, _FUNCTION_NODES):
        return "function"
    if isinstance(node, ast.ClassDef):
        return "class"
    return "statement"


def _unit(lines: list[str], kind: UnitKind, name: str | None, start: int, end: int) -> CodeUnit:
    return CodeUnit(kind, name, "\n".join(lines[start : end + 1]), start, end)


def _clamp(lines: list[str], start: int, end: int) -> tuple[int, int]:
    if start > end:
        start, end = end, start
    last = max(len(lines) - 1, 0)
    return min(max(start, 0), last), min(max(end, 0), last)


# --- enclosing function or class ---------------------------------------------------------


def find_enclosing(text: str, start_line: int, end_line: int) -> CodeUnit | None:
    """The innermost function or class whose body holds the whole range (a range that
    starts on a ``def``/``class`` or decorator line is not inside that definition)."""
    lines = split_lines(text)
    if not lines:
        return None
    start, end = _clamp(lines, start_line, end_line)
    tree = _parse(text)
    if tree is None:
        return _enclosing_by_indentation(lines, start, end)
    best: ast.stmt | None = None
    for node in _statements(tree):
        if not isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)):
            continue
        first, last = _span(node)
        if node.lineno - 1 < start and end <= last and (best is None or first >= _span(best)[0]):
            best = node
    if best is None:
        return None
    first, last = _span(best)
    return _unit(lines, _kind(best), _node_name(best), first, last)


def _indent_width(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: list[str], header: int) -> int:
    """Last line of the indented block opened at ``header`` (trailing blank lines excluded)."""
    indent = _indent_width(lines[header])
    last = header
    for index in range(header + 1, len(lines)):
        if not _is_code(lines[index]):
            continue
        if _indent_width(lines[index]) <= indent and not lines[index].lstrip().startswith(
            (")", "]", "}")
        ):
            break
        last = index
    return last


def _decorated_start(lines: list[str], header: int) -> int:
    indent = _indent_width(lines[header])
    start = header
    while (
        start > 0
        and lines[start - 1].lstrip().startswith("@")
        and _indent_width(lines[start - 1]) == indent
    ):
        start -= 1
    return start


def _enclosing_by_indentation(lines: list[str], start: int, end: int) -> CodeUnit | None:
    code = [lines[i] for i in range(start, end + 1) if _is_code(lines[i])]
    if not code:
        return None
    level = min(_indent_width(line) for line in code)
    for header in range(start - 1, -1, -1):
        if not _is_code(lines[header]):
            continue
        width = _indent_width(lines[header])
        if width >= level:
            continue
        match = _DEF_LINE.match(lines[header])
        last = _block_end(lines, header)
        if match and last >= end:
            kind: UnitKind = "class" if lines[header].lstrip().startswith("class") else "function"
            return _unit(lines, kind, match["name"], _decorated_start(lines, header), last)
        level = width  # an `if`/`for` header: keep looking further out
    return None


# --- fix target ---------------------------------------------------------------------------


def fix_target(
    text: str, start_line: int, end_line: int, *, selection_empty: bool = False
) -> CodeUnit:
    """The smallest unit a fix should replace.

    A non-empty selection is the target, widened to whole statements so that the model
    rewrites (and we re-parse) complete code: a selection starting halfway through a call or
    covering an ``if`` header but not its body grows to the whole statement.

    ``selection_empty`` (a cursor or a diagnostic's line): the innermost function holding
    the lines, else the top-level statement holding them (inside a class: the statement of
    the class body), else just those lines. A function longer than MAX_FIX_UNIT_LINES is
    replaced by the largest statement inside it that fits.
    """
    lines = split_lines(text)
    if not lines:
        return CodeUnit("lines", None, "", 0, 0)
    start, end = _clamp(lines, start_line, end_line)
    tree = _parse(text)
    if tree is None:
        if selection_empty:
            return _target_by_indentation(lines, start, end)
        return _unit(lines, "selection", None, start, end)
    if not selection_empty:
        code = [index for index in range(start, end + 1) if _is_code(lines[index])]
        if not code:
            return _unit(lines, "selection", None, start, end)
        # Blank and comment lines at the edges belong to no statement: they must not pull
        # in, say, the whole function whose first body line they precede.
        first, last = _widen_to_statements(tree, code[0], code[-1])
        return _unit(lines, "selection", None, min(first, start), max(last, end))
    chain = _chain(tree, start, end)
    if not chain:
        return _unit(lines, "lines", None, start, end)
    functions = [node for node in chain if isinstance(node, _FUNCTION_NODES)]
    if functions:
        innermost = chain.index(functions[-1])
        candidates = chain[innermost:]
    else:
        candidates = [node for node in chain if not isinstance(node, ast.ClassDef)] or chain
    for node in candidates:
        first, last = _span(node)
        if last - first + 1 <= MAX_FIX_UNIT_LINES:
            return _unit(lines, _kind(node), _node_name(node), first, last)
    first, last = _span(candidates[-1])
    return _unit(lines, _kind(candidates[-1]), _node_name(candidates[-1]), first, last)


def _widen_to_statements(tree: ast.Module, start: int, end: int) -> tuple[int, int]:
    changed = True
    while changed:
        changed = False
        for node in _statements(tree):
            first, last = _span(node)
            if last < start or first > end or (start <= first and last <= end):
                continue  # disjoint, or already wholly inside
            inside_one_block = any(
                _contains(_block_span(block), start, end) for block in _blocks(node)
            )
            if inside_one_block:
                continue  # the range is within this statement's body: look deeper
            start, end = min(start, first), max(end, last)
            changed = True
    return start, end


def _target_by_indentation(lines: list[str], start: int, end: int) -> CodeUnit:
    enclosing = _enclosing_by_indentation(lines, start, end)
    if enclosing is not None and enclosing.kind == "function":
        return enclosing
    first = start
    while first > 0 and not (
        _is_code(lines[first])
        and _indent_width(lines[first]) == 0
        and not _CONTINUATION.match(lines[first])
    ):
        first -= 1
    last = end
    for index in range(end + 1, len(lines)):
        line = lines[index]
        if _is_code(line) and _indent_width(line) == 0 and not _CONTINUATION.match(line):
            break
        if line.strip():
            last = index
    return _unit(lines, "lines", None, first, last)


# --- imports ------------------------------------------------------------------------------


def module_imports(text: str) -> str:
    """The module's import statements, in order: top-level ones and those one level down in
    a top-level ``if``/``try`` (``if TYPE_CHECKING:``, ``try: import x except ...``)."""
    lines = split_lines(text)
    tree = _parse(text)
    if tree is None:
        return _imports_by_lines(lines)
    found: list[str] = []
    for node in tree.body:
        nested = [node]
        if isinstance(node, (ast.If, ast.Try)):
            nested = [inner for block in _blocks(node) for inner in block]
        for inner in nested:
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                first, last = _span(inner)
                found.append("\n".join(line.strip() for line in lines[first : last + 1]))
    return "\n".join(dict.fromkeys(found))


def _imports_by_lines(lines: list[str]) -> str:
    found: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not _IMPORT_LINE.match(line):
            index += 1
            continue
        statement = [line.rstrip()]
        open_paren = "(" in line and ")" not in line
        while (open_paren or statement[-1].endswith("\\")) and index + 1 < len(lines):
            index += 1
            statement.append(lines[index].rstrip())
            if ")" in lines[index]:
                open_paren = False
        found.append("\n".join(statement))
        index += 1
    return "\n".join(found)


# --- the whole context --------------------------------------------------------------------


def build_context(
    text: str,
    path: str,
    start_line: int,
    end_line: int,
    *,
    diagnostic: DiagnosticInfo | None = None,
    last_run: RunResult | None = None,
    for_fix: bool = False,
    selection_empty: bool = False,
) -> CodeContext:
    """Context for lines start_line..end_line. ``for_fix`` turns the range into the fix
    target (see fix_target) first, so the selection is exactly what the model must replace."""
    lines = split_lines(text)
    start, end = _clamp(lines, start_line, end_line)
    if for_fix:
        target = fix_target(text, start, end, selection_empty=selection_empty)
        start, end, selection = target.start_line, target.end_line, target.text
    else:
        selection = "\n".join(lines[start : end + 1])
    return CodeContext(
        path=path,
        selection=selection,
        selection_start_line=start,
        enclosing=find_enclosing(text, start, end),
        imports=module_imports(text),
        diagnostic=diagnostic,
        last_run=last_run,
    )
