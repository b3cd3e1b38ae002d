"""Pull the replacement for a fix target out of a model's free-form answer.

The rules, in order:

1. Refuse answers over MAX_ANSWER_CHARS; normalise CRLF/CR to LF; drop ``<think>``
   sections (reasoning models served by Ollama or vLLM emit them, with code inside).
2. Candidates are the fenced blocks (````` or ``~~~``, any length, closed by the same fence;
   an unclosed last block runs to the end) tagged as Python (``python``, ``py``,
   ``python3``, ``py3``, ``ipython``); if there are none, the untagged blocks. Blocks in
   other languages (bash, diff, text) are never taken. Without any fence, the whole answer
   is the one candidate, if it is Python that does more than name a value (so "OK" or
   "None" is not mistaken for code).
3. Whole-file answers: given the document, a candidate that contains the unchanged lines
   around the target (see _Surroundings) is cut down to the part that replaces the target.
4. Re-indentation: the candidate is shifted so its first line has the target's first-line
   indentation, keeping relative indentation. Other readings are tried too (only the first
   line lost its indentation; the block's least-indented line maps to the target's; tabs or
   a different indent width converted to the target's style). The winner parses and has the
   most lines equal to the target's, then the most lines at indentation levels the target
   uses; ties go to the plain shift.
5. Trailing whitespace is stripped, except inside multi-line strings and where the target
   line had it (so unchanged lines stay unchanged); blank lines around the target are kept.
6. Every candidate must parse (after dedent). Among those that do, the winner is the one
   that (a) still defines the functions and classes the target defines, then (b) differs
   from the target (answers often quote the original before the fix), then (c) is most
   similar to the target; remaining ties go to the earliest block.
7. The answer is untrusted: shell scripts (```bash, ```sh... blocks) and diffs are never
   taken, a candidate with IPython shell escapes (``!pip install``, ``%system``) is refused
   as shell, and a block whose first line names another file (``# utils.py``) is for that
   file, not this one. What the code itself may do is checked by actions/untrusted.py.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import textwrap
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

from codeexec_lsp.lines import split_lines
from codeexec_lsp.llm.base import LlmBadAnswer

MAX_ANSWER_CHARS = 200_000
PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3"})
SHELL_TAGS = frozenset(
    {"bash", "sh", "shell", "zsh", "fish", "console", "shell-session", "powershell", "ps1"}
    | {"pwsh", "cmd", "bat", "batch", "dockerfile", "makefile"}
)

_OPEN_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_TAG = re.compile(r"[\s{.]*([A-Za-z0-9_+-]*)")
_THINKING = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL)
_UNCLOSED_THINKING = re.compile(r"<(?:think|thinking)>.*", re.DOTALL)
_TOKENS = re.compile(r"\w+|[^\w\s]")
_SHELL_ESCAPE = re.compile(r"^\s*(!|%{1,2}(system|sx|sc|bash|sh|script)\b)")
_FILE_HEADER = re.compile(
    r"^\s*#\s*(?:(?:file(?:name)?|path)\s*:\s*)?[`'\"]?(?P<path>[\w./\\-]+\.pyi?)[`'\"]?\s*$",
    re.IGNORECASE,
)
_SIMILARITY_WORK_LIMIT = 4_000_000
_RETRY_HINT = "Try again, or try another model (llm.model)."


class NoCodeInAnswer(LlmBadAnswer):
    """The answer holds no code that could replace the target."""


class AnswerNotPython(NoCodeInAnswer):
    """The answer's code does not parse as Python."""


class AnswerTooLong(LlmBadAnswer):
    """The answer is too long to be a replacement for the target."""


class _Unusable(Exception):
    """One candidate cannot be used; the message says why."""

    def __init__(self, message: str, *, not_python: bool = False) -> None:
        super().__init__(message)
        self.not_python = not_python


@dataclass(frozen=True)
class _Block:
    tag: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Candidate:
    lines: tuple[str, ...]
    keeps_names: bool
    differs: bool
    similarity: float
    outside: tuple[str, ...] = ()


@dataclass(frozen=True)
class Extracted:
    """The replacement for the target, and the lines of a whole-file answer that were cut
    off as code around the target (whatever the model did to them)."""

    code: str
    outside: tuple[str, ...] = ()


def extract_code(
    answer: str,
    target: str,
    document: str | None = None,
    *,
    target_start_line: int | None = None,
    path: str | None = None,
) -> str:
    """The code that replaces ``target`` (whole lines, no trailing line break), with the
    target's indentation. ``document`` (the whole file) lets a whole-file answer be cut
    down to the target; ``target_start_line`` (0-based) tells where the target is in it
    when its text occurs more than once; ``path`` (the document's file) tells a block for
    another file from one for this file.

    Raises AnswerTooLong, NoCodeInAnswer, or its subclass AnswerNotPython.
    """
    return extract(answer, target, document, target_start_line=target_start_line, path=path).code


def extract(
    answer: str,
    target: str,
    document: str | None = None,
    *,
    target_start_line: int | None = None,
    path: str | None = None,
) -> Extracted:
    """extract_code, also telling which lines were cut off a whole-file answer."""
    if len(answer) > MAX_ANSWER_CHARS:
        raise AnswerTooLong(
            f"The model's answer is {len(answer)} characters long (the limit is "
            f"{MAX_ANSWER_CHARS}), far more than a replacement for the selected code; it was "
            f"not used. {_RETRY_HINT}"
        )
    text = _strip_thinking(_normalize_newlines(answer))
    if not text.strip():
        raise NoCodeInAnswer(f"The model's answer was empty. {_RETRY_HINT}")
    target_lines = split_lines(_normalize_newlines(target))
    surroundings = (
        _Surroundings(_normalize_newlines(document), target_lines, target_start_line)
        if document is not None
        else None
    )
    blocks = _fenced_blocks(text)
    if blocks:
        pool = [b for b in blocks if b.tag in PYTHON_TAGS] or [b for b in blocks if not b.tag]
        if not pool:
            raise NoCodeInAnswer(_wrong_language_message(blocks))
        sources = [list(block.lines) for block in pool]
    else:
        sources = [split_lines(text)]

    candidates: list[_Candidate] = []
    failures: list[_Unusable] = []
    for lines in sources:
        try:
            _check_untrusted(lines, path)
            candidates.append(_candidate(lines, target_lines, surroundings, fenced=bool(blocks)))
        except _Unusable as error:
            failures.append(error)
    if not candidates:
        if not blocks:
            raise NoCodeInAnswer(
                "The model's answer contains no code: it has no ```python block and is not "
                f"Python itself. {_RETRY_HINT}"
            )
        syntax = [failure for failure in failures if failure.not_python]
        if syntax:
            raise AnswerNotPython(f"{syntax[0]}, so it was not used. {_RETRY_HINT}")
        raise NoCodeInAnswer(f"{failures[0]}. {_RETRY_HINT}")
    best = max(
        range(len(candidates)),
        key=lambda i: (
            candidates[i].keeps_names,
            candidates[i].differs,
            candidates[i].similarity,
            -i,
        ),
    )
    return Extracted("\n".join(candidates[best].lines), candidates[best].outside)


# --- reading the answer -------------------------------------------------------------------


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _strip_thinking(text: str) -> str:
    return _UNCLOSED_THINKING.sub("", _THINKING.sub("", text))


def _fenced_blocks(text: str) -> list[_Block]:
    lines = text.split("\n")
    blocks: list[_Block] = []
    index = 0
    while index < len(lines):
        match = _OPEN_FENCE.match(lines[index])
        fence = match["fence"] if match else ""
        if not match or (fence[0] == "`" and "`" in match["info"]):
            index += 1
            continue
        indent = len(match["indent"].expandtabs(4))
        closing = re.compile(
            rf"^[ \t]{{0,{indent + 3}}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$"
        )
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [_remove_indent(line, indent) for line in lines[index + 1 : end]]
        tag_match = _TAG.match(match["info"])
        tag = tag_match.group(1).lower() if tag_match else ""
        blocks.append(_Block(tag, tuple(body)))
        index = end + 1
    return blocks


def _remove_indent(line: str, width: int) -> str:
    # A fence indented inside a Markdown list indents its content the same way.
    removable = len(line) - len(line.lstrip(" "))
    return line[min(width, removable) :]


def _wrong_language_message(blocks: Sequence[_Block]) -> str:
    tags = sorted({block.tag for block in blocks})
    if "diff" in tags:
        return (
            "The model answered with a diff instead of the corrected code; diffs are never "
            f"applied, since they can change any line of any file. {_RETRY_HINT}"
        )
    listed = ", ".join(tags)
    shell = " Shell scripts are never run or applied." if SHELL_TAGS & set(tags) else ""
    return f"The model's answer has no Python code block (only: {listed}).{shell} {_RETRY_HINT}"


def _check_untrusted(lines: Sequence[str], path: str | None) -> None:
    """Refuse a candidate that is shell, or that is meant for another file."""
    escape = next((line for line in lines if _SHELL_ESCAPE.match(line)), None)
    if escape is not None and not _parses(lines):  # in Python, "!x" can only be in a string
        raise _Unusable(
            f"The model's code runs shell commands ({escape.strip()[:60]!r}); shell "
            "commands are never run or applied"
        )
    first = next((line for line in lines if line.strip()), "")
    header = _FILE_HEADER.match(first)
    if header is None or path is None:
        return
    named = header["path"].replace("\\", "/").rsplit("/", 1)[-1]
    own = path.replace("\\", "/").rsplit("/", 1)[-1]
    if named != own:
        raise _Unusable(
            f"The model's code is for another file ({header['path'][:80]}), not {own}; a fix "
            "may only change the selected lines of this file"
        )


# --- one candidate ------------------------------------------------------------------------


def _candidate(
    lines: list[str],
    target_lines: list[str],
    surroundings: _Surroundings | None,
    *,
    fenced: bool,
) -> _Candidate:
    core = _trim_blank_edges(lines)
    outside: list[str] = []
    if surroundings is not None and core:
        first, last = surroundings.bounds(core)
        outside = [*core[:first], *core[last:]]
        core = _trim_blank_edges(core[first:last])
    if not core:
        raise _Unusable("The model's code block is empty")
    core = _reindent(core, target_lines)
    core = _strip_trailing_whitespace(core, target_lines)
    tree = _parse_dedented(core)
    if not fenced and not _does_something(tree):
        raise _Unusable("The answer is a bare name or value, not code")
    target_core = _trim_blank_edges(target_lines)
    leading = _leading_blank_count(target_lines)
    trailing = _leading_blank_count(target_lines[::-1]) if target_core else 0
    result = [""] * leading + core + [""] * trailing
    return _Candidate(
        lines=tuple(result),
        keeps_names=_defined_names(target_core) <= _defined_names_of(tree),
        differs=[line.strip() for line in core] != [line.strip() for line in target_core],
        similarity=_similarity("\n".join(target_core), "\n".join(core)),
        outside=tuple(outside),
    )


def _leading_blank_count(lines: Sequence[str]) -> int:
    count = 0
    for line in lines:
        if line.strip():
            break
        count += 1
    return count


def _trim_blank_edges(lines: Sequence[str]) -> list[str]:
    start = _leading_blank_count(lines)
    end = len(lines) - _leading_blank_count(lines[::-1])
    return list(lines[start:end]) if start < end else []


def _parse_dedented(lines: Sequence[str]) -> ast.Module:
    code = textwrap.dedent("\n".join(lines))
    try:
        return ast.parse(code)
    except SyntaxError as error:
        where = f"line {error.lineno}: " if error.lineno else ""
        message = f"The model's code is not valid Python ({where}{error.msg})"
        raise _Unusable(message, not_python=True) from None
    except ValueError as error:  # NUL bytes
        message = f"The model's code is not valid Python ({error})"
        raise _Unusable(message, not_python=True) from None


def _parses(lines: Sequence[str]) -> bool:
    try:
        _parse_dedented(lines)
    except _Unusable:
        return False
    return True


def _does_something(tree: ast.Module) -> bool:
    inert = (ast.Name, ast.Constant, ast.Attribute)
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, inert)) for node in tree.body
    )


def _defined_names_of(tree: ast.Module) -> set[str]:
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, definitions)}


def _defined_names(lines: Sequence[str]) -> set[str]:
    try:
        return _defined_names_of(ast.parse(textwrap.dedent("\n".join(lines))))
    except (SyntaxError, ValueError):
        return set()


def _similarity(target: str, candidate: str) -> float:
    a, b = _TOKENS.findall(target), _TOKENS.findall(candidate)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    # The exact ratio is quadratic; a huge block gets the cheap multiset bound instead.
    if len(a) * len(b) > _SIMILARITY_WORK_LIMIT:
        return matcher.quick_ratio()
    return matcher.ratio()


# --- whole-file answers -------------------------------------------------------------------


class _Surroundings:
    """Where the target sits in the document, to recognise answers that include the code
    around it.

    A candidate is aligned line by line with the document (ignoring indentation and trailing
    whitespace). Its lines before the part aligned with the target are cut off when the
    document's nearest non-blank line before the target is among them (two such lines when
    the nearest one also occurs in the target, as a lone `return` might), or when they are
    at least two non-blank lines of which at least half match document lines before the
    target. The same rule, mirrored, cuts the lines after. A candidate that only aligns
    with the target itself is left alone.
    """

    def __init__(self, document: str, target_lines: Sequence[str], start_line: int | None) -> None:
        self.keys = [line.strip() for line in split_lines(document)]
        target_keys = [line.strip() for line in target_lines]
        self.span = self._locate(target_keys, start_line)
        self.before: list[int] = []
        self.after: list[int] = []
        if self.span is not None:
            start, end = self.span
            inside = set(target_keys)
            self.before = self._context(range(start - 1, -1, -1), inside)
            self.after = self._context(range(end, len(self.keys)), inside)

    def _locate(self, target_keys: list[str], start_line: int | None) -> tuple[int, int] | None:
        size = len(target_keys)
        if not size:
            return None
        if start_line is not None and self.keys[start_line : start_line + size] == target_keys:
            return start_line, start_line + size
        for start in range(len(self.keys) - size + 1):
            if self.keys[start : start + size] == target_keys:
                return start, start + size
        return None

    def _context(self, indices: range, inside: set[str]) -> list[int]:
        chosen: list[int] = []
        for index in indices:
            if not self.keys[index]:
                continue
            chosen.append(index)
            if self.keys[index] not in inside or len(chosen) == 2:
                break
        return chosen

    def bounds(self, lines: list[str]) -> tuple[int, int]:
        """The slice of `lines` that corresponds to the target (all of it if unsure)."""
        if self.span is None:
            return 0, len(lines)
        start, end = self.span
        keys = [line.strip() for line in lines]
        matcher = difflib.SequenceMatcher(None, self.keys, keys, autojunk=len(self.keys) > 2_000)
        pairs: dict[int, int] = {}
        for doc_index, line_index, size in matcher.get_matching_blocks():
            for offset in range(size):
                pairs[doc_index + offset] = line_index + offset
        before = [line for doc, line in pairs.items() if doc < start]
        after = [line for doc, line in pairs.items() if doc >= end]
        first = max(before) + 1 if before else 0
        last = min(after) if after else len(lines)
        if first > last:
            return 0, len(lines)
        cut_before = self._confirmed(pairs, self.before) or _mostly_matched(keys[:first], before)
        cut_after = self._confirmed(pairs, self.after) or _mostly_matched(keys[last:], after)
        return (first if cut_before else 0, last if cut_after else len(lines))

    @staticmethod
    def _confirmed(pairs: dict[int, int], context: list[int]) -> bool:
        return bool(context) and all(index in pairs for index in context)


def _mostly_matched(part: Sequence[str], matched: Sequence[int]) -> bool:
    code = sum(1 for key in part if key)
    return code >= 2 and len(matched) * 2 >= code


# --- indentation and whitespace -----------------------------------------------------------


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _width(indent: str) -> int:
    return len(indent.expandtabs(8))


def _first_code_line(lines: Sequence[str]) -> str | None:
    return next((line for line in lines if line.strip()), None)


def _indent_unit(lines: Sequence[str], base: int) -> int | None:
    steps = [_width(_lead(line)) - base for line in lines if line.strip()]
    positive = [step for step in steps if step > 0]
    return min(positive) if positive else None


def _shift(lines: Sequence[str], old: str, new: str) -> list[str]:
    """Replace indentation ``old`` by ``new`` on every line (blank lines untouched)."""
    shifted = []
    delta = _width(new) - _width(old)
    for line in lines:
        if not line.strip():
            shifted.append(line)
        elif line.startswith(old):
            shifted.append(new + line[len(old) :])
        else:  # less indented than the first line (say, a string's continuation)
            shifted.append(" " * max(0, _width(_lead(line)) + delta) + line.lstrip())
    return shifted


def _restyle(lines: Sequence[str], base: str, new: str, unit_from: int, unit_to: str) -> list[str]:
    """Shift like _shift, rewriting each indentation step of ``unit_from`` columns as
    ``unit_to`` (a tab, or the target's number of spaces)."""
    restyled = []
    for line in lines:
        if not line.strip():
            restyled.append(line)
            continue
        relative = max(0, _width(_lead(line)) - _width(base))
        steps, rest = divmod(relative, unit_from)
        restyled.append(new + unit_to * steps + " " * rest + line.lstrip())
    return restyled


def _readings(lines: list[str], target_lines: Sequence[str]) -> list[list[str]]:
    target_first = _first_code_line(target_lines)
    first = _first_code_line(lines)
    if first is None:
        return [lines]
    new = _lead(target_first) if target_first is not None else ""
    old = _lead(first)
    readings = [_shift(lines, old, new)]
    first_index = lines.index(first)
    readings.append([*lines[:first_index], new + first.lstrip(), *lines[first_index + 1 :]])
    code = [line for line in lines if line.strip()]
    target_code = [line for line in target_lines if line.strip()]
    if target_code:
        least = min((_lead(line) for line in code), key=_width)
        target_least = min((_lead(line) for line in target_code), key=_width)
        readings.append(_shift(lines, least, target_least))
        unit_from = _indent_unit(code, _width(old))
        unit_target = _indent_unit(target_code, _width(new))
        uses_tabs = any("\t" in _lead(line) for line in target_code)
        if unit_from is not None and (uses_tabs or unit_target is not None):
            unit_to = "\t" if uses_tabs else " " * (unit_target or unit_from)
            readings.append(_restyle(lines, old, new, unit_from, unit_to))
    return readings


def _reindent(lines: list[str], target_lines: Sequence[str]) -> list[str]:
    best: list[str] | None = None
    best_score = (-1.0, -1.0)
    first_error: _Unusable | None = None
    target = [line.rstrip() for line in target_lines if line.strip()]
    target_widths = {_width(_lead(line)) for line in target}
    for reading in _readings(lines, target_lines):
        try:
            _parse_dedented(reading)
        except _Unusable as error:
            first_error = first_error or error
            continue
        code = [line.rstrip() for line in reading if line.strip()]
        # Lines equal to the target's first; then, for changed lines, indentation levels
        # the target uses (so a 2-space file stays 2-space).
        same_lines = difflib.SequenceMatcher(None, target, code, autojunk=False).ratio()
        fitting = sum(_width(_lead(line)) in target_widths for line in code) / max(len(code), 1)
        score = (same_lines, fitting)
        if score > best_score:
            best, best_score = reading, score
    if best is None:
        raise first_error or _Unusable("The model's code is not valid Python", not_python=True)
    return best


def _string_interior_rows(lines: Sequence[str]) -> set[int]:
    """0-based rows whose line break lies inside a multi-line string token."""
    rows: set[int] = set()
    source = textwrap.dedent("\n".join(lines)) + "\n"
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            (start_row, _), (end_row, _) = token.start, token.end
            rows.update(range(start_row - 1, end_row - 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    return rows


def _strip_trailing_whitespace(lines: Sequence[str], target_lines: Sequence[str]) -> list[str]:
    protected = _string_interior_rows(lines)
    originals = {line.rstrip(): line for line in target_lines if line.strip()}
    return [
        line if index in protected else originals.get(line.rstrip(), line.rstrip())
        for index, line in enumerate(lines)
    ]
