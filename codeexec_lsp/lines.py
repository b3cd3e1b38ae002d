"""Lines as LSP and Python count them: only ``\\r\\n``, ``\\r`` and ``\\n`` end a line.

``str.splitlines`` also ends lines at a form feed (PEP 8's page break, ``^L``), ``\\x0b``,
``\\x1c``-``\\x1e``, ``\\x85`` and U+2028/U+2029, none of which ends a line for the editor or
the compiler: every line after one would be off by one (a run of the wrong line, a
diagnostic under the wrong code). Everything that turns a document into numbered lines uses
this instead.
"""

from __future__ import annotations

import re

LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
# Where str.splitlines also ends a line. A document holds none of them nearly always, so the
# split is str.splitlines itself (6x faster than a regex split: pygls reads a document's
# lines on every incremental change) and only a text holding one is split again by hand.
NOT_LINE_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def split_lines(text: str, *, keepends: bool = False) -> list[str]:
    """Split like LSP: no empty line is returned after a final line break, so ``"a\\nb\\n"``
    and ``"a\\nb"`` both have two lines (as ``str.splitlines`` counts them). runner.py, which
    runs alone in the child, has a copy (`_split_lines`; a property test keeps them equal)."""
    if not any(odd in text for odd in NOT_LINE_BREAKS):
        return text.splitlines(keepends)
    lines: list[str] = []
    pending = ""
    for piece in text.splitlines(True):
        pending += piece
        if piece.endswith(("\n", "\r")):
            lines.append(pending)
            pending = ""
    if pending:
        lines.append(pending)
    if keepends:
        return lines
    return [line.rstrip("\r\n") if line.endswith(("\n", "\r")) else line for line in lines]
