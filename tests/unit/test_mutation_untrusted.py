"""The untrusted-answer rules at their edges, found unguarded by mutation testing
(tools/MUTATION.md, actions/untrusted.py): how imports and calls are recognised, where
"outside the target" begins and ends, and the exact reasons listed."""

from __future__ import annotations

from codeexec_lsp.actions.untrusted import (
    DELETION,
    NETWORK,
    PROCESS,
    Capability,
    capabilities,
    refusal,
)


def test_a_submodule_of_a_listed_module_is_the_listed_capability() -> None:
    assert capabilities("import requests.adapters") == {
        Capability("import requests.adapters", NETWORK)
    }
    assert capabilities("from urllib import request") == {
        Capability("from urllib import request", NETWORK)
    }


def test_a_call_is_recognised_by_its_full_name_through_imports() -> None:
    # `from os import remove` and the call of `remove`, even renamed.
    assert capabilities("from os import remove\nremove('x')") == {
        Capability("from os import remove", DELETION),
        Capability("os.remove()", DELETION),
    }
    assert capabilities("from os import remove as rm\nrm('x')") == {
        Capability("from os import remove", DELETION),
        Capability("os.remove()", DELETION),
    }
    # A call into a dotted module is named by the whole module.
    assert capabilities("import urllib.request\nurllib.request.urlopen('x')") == {
        Capability("import urllib.request", NETWORK),
        Capability("urllib.request.urlopen()", NETWORK),
    }
    # `import os.path` binds `os`, the os module (whatever `os` was bound to before).
    assert capabilities("import os.path\nos.system('x')") == {Capability("os.system()", PROCESS)}
    assert capabilities("from mylib import os\nimport os.path\nos.system('x')") == {
        Capability("os.system()", PROCESS)
    }


def test_two_added_capabilities_are_listed_comma_separated() -> None:
    document = "def mean(values):\n    return 0\n"
    target = "def mean(values):\n    return 0"
    candidate = "def mean(values):\n    import os\n    os.system('x')\n    os.remove('y')"
    assert refusal(candidate, target, document, 0, 1) == (
        "it adds `os.remove()` (deletes files), `os.system()` (runs a command), which the code "
        "being fixed did not do; a fix may not run commands, use the network, delete files or "
        "run generated code that the original did not"
    )


# 0-based lines of each definition, decorators included
DOCUMENT = (
    "@cache\n"  # 0
    "def before():\n"  # 1
    "    return 0\n"  # 2
    "def mean(values):\n"  # 3
    "    return sum(values) / len(values)\n"  # 4
    "@cache\n"  # 5
    "def after():\n"  # 6
    "    return 1\n"  # 7
)
EVERYTHING = (
    "@cache\ndef before():\n    return 0\ndef mean(values):\n    return 0\n"
    "@cache\ndef after():\n    return 1"
)


def lines_of(first: int, last: int) -> str:
    return "\n".join(DOCUMENT.splitlines()[first : last + 1])


def test_definitions_right_before_and_right_after_the_target_are_outside_it() -> None:
    """Target: `mean` (lines 3-4). `before` ends on the line just above; `after` starts (its
    decorator) on the line just below: redefining them is rewriting code outside."""
    assert refusal(EVERYTHING, lines_of(3, 4), DOCUMENT, 3, 4) == (
        "it rewrites `after` (line 7), `before` (line 2), defined outside the lines being "
        "fixed (lines 4-5); a fix may only change those lines"
    )


def test_definitions_that_share_a_line_with_the_target_are_not_outside_it() -> None:
    """Target: lines 2-5, from `before`'s last line to `after`'s decorator: both overlap
    the target, so redefining them is not rewriting code outside it."""
    assert refusal(EVERYTHING, lines_of(2, 5), DOCUMENT, 2, 5) is None


def test_a_name_the_target_defines_may_be_defined_again_though_also_defined_outside() -> None:
    document = "def mean(values):\n    return 0\n\n\ndef mean(values):\n    return 1 / 0\n"
    target = "def mean(values):\n    return 1 / 0"
    assert refusal("def mean(values):\n    return 1", target, document, 4, 5) is None


def test_at_most_three_rewritten_definitions_are_listed() -> None:
    outside = "".join(f"def f{n}():\n    return {n}\n" for n in range(1, 5))
    document = outside + "def mean(values):\n    return 0\n"
    candidate = outside + "def mean(values):\n    return 1"
    assert refusal(candidate, "def mean(values):\n    return 0", document, 8, 9) == (
        "it rewrites `f1` (line 1), `f2` (line 3), `f3` (line 5), defined outside the lines "
        "being fixed (lines 9-10); a fix may only change those lines"
    )


def test_lines_cut_off_a_whole_file_answer_are_compared_with_the_lines_outside() -> None:
    document = "x = 1\ndef mean(values):\n    return total / len(values)\nprint(mean([2]))\n"
    target = "def mean(values):\n    return total / len(values)"
    fixed = "def mean(values):\n    return sum(values) / len(values)"
    # The line right after the target is outside, unchanged.
    assert refusal(fixed, target, document, 1, 2, ["x = 1", "print(mean([2]))"]) is None
    # The target's own old last line is not a line outside it.
    assert refusal(fixed, target, document, 1, 2, ["return total / len(values)"]) == (
        "the answer also changes code outside the lines being fixed (lines 2-3), e.g. "
        "`return total / len(values)`; a fix may only change those lines (a new import goes "
        "inside them)"
    )


def test_the_target_lines_named_are_clamped_to_the_document() -> None:
    document = "x = 1\ny = 2\n"
    for end_line in (1, 5):
        assert refusal("y = 3", "y = 2", document, 1, end_line, ["z = 0"]) == (
            "the answer also changes code outside the lines being fixed (lines 2-2), e.g. "
            "`z = 0`; a fix may only change those lines (a new import goes inside them)"
        )
