"""Columns between code points (ours) and the client's units (UTF-16 unless negotiated)."""

from __future__ import annotations

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def _units(char: str, encoding: str) -> int:
    if encoding == UTF8:
        return len(char.encode("utf-8"))
    if encoding == UTF32:
        return 1
    return 2 if ord(char) > 0xFFFF else 1


def to_client(line_text: str, column: int, encoding: str) -> int:
    """Code-point `column` of `line_text` in the client's units."""
    prefix = line_text[: max(column, 0)]
    if encoding == UTF32:
        return len(prefix)
    if encoding == UTF8:
        return len(prefix.encode("utf-8", "surrogatepass"))
    return len(prefix.encode("utf-16-le", "surrogatepass")) // 2


def from_client(line_text: str, units: int, encoding: str) -> int:
    """The code-point column at client offset `units`, clamped to the line."""
    if units <= 0:
        return 0
    seen = 0
    for index, char in enumerate(line_text):
        if seen >= units:
            return index
        seen += _units(char, encoding)
    return len(line_text)
