"""The rules for a model's candidate, with the exact reasons users and the model read (found
unguarded by mutation testing of actions/untrusted.py)."""

from __future__ import annotations

from codeexec_lsp.actions.untrusted import refusal

DOCUMENT = (
    "import json\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "@cache\n"  # 3
    "def helper(x):\n"  # 4
    "    return x * 2\n"  # 5
    "\n"  # 6
    "\n"  # 7
    "def mean(values):\n"  # 8
    "    return sum(values) / len(values)\n"  # 9
    "\n"  # 10
    "\n"  # 11
    "def after():\n"  # 12
    "    return 1\n"  # 13
)
TARGET = "def mean(values):\n    return sum(values) / len(values)"


def refused(candidate: str, outside: tuple[str, ...] = ()) -> str | None:
    return refusal(candidate, TARGET, DOCUMENT, 8, 9, outside)


def test_code_changed_outside_the_target_is_named_with_the_target_lines() -> None:
    reason = refused(TARGET, outside=("# a comment", "import json", "x = " + "9" * 100))
    assert reason == (
        "the answer also changes code outside the lines being fixed (lines 9-10), e.g. `x = "
        + "9" * 76
        + "`; a fix may only change those lines (a new import goes inside them)"
    )
    # The lines right after the target are outside too, and unchanged ones are fine.
    assert refused(TARGET, outside=("def after():", "return 1", "@cache")) is None


def test_added_capabilities_are_listed_three_at_most_with_the_rule() -> None:
    candidate = (
        "import subprocess as sp\n"
        "import urllib.request\n"
        "from os import remove\n"
        "from . import sibling\n"
        "def mean(values):\n"
        "    sp.run(['true'])\n"
        "    remove('x')\n"
        "    urllib.request.urlopen('http://127.0.0.1')\n"
        "    exec('1')\n"
        "    return 0"
    )
    reason = refused(candidate)
    assert reason is not None
    listed = reason.removeprefix("it adds ").split(", which the code being fixed did not do")[0]
    assert listed.count("` (") == 3, listed
    assert reason.endswith(
        "which the code being fixed did not do; a fix may not run commands, use the network, "
        "delete files or run generated code that the original did not"
    )


def test_a_dotted_module_and_an_aliased_import_are_recognised() -> None:
    network = refused(
        "import urllib.request\ndef mean(values):\n    return urllib.request.urlopen('x')"
    )
    assert network is not None and "`import urllib.request` (uses the network)" in network
    aliased = refused("import subprocess as sp\ndef mean(values):\n    return sp.run(['x'])")
    assert aliased is not None and "(runs a command)" in aliased
    from_import = refused("from shutil import rmtree\ndef mean(values):\n    rmtree('x')")
    assert from_import is not None and "`from shutil import rmtree` (deletes files)" in from_import
    # A relative import is the project's own code, not a capability.
    assert refused("from . import helpers\ndef mean(values):\n    return 0") is None


def test_rewriting_a_function_defined_outside_the_target_is_refused_with_its_line() -> None:
    candidate = "def helper(x):\n    return x\n\n\ndef mean(values):\n    return 0"
    assert refused(candidate) == (
        "it rewrites `helper` (line 5), defined outside the lines being fixed (lines 9-10); "
        "a fix may only change those lines"
    )
    after = refused("def mean(values):\n    return 0\n\n\ndef after():\n    return 2")
    assert after is not None and "`after` (line 13)" in after
    # Defining what the target itself defines is the fix, not a rewrite.
    assert refused("def mean(values):\n    return 0") is None


def test_a_target_that_does_not_parse_defines_nothing_of_its_own() -> None:
    broken_target = "def mean(values:\n    return 0"
    reason = refusal(
        "def mean(values):\n    return 0", broken_target, DOCUMENT.replace(TARGET, broken_target),
        8, 9,
    )  # fmt: skip
    assert reason is None
