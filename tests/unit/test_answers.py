"""Extracting the replacement code from realistic model answers."""

from __future__ import annotations

import pytest

from codeexec_lsp.code_context import fix_target
from codeexec_lsp.edits import LineEdit, edits_for_replacement
from codeexec_lsp.llm.answers import (
    MAX_ANSWER_CHARS,
    AnswerNotPython,
    AnswerTooLong,
    NoCodeInAnswer,
    extract_code,
)
from codeexec_lsp.llm.base import LlmBadAnswer

DOCUMENT = '''\
import math


class Stats:
    """Numbers with summaries."""

    def __init__(self, xs):
        self.xs = list(xs)

    def mean(self):
        total = 0.0
        for x in self.xs:
            total += x
        return total / len(self.xs)

    def spread(self):
        return max(self.xs) - min(self.xs)


print(Stats([]).mean())
'''
TARGET = fix_target(DOCUMENT, 13, 13, selection_empty=True)
FIXED = """\
    def mean(self):
        total = 0.0
        for x in self.xs:
            total += x
        if not self.xs:
            return 0.0
        return total / len(self.xs)"""
FIXED_AT_COLUMN_0 = "\n".join(line[4:] for line in FIXED.split("\n"))


def test_target_is_the_method() -> None:
    assert TARGET.text.startswith("    def mean(self):")
    assert (TARGET.start_line, TARGET.end_line) == (9, 13)


def _extract(answer: str, document: str | None = DOCUMENT) -> str:
    return extract_code(answer, TARGET.text, document, target_start_line=TARGET.start_line)


# --- one block ----------------------------------------------------------------------------


def test_prose_around_one_fenced_block() -> None:
    answer = f"""The list is empty, so `len(self.xs)` is 0. Return 0.0 in that case:

```python
{FIXED_AT_COLUMN_0}
```

With this change `Stats([]).mean()` returns `0.0` instead of raising."""
    assert _extract(answer) == FIXED


def test_the_edit_is_minimal() -> None:
    answer = f"```python\n{FIXED_AT_COLUMN_0}\n```"
    _, edits = edits_for_replacement(
        DOCUMENT, TARGET.start_line, TARGET.end_line + 1, _extract(answer)
    )
    assert edits == [LineEdit(13, 13, "        if not self.xs:\n            return 0.0\n")]


@pytest.mark.parametrize(
    "opening", ["```py", "```python3", "~~~python", "~~~~", "```Python {.numberLines}"]
)
def test_fence_styles_and_tags(opening: str) -> None:
    closing = opening[:3] if opening[0] == "`" else opening.split("python")[0].rstrip()
    closing = closing if closing.strip("`~") == "" else closing[:3]
    answer = f"Fixed:\n{opening}\n{FIXED_AT_COLUMN_0}\n{closing}\nDone."
    assert _extract(answer) == FIXED


def test_fence_inside_a_markdown_list() -> None:
    body = "\n".join(f"   {line}" if line else "" for line in FIXED_AT_COLUMN_0.split("\n"))
    answer = f"1. Guard against an empty list:\n   ```python\n{body}\n   ```\n2. Done."
    assert _extract(answer) == FIXED


def test_crlf_and_trailing_whitespace() -> None:
    body = "\r\n".join(line + "  " for line in FIXED_AT_COLUMN_0.split("\n"))
    assert _extract(f"```python\r\n{body}\r\n```\r\n") == FIXED


def test_trailing_whitespace_is_kept_inside_strings_and_on_unchanged_lines() -> None:
    target = 'def f():\n    x = 1   \n    return """a  \nb"""'
    answer = '```python\ndef f():  \n    x = 1\n    y = """a  \nb"""  \n    return y\n```'
    assert (
        extract_code(answer, target) == 'def f():\n    x = 1   \n    y = """a  \nb"""\n    return y'
    )


def test_an_unclosed_last_block_runs_to_the_end() -> None:
    assert _extract(f"Here it is:\n```python\n{FIXED_AT_COLUMN_0}\n") == FIXED


def test_reasoning_sections_are_ignored() -> None:
    answer = (
        "<think>\nMaybe:\n```python\ndef mean(self):\n    return 0\n```\nNo, keep the loop.\n"
        f"</think>\n```python\n{FIXED_AT_COLUMN_0}\n```"
    )
    assert _extract(answer) == FIXED


# --- several blocks -----------------------------------------------------------------------


def test_the_quoted_original_is_not_taken_for_the_fix() -> None:
    original = "\n".join(line[4:] for line in TARGET.text.split("\n"))
    answer = (
        f"Your code:\n```python\n{original}\n```\nfails on an empty list.\n\n"
        f"Fixed version:\n```python\n{FIXED_AT_COLUMN_0}\n```"
    )
    assert _extract(answer) == FIXED


def test_a_usage_example_after_the_fix_is_ignored() -> None:
    answer = (
        f"```python\n{FIXED_AT_COLUMN_0}\n```\n\nYou can check it with:\n\n"
        "```python\nstats = Stats([])\nprint(stats.mean())  # 0.0\n```\n"
        "```bash\npython stats.py\n```"
    )
    assert _extract(answer) == FIXED


def test_python_blocks_win_over_untagged_ones() -> None:
    answer = f"```\n$ python stats.py\n0.0\n```\n```python\n{FIXED_AT_COLUMN_0}\n```"
    assert _extract(answer) == FIXED


def test_a_block_that_drops_the_target_definition_loses() -> None:
    answer = f"```python\nimport statistics\n```\nand then\n```python\n{FIXED_AT_COLUMN_0}\n```"
    assert _extract(answer) == FIXED


def test_an_unchanged_block_alone_is_returned_as_is() -> None:
    original = "\n".join(line[4:] for line in TARGET.text.split("\n"))
    assert _extract(f"The code looks correct:\n```python\n{original}\n```") == TARGET.text


# --- no fence -----------------------------------------------------------------------------


def test_no_fence_but_the_answer_is_code() -> None:
    assert _extract(FIXED_AT_COLUMN_0 + "\n") == FIXED


@pytest.mark.parametrize(
    "answer",
    [
        "I can't see any bug in this code.",
        "OK",
        "None",
        "Change `len(self.xs)` to `max(len(self.xs), 1)`.",
    ],
)
def test_prose_without_code_is_refused(answer: str) -> None:
    with pytest.raises(NoCodeInAnswer, match="no ```python block and is not Python"):
        _extract(answer)


# --- whole file and enclosing code --------------------------------------------------------


def test_the_whole_file_is_cut_down_to_the_target() -> None:
    whole = DOCUMENT.replace(TARGET.text, FIXED)
    answer = f"Here is the complete corrected file:\n\n```python\n{whole}```\n"
    assert _extract(answer) == FIXED


def test_the_whole_file_with_other_changes_is_cut_down_to_the_target() -> None:
    whole = "import math\nimport statistics\n" + DOCUMENT.replace(TARGET.text, FIXED)[12:]
    whole = whole.replace("print(Stats([]).mean())", "if __name__ == '__main__':\n    main()")
    assert _extract(f"```python\n{whole}```") == FIXED


def test_the_whole_class_without_indentation_is_cut_and_reindented() -> None:
    whole_class = DOCUMENT.replace(TARGET.text, FIXED).split("\n\n\n")[1]
    assert whole_class.startswith("class Stats:")
    assert _extract(f"```python\n{whole_class}\n```") == FIXED


def test_the_enclosing_function_returned_for_a_selection_in_its_body() -> None:
    target = "        for x in self.xs:\n            total += x"
    answer = (
        "```python\ndef mean(self):\n    total = 0.0\n    for x in self.xs:\n"
        "        total += float(x)\n    return total / len(self.xs)\n```"
    )
    code = extract_code(answer, target, DOCUMENT, target_start_line=11)
    assert code == "        for x in self.xs:\n            total += float(x)"


def test_a_repeated_target_is_located_by_its_line() -> None:
    document = "def f():\n    return 1\n\n\ndef g():\n    return 1\n"
    answer = "```python\ndef f():\n    return 1\n\n\ndef g():\n    return 2\n```"
    assert extract_code(answer, "    return 1", document, target_start_line=5) == "    return 2"


def test_an_added_import_line_is_kept_when_not_in_the_document() -> None:
    answer = f"```python\nimport statistics\n\n{FIXED_AT_COLUMN_0}\n```"
    assert _extract(answer) == f"    import statistics\n\n{FIXED}"


def test_a_line_of_the_fix_matching_a_far_away_line_does_not_cut() -> None:
    # `return max(self.xs) - min(self.xs)` also occurs after the target, in `spread`.
    answer = (
        "```python\ndef mean(self):\n    if not self.xs:\n        return 0.0\n"
        "    return max(self.xs) - min(self.xs)\n```"
    )
    assert _extract(answer).endswith("        return max(self.xs) - min(self.xs)")
    assert _extract(answer).startswith("    def mean(self):")


# --- indentation --------------------------------------------------------------------------


def test_first_line_lost_its_indentation() -> None:
    body = FIXED.split("\n", 1)[1]
    assert _extract(f"```python\ndef mean(self):\n{body}\n```") == FIXED


def test_over_indented_block() -> None:
    body = "\n".join("        " + line for line in FIXED_AT_COLUMN_0.split("\n"))
    assert _extract(f"```python\n{body}\n```") == FIXED


def test_tabs_in_the_document_are_kept() -> None:
    target = "class A:\n\tdef f(self):\n\t\treturn 1 / 0"
    answer = "```python\nclass A:\n    def f(self):\n        return 1 / 1\n```"
    assert extract_code(answer, target) == "class A:\n\tdef f(self):\n\t\treturn 1 / 1"


def test_two_space_indentation_is_kept() -> None:
    target = "  def f(self):\n    if self.x:\n      return 1 / 0"
    answer = "```python\ndef f(self):\n    if self.x:\n        return 1 / 1\n```"
    assert extract_code(answer, target) == "  def f(self):\n    if self.x:\n      return 1 / 1"


def test_blank_lines_around_the_target_are_kept() -> None:
    target = "\nx = 1 / 0\n\n"
    assert extract_code("```python\n\nx = 1\n\n\n```", target) == "\nx = 1\n"
    assert extract_code("```python\nx = 1\n```", "x = 1 / 0\n") == "x = 1"


# --- refusals -----------------------------------------------------------------------------


def test_code_that_is_not_python_is_refused() -> None:
    answer = "```python\ndef mean(self)\n    return sum(self.xs) / len(self.xs)\n```"
    with pytest.raises(
        AnswerNotPython, match=r"not valid Python \(line 1: .*\), so it was not used"
    ):
        _extract(answer)


def test_blocks_in_other_languages_are_refused() -> None:
    with pytest.raises(NoCodeInAnswer, match=r"no Python code block \(only: bash, text\)"):
        _extract("```bash\npip install numpy\n```\n```text\n0.0\n```")
    with pytest.raises(NoCodeInAnswer, match="a diff instead of the corrected code"):
        _extract("```diff\n-        return total / len(self.xs)\n+        return 0.0\n```")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("", "answer was empty"),
        ("   \n", "answer was empty"),
        ("<think>Let me think about it", "answer was empty"),
        ("```python\n```", "code block is empty"),
        ("```python\n\n\n```\n```python\n```", "code block is empty"),
    ],
)
def test_empty_answers_are_refused(answer: str, message: str) -> None:
    with pytest.raises(NoCodeInAnswer, match=message) as refused:
        _extract(answer)
    assert not isinstance(refused.value, AnswerNotPython)


def test_a_huge_answer_is_refused_quickly() -> None:
    answer = "```python\n" + "x = 1\n" * (MAX_ANSWER_CHARS // 6 + 1) + "```"
    with pytest.raises(AnswerTooLong, match="characters long"):
        _extract(answer)


def test_a_large_answer_below_the_cap_is_handled_in_time() -> None:
    filler = "".join(f"def helper_{i}(x):\n    return x + {i}\n\n\n" for i in range(2_500))
    answer = f"```python\n{filler}{FIXED_AT_COLUMN_0}\n```"
    assert len(answer) < MAX_ANSWER_CHARS
    code = _extract(answer)
    assert code.endswith(FIXED.split("\n", 1)[1])


def test_every_refusal_is_a_bad_answer_error() -> None:
    assert issubclass(NoCodeInAnswer, LlmBadAnswer)
    assert issubclass(AnswerNotPython, NoCodeInAnswer)
    assert issubclass(AnswerTooLong, LlmBadAnswer)


def test_a_block_that_does_not_parse_loses_to_one_that_does() -> None:
    answer = (
        "Calling it fails:\n```python\n>>> Stats([]).mean()\nZeroDivisionError: float division"
        f" by zero\n```\nFix:\n```python\n{FIXED_AT_COLUMN_0}\n```"
    )
    assert _extract(answer) == FIXED
