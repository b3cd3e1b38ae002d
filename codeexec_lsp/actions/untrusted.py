"""What a model's fix may not do: the model's answer is untrusted input.

A candidate fix (the code extracted from the answer, see llm/answers.py) is refused, before
it is run to verify it and before it could be applied, when:

1. **It adds a dangerous capability** the target did not already use: running commands
   (``os.system``, ``subprocess``, ``os.exec*``/``spawn*``/``fork``, ``pty``,
   ``asyncio.create_subprocess_*``, signals to other processes), the network (``socket``,
   ``urllib.request``, ``http.client``, ``requests``, ``httpx``, ``ftplib``, ``smtplib``...),
   deleting files (``os.remove``/``unlink``/``rmdir``, ``shutil.rmtree``,
   ``Path.unlink``/``rmdir``), or running code built at run time (``eval``, ``exec``,
   ``compile``, ``__import__``, ``importlib.import_module``, ``ctypes``). Verification runs
   the candidate in the sandbox, but a fix for a ZeroDivisionError has no business doing any
   of these, and the user would be the next one to run it. Only new *kinds* count: code
   that already runs a command (say ``subprocess.run``) may be fixed into code that runs
   one another way, but not into code that also deletes files.
2. **It changes code outside the target**. A whole-file answer is cut down to the target
   (llm/answers.py); if the lines cut off are not the document's own lines (the model
   changed or added code elsewhere, say an import at the top), the answer is refused rather
   than quietly applied in part. And a candidate may not define a function or class that
   the module defines at top level outside the target (a whole-file answer that could not
   be cut down would otherwise paste copies of other code into the target).

Refused candidates are treated like answers that failed: the reason goes back to the model
for another attempt, and one is never applied, verified by running, or offered as an
"unverified fix". Shell scripts (```bash blocks, IPython ``!`` escapes), diffs and blocks
for another file are refused earlier, when the code is extracted from the answer.

Static checks cannot catch every disguise (``getattr(os, "sys" + "tem")``); they catch
what models actually write, and the sandbox remains the boundary for the rest.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from codeexec_lsp.lines import split_lines

PROCESS = "runs a command"
NETWORK = "uses the network"
DELETION = "deletes files"
DYNAMIC = "runs code built at run time"

# Importing these modules is the capability: there is nothing harmless to use them for here.
_MODULES: dict[str, str] = {
    "subprocess": PROCESS,
    "pty": PROCESS,
    "multiprocessing": PROCESS,
    "socket": NETWORK,
    "ssl": NETWORK,
    "urllib.request": NETWORK,
    "http.client": NETWORK,
    "ftplib": NETWORK,
    "smtplib": NETWORK,
    "poplib": NETWORK,
    "imaplib": NETWORK,
    "telnetlib": NETWORK,
    "xmlrpc.client": NETWORK,
    "webbrowser": NETWORK,
    "requests": NETWORK,
    "httpx": NETWORK,
    "aiohttp": NETWORK,
    "urllib3": NETWORK,
    "paramiko": NETWORK,
    "ctypes": DYNAMIC,
}
# Calls by their full dotted name (after resolving import aliases).
_CALLS: dict[str, str] = {
    **{f"os.{name}": PROCESS for name in ("system", "popen", "fork", "forkpty", "kill")},
    **{f"os.{name}": PROCESS for name in ("killpg", "posix_spawn", "posix_spawnp")},
    "asyncio.create_subprocess_exec": PROCESS,
    "asyncio.create_subprocess_shell": PROCESS,
    **{f"os.{name}": DELETION for name in ("remove", "unlink", "rmdir", "removedirs")},
    "shutil.rmtree": DELETION,
    "importlib.import_module": DYNAMIC,
}
_CALL_PREFIXES: dict[str, str] = {"os.exec": PROCESS, "os.spawn": PROCESS}
_BUILTINS: dict[str, str] = {
    "eval": DYNAMIC,
    "exec": DYNAMIC,
    "compile": DYNAMIC,
    "__import__": DYNAMIC,
}
# Method calls whatever the object (pathlib.Path and friends).
_METHODS: dict[str, str] = {"unlink": DELETION, "rmdir": DELETION, "rmtree": DELETION}


@dataclass(frozen=True, order=True)
class Capability:
    name: str  # e.g. "os.system", "import socket", ".unlink()"
    kind: str  # PROCESS, NETWORK, DELETION or DYNAMIC

    def describe(self) -> str:
        return f"`{self.name}` ({self.kind})"


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return None


def _module_kind(module: str) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        kind = _MODULES.get(".".join(parts[:end]))
        if kind is not None:
            return kind
    return None


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name it was imported as (`sp` -> `subprocess`)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _call_kind(name: str) -> str | None:
    if name in _CALLS:
        return _CALLS[name]
    for prefix, kind in _CALL_PREFIXES.items():
        if name.startswith(prefix):
            return kind
    module, _, _ = name.rpartition(".")
    return _module_kind(module) if module else None


def capabilities(code: str) -> set[Capability]:
    """The dangerous capabilities `code` uses; empty if it does not parse."""
    tree = _parse(code)
    if tree is None:
        return set()
    aliases = _aliases(tree)
    found: set[Capability] = set()
    for node in ast.walk(tree):
        found.update(_node_capabilities(node, aliases))
    return found


def _node_capabilities(node: ast.AST, aliases: dict[str, str]) -> Iterator[Capability]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (kind := _module_kind(alias.name)) is not None:
                yield Capability(f"import {alias.name}", kind)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            kind = _module_kind(node.module) or _module_kind(full) or _call_kind(full)
            if kind is not None:
                yield Capability(f"from {node.module} import {alias.name}", kind)
    elif isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in _BUILTINS and func.id not in aliases:
            yield Capability(f"{func.id}()", _BUILTINS[func.id])
            return
        name = _dotted(func, aliases)
        if name is not None and (kind := _call_kind(name)) is not None:
            yield Capability(f"{name}()", kind)
        elif isinstance(func, ast.Attribute) and func.attr in _METHODS:
            yield Capability(f".{func.attr}()", _METHODS[func.attr])


def _top_level_definitions(tree: ast.Module) -> dict[str, int]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name: node.lineno for node in tree.body if isinstance(node, kinds)}


def _outside_definitions(document: str, start_line: int, end_line: int) -> dict[str, int]:
    """The module's top-level definitions outside lines start..end (0-based, inclusive),
    with their 1-based line numbers. Methods are left out: a helper method may share a
    name with one in another class."""
    tree = _parse(document)
    if tree is None:
        return {}
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    found: dict[str, int] = {}
    for node in tree.body:
        if not isinstance(node, kinds):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
        last = (node.end_lineno or node.lineno) - 1
        if last < start_line or first > end_line:
            found.setdefault(node.name, node.lineno)
    return found


def _span(document: str, start_line: int, end_line: int) -> str:
    count = len(split_lines(document))
    return f"lines {start_line + 1}-{min(end_line, count - 1) + 1}"


def refusal(
    candidate: str,
    target: str,
    document: str,
    start_line: int,
    end_line: int,
    outside: Sequence[str] = (),
) -> str | None:
    """Why `candidate` may not replace `target` (lines start..end of `document`, 0-based,
    inclusive), or None when it may. `outside` are the lines cut off a whole-file answer
    (answers.Extracted.outside). The reason completes "The candidate was refused: ..."."""
    lines = split_lines(document)
    around = {line.strip() for line in lines[:start_line] + lines[end_line + 1 :]}
    # Comments do not change what the code does ("# fixed below" is common); code does.
    code = [line.strip() for line in outside if line.strip() and not line.strip().startswith("#")]
    changed = [line for line in code if line not in around]
    if changed:
        return (
            f"the answer also changes code outside the lines being fixed ("
            f"{_span(document, start_line, end_line)}), e.g. `{changed[0][:80]}`; a fix may "
            "only change those lines (a new import goes inside them)"
        )
    had = {capability.kind for capability in capabilities(target)}
    added = sorted(c for c in capabilities(candidate) if c.kind not in had)
    if added:
        listed = ", ".join(capability.describe() for capability in added[:3])
        return (
            f"it adds {listed}, which the code being fixed did not do; a fix may not run "
            "commands, use the network, delete files or run generated code that the original "
            "did not"
        )
    tree = _parse(candidate)
    if tree is None:
        return None
    target_tree = _parse(target)
    own = set(_top_level_definitions(target_tree)) if target_tree is not None else set()
    defined = _outside_definitions(document, start_line, end_line)
    rewritten = sorted(set(_top_level_definitions(tree)) - own & set(defined))
    if rewritten:
        listed = ", ".join(f"`{name}` (line {defined[name]})" for name in rewritten[:3])
        return (
            f"it rewrites {listed}, defined outside the lines being fixed "
            f"({_span(document, start_line, end_line)}); a fix may only change those lines"
        )
    return None
