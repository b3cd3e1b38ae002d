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


def split_lines(text: str, *, keepends: bool = False) -> list[str]:
    """Split like LSP: no empty line is returned after a final line break, so ``"a\\nb\\n"``
    and ``"a\\nb"`` both have two lines (as ``str.splitlines`` counts them)."""
    if not text:
        return []
    parts = LINE_BREAK.split(text)
    lines = [
        parts[index] + (parts[index + 1] if keepends else "")
        for index in range(0, len(parts) - 1, 2)
    ]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
