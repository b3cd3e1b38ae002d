"""The session's live variables as the editor shows them: hover text, the variables page,
completion items; and which name or completion a line of source asks about.

Pure functions of plain data (what inspector.py sent, the text of a line), so every
wording and every parsing rule is tested without a session or an editor. Columns here are
code points; the server converts them from and to the client's units.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

SOURCE_LABEL = "codeexec session"  # how completion items and hovers say where they come from
MAX_HOVER_SUMMARY = 200
IDENTIFIER = r"[^\W\d]\w*"
_CHAIN = rf"{IDENTIFIER}(?:\.{IDENTIFIER})*"
# Not after a dot, a bracket, a quote or a word: `f().x`, `"s".x` and `1.x` are not names.
_NOT_AFTER = r"(?<![\w.)\]'\"])"
_ATTRIBUTE = re.compile(rf"{_NOT_AFTER}({_CHAIN})\.(\w*)$")
_KEY_OPEN = re.compile(rf"{_NOT_AFTER}({_CHAIN})\[\s*$")
_WORD = re.compile(r"\w+")

CompletionKind = Literal["method", "property", "field", "module", "class", "key"]


@dataclass(frozen=True)
class Variable:
    """One live value: `name: type = summary`, with a few lines of preview for tables."""

    name: str
    type: str
    summary: str
    kind: str = "value"
    preview: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Variable | None:
        """From the inspector's answer; None for anything malformed (never raises)."""
        if not isinstance(data, Mapping):
            return None
        name, type_, summary = data.get("name"), data.get("type"), data.get("summary")
        if not all(isinstance(part, str) for part in (name, type_, summary)):
            return None
        preview = data.get("preview")
        kind = data.get("kind")
        return cls(
            name=str(name),
            type=str(type_),
            summary=str(summary),
            kind=kind if isinstance(kind, str) else "value",
            preview=preview if isinstance(preview, str) and preview else None,
        )

    def to_json(self) -> dict[str, str]:
        """The `codeexec.variables` entry: name, type, summary (and kind)."""
        return {"name": self.name, "type": self.type, "summary": self.summary, "kind": self.kind}


def variables_from(answer: Mapping[str, Any]) -> list[Variable]:
    found = (Variable.from_json(item) for item in answer.get("variables") or [])
    return [variable for variable in found if variable is not None]


# --- which name a position is on -------------------------------------------------------------


@dataclass(frozen=True)
class NameAt:
    """The dotted name under the cursor (`os.path` when on `path`) and the code-point span
    of the identifier hovered."""

    path: tuple[str, ...]
    start: int
    end: int

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _scan(line: str) -> tuple[str, int | None, bool]:
    """(code, open_string, in_comment): the line with string contents blanked (same
    length) and cut at a comment; where a string still open at the end starts; whether
    the line ends in a comment. So a name in a string or comment is never taken for code."""
    out = []
    quote = ""
    opened = 0
    index = 0
    while index < len(line):
        char = line[index]
        if quote:
            if char == "\\":
                out.append("  "[: len(line) - index])
                index += 2
                continue
            if line.startswith(quote, index):
                out.append(quote)
                index += len(quote)
                quote = ""
                continue
            out.append(" ")
        elif char == "#":
            return "".join(out), None, True
        elif char in "'\"":
            quote = char * 3 if line.startswith(char * 3, index) else char
            opened = index
            out.append(quote)
            index += len(quote)
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out), (opened if quote else None), False


def _code_part(line: str) -> str:
    return _scan(line)[0]


def name_at(line: str, column: int) -> NameAt | None:
    """The name a hover at `column` of `line` is about, or None (not on a name, on a keyword,
    in a string or comment, or an attribute of something that is not a plain name)."""
    code = _code_part(line)
    for match in _WORD.finditer(code):
        if match.start() <= column <= match.end() and match.end() > match.start():
            break
    else:
        return None
    word = match.group()
    if not word.isidentifier() or keyword.iskeyword(word):
        return None
    chain = re.search(rf"{_NOT_AFTER}({_CHAIN})$", code[: match.end()])
    if chain is None or not chain.group(1).endswith(word):
        return None
    path = _path(chain.group(1))
    return NameAt(path, match.start(), match.end()) if path else None


@dataclass(frozen=True)
class CompletionContext:
    """What a completion request is after: the attributes of `path` or its keys; `prefix`
    is what was typed of the item so far, `quote` the quote a key was opened with."""

    what: Literal["attributes", "keys"]
    path: tuple[str, ...]
    prefix: str
    quote: str | None = None


def _path(chain: str) -> tuple[str, ...] | None:
    """The names of `a.b.c`; None if one is a keyword or not an identifier (the regex's
    `\\w` also matches characters such as `²` that Python does not allow in names)."""
    path = tuple(chain.split("."))
    if any(keyword.iskeyword(part) or not part.isidentifier() for part in path):
        return None
    return path


def completion_context(before_cursor: str) -> CompletionContext | None:
    """From the text of the line before the cursor: `name.pre` → attributes of `name`,
    `name["pre` / `name['pre` / `name[` → its keys; None for anything else (in a comment,
    inside a string that is not a key being typed)."""
    code, open_string, in_comment = _scan(before_cursor)
    if in_comment:
        return None
    if open_string is not None:
        quote = before_cursor[open_string]
        prefix = before_cursor[open_string + 1 :]
        match = _KEY_OPEN.search(code[:open_string])
        if match is None or quote * 3 == before_cursor[open_string : open_string + 3]:
            return None
        path = _path(match.group(1))
        return CompletionContext("keys", path, prefix, quote) if path else None
    if (match := _ATTRIBUTE.search(code)) is not None:
        path = _path(match.group(1))
        return CompletionContext("attributes", path, match.group(2)) if path else None
    if (match := _KEY_OPEN.search(code)) is not None:
        path = _path(match.group(1))
        return CompletionContext("keys", path, "") if path else None
    return None


# --- what is shown ----------------------------------------------------------------------------


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _code_block(text: str, language: str) -> str:
    fence = _fence(text)
    return f"{fence}{language}\n{text}\n{fence}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def variable_line(variable: Variable) -> str:
    """`n: int = 42`, as in a type-annotated assignment."""
    return f"{variable.name}: {variable.type} = {_clip(variable.summary, MAX_HOVER_SUMMARY)}"


def hover_markdown(variable: Variable) -> str:
    """The hover on a live name: its line, a short preview for tables, and where it is from."""
    parts = [_code_block(variable_line(variable), "python")]
    if variable.preview:
        parts.append(_code_block(variable.preview, "text"))
    parts.append(f"*live value in the {SOURCE_LABEL}*")
    return "\n".join(parts)


def busy_markdown(name: str) -> str:
    return (
        f"`{name}`: (session busy) — the {SOURCE_LABEL} is running code; "
        "hover again when the run is done."
    )


def no_answer_markdown(name: str, seconds: float) -> str:
    return f"`{name}`: (could not show: the {SOURCE_LABEL} did not answer within {seconds:g} s)"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def variables_markdown(where: str, variables: Iterable[Variable], note: str = "") -> str:
    """The page `codeexec.variables` opens: one table row per variable."""
    rows = [
        f"| `{_cell(v.name)}` | {_cell(v.type)} | {_cell(_clip(v.summary, 160))} |"
        for v in variables
    ]
    lines = [f"# Session variables — {where}", ""]
    if note:
        lines += [note, ""]
    if rows:
        lines += ["| name | type | value |", "|---|---|---|", *rows]
    elif not note:
        lines.append("The session holds no variables yet: run some code first.")
    return "\n".join(lines) + "\n"


# --- completion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """One item: `insert` replaces the `prefix` typed so far."""

    label: str
    kind: CompletionKind
    detail: str
    insert: str


def _matches(candidate: str, typed: str) -> bool:
    """Whether `typed` is a subsequence of `candidate`, case-insensitively, as editors'
    fuzzy filters match: an item they would keep is never dropped here."""
    position = 0
    lowered = candidate.lower()
    for char in typed.lower():
        position = lowered.find(char, position) + 1
        if position == 0:
            return False
    return True


_ATTRIBUTE_KINDS: dict[str, CompletionKind] = {
    "method": "method",
    "property": "property",
    "module": "module",
    "class": "class",
}


def attribute_completions(attributes: Iterable[Any], prefix: str) -> list[Completion]:
    """Attributes that match what was typed; private ones only once `_` is typed."""
    items = []
    for attribute in attributes:
        name = attribute.get("name") if isinstance(attribute, Mapping) else None
        if not isinstance(name, str) or not name:
            continue
        if name.startswith("_") and not prefix.startswith("_"):
            continue
        if not _matches(name, prefix):
            continue
        kind = _ATTRIBUTE_KINDS.get(str(attribute.get("kind")), "field")
        items.append(Completion(name, kind, f"{kind} · {SOURCE_LABEL}", name))
    return items


def _escaped(key: str, quote: str) -> str:
    return key.replace("\\", "\\\\").replace(quote, "\\" + quote)


def key_completions(keys: Iterable[Any], prefix: str, quote: str | None) -> list[Completion]:
    """Keys that match what was typed: inside a quote the bare text of string keys, after a
    bare `[` a literal (`"name"`, `3`)."""
    items = []
    for entry in keys:
        if not isinstance(entry, Mapping):
            continue
        key, value_type = entry.get("key"), entry.get("type")
        detail = f"{value_type} · {SOURCE_LABEL}" if value_type else SOURCE_LABEL
        if isinstance(key, str):
            if quote is not None:
                if _matches(key, prefix):
                    items.append(Completion(key, "key", detail, _escaped(key, quote)))
                continue
            literal = '"' + _escaped(key, '"') + '"'
        elif isinstance(key, int) and not isinstance(key, bool) and quote is None:
            literal = str(key)
        else:
            continue
        if _matches(literal, prefix):
            items.append(Completion(literal, "key", detail, literal))
    return items
