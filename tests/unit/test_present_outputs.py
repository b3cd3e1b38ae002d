"""present_outputs: text lines, inlay-hint forms, hover images per client, Show output's page."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from codeexec_lsp.execution.display import HOVER_IMAGE_MAX_CHARS, bounded_outputs, figure_bundle
from codeexec_lsp.present_outputs import (
    HOVER_IMAGE_BUDGET,
    HOVER_IMAGE_MAX_WIDTH,
    PAGE_CSP,
    hint_text,
    hover_image_style,
    hover_outputs_markdown,
    output_page,
    summarize,
)
from codeexec_lsp.results import ErrorInfo, RunResult


def png_header(width: int, height: int) -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
        + width.to_bytes(4, "big")
        + height.to_bytes(4, "big")
        + b"\x08\x06\x00\x00\x00rest-of-image"
    )


def figure(width: int = 640, height: int = 480, metadata: bool = True) -> dict[str, Any]:
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(png_header(width, height)).decode("ascii"),
            "text/plain": f"<Figure size {width}x{height} with 1 Axes>",
        },
        "metadata": {"image/png": {"width": width, "height": height}} if metadata else {},
    }


DATAFRAME_TEXT = "    a  b  c\n0   1  2  3\n1   4  5  6\n..\n99  7  8  9\n\n[100 rows x 3 columns]"
DATAFRAME = {
    "output_type": "execute_result",
    "data": {"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": DATAFRAME_TEXT},
    "metadata": {"codeexec": {"type": "DataFrame", "shape": [100, 3]}},
    "execution_count": None,
}


@pytest.mark.parametrize(
    ("parser", "name", "setting", "expected"),
    [
        ("marked", "Visual Studio Code", "auto", "vscode"),
        ("marked", "Cursor", "auto", "vscode"),
        (None, "Sublime Text LSP", "auto", "plain"),
        (None, "Neovim", "auto", "none"),
        (None, "helix", "auto", "none"),
        (None, "Neovim", "always", "plain"),
        ("marked", "Visual Studio Code", "never", "none"),
        (None, None, "auto", "none"),
    ],
)
def test_hover_image_style_per_client_and_setting(
    parser: str | None, name: str | None, setting: str, expected: str
) -> None:
    assert hover_image_style(parser, name, setting) == expected


def test_a_figure_is_one_numbered_line_with_its_size_and_a_figure_hint() -> None:
    (summary,) = summarize([figure()])
    assert summary.line == "figure 1: 640×480 PNG — Show output to view"
    assert summary.short == "🖼 figure"
    # Without metadata the size comes from the PNG header.
    assert summarize([figure(30, 20, metadata=False)])[0].line.startswith("figure 1: 30×20 PNG")
    result = RunResult(status="ok", outputs=(figure(), figure()))
    assert hint_text(result) == "→ 🖼 2 figures"
    assert hint_text(RunResult(status="ok", outputs=(figure(),))) == "→ 🖼 figure"


def test_a_table_says_its_type_and_shape_and_previews_its_first_rows() -> None:
    (summary,) = summarize([DATAFRAME])
    assert summary.kind == "table"
    assert summary.line == "DataFrame 100×3 (HTML) — Show output to view"
    assert summary.preview.splitlines()[:2] == ["    a  b  c", "0   1  2  3"]
    assert "more lines" in summary.preview
    assert hint_text(RunResult(status="ok", outputs=(figure(), DATAFRAME))) == "→ DataFrame 100×3"
    # Shape read from pandas' own text when the metadata does not give it.
    bare = {**DATAFRAME, "metadata": {}}
    assert summarize([bare])[0].line == "table 100×3 (HTML) — Show output to view"


def test_plain_outputs_have_no_hint_and_text_lines() -> None:
    text = {"output_type": "display_data", "data": {"text/plain": "'between'"}, "metadata": {}}
    assert hint_text(RunResult(status="ok", outputs=(text,))) is None
    assert hint_text(RunResult(status="ok")) is None
    assert summarize([text])[0].line == "'between'"


def test_vscode_hover_embeds_the_image_scaled_to_fit() -> None:
    markdown = hover_outputs_markdown([figure(960, 720)], "vscode")
    match = re.fullmatch(
        r"!\[figure 1\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\|(.*)\)", markdown
    )
    assert match is not None
    assert match.group(2) == f"width={HOVER_IMAGE_MAX_WIDTH},height=360"
    assert base64.b64decode(match.group(1)) == png_header(960, 720)


def test_sublime_gets_a_plain_image_and_neovim_a_text_line() -> None:
    plain = hover_outputs_markdown([figure()], "plain")
    assert plain.startswith("![figure 1](data:image/png;base64,") and "|width" not in plain
    text = hover_outputs_markdown([figure()], "none")
    assert "data:" not in text
    assert text == r"figure 1\: 640×480 PNG — Show output to view"


def test_images_past_the_hover_budget_become_text_lines() -> None:
    markdown = hover_outputs_markdown([figure(), figure()], "vscode", image_budget=200)
    first, second = markdown.split("\n\n")
    assert first.startswith("![figure 1](data:")
    assert second == r"figure 2\: 640×480 PNG — Show output to view"


def test_data_that_is_not_base64_is_never_embedded() -> None:
    hostile = figure()
    hostile["data"]["image/png"] = "AAAA)![x](https://evil.example/track.png"
    markdown = hover_outputs_markdown([hostile], "vscode")
    assert "evil" not in markdown and "](data:" not in markdown
    page = output_page(RunResult(status="ok", outputs=(hostile,)), "t")
    assert "evil" not in page


def test_the_hover_does_not_repeat_the_value_but_previews_other_tables() -> None:
    with_value = hover_outputs_markdown([DATAFRAME], "none", value=DATAFRAME_TEXT)
    assert with_value == r"DataFrame 100×3 \(HTML\) — Show output to view"
    without = hover_outputs_markdown([DATAFRAME], "none")
    assert "```text\n    a  b  c" in without


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    return collector


def test_the_page_holds_everything_escaped_but_html_outputs_and_a_strict_csp() -> None:
    result = RunResult(
        status="error",
        stdout="printed <b>not bold</b>\n",
        stderr="warned & worried\n",
        error=ErrorInfo(
            type="ValueError",
            message="<script>alert(1)</script>",
            line=3,
            traceback="Traceback ...\nValueError: <script>alert(1)</script>\n",
        ),
        outputs=(
            figure(),
            DATAFRAME,
            {
                "output_type": "display_data",
                "data": {"image/svg+xml": "<svg><script>x()</script></svg>", "text/plain": "S"},
                "metadata": {},
            },
            {
                "output_type": "display_data",
                "data": {
                    "text/html": '<p>hi</p><META http-equiv="refresh" content="0;url=https://e.x">',
                    "text/plain": "H",
                },
                "metadata": {},
            },
            {"output_type": "display_data", "data": {"application/json": {"k": "<v>"}}},
        ),
    )
    page = output_page(result, "demo.py, lines 1–3 <run>")
    parsed = parse(page)
    tags = [tag for tag, _ in parsed.tags]
    metas = [attrs for tag, attrs in parsed.tags if tag == "meta"]
    assert {"http-equiv": "Content-Security-Policy", "content": PAGE_CSP} in metas
    assert "script-src" not in PAGE_CSP and "default-src 'none'" in PAGE_CSP
    assert len(metas) == 2  # charset and CSP: the output's refresh is text, not a tag
    assert "script" not in tags  # the exception's and the SVG's scripts are text or inert
    assert "b" not in tags  # stdout escaped
    assert "table" in tags and "p" in tags  # HTML outputs render
    images = [attrs["src"] or "" for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == 2
    assert images[0].startswith("data:image/png;base64,")
    assert base64.b64decode(images[1].split(",", 1)[1]).startswith(b"<svg>")
    text = "".join(parsed.text)
    for expected in (
        "printed <b>not bold</b>",
        "warned & worried",
        "ValueError: <script>alert(1)</script>",
        '"k": "<v>"',
        "figure 1: 640×480 PNG",
        "demo.py, lines 1–3 <run>",
    ):
        assert expected in text


def test_a_page_of_a_run_still_going_says_so() -> None:
    page = output_page(RunResult(status="ok", stdout="epoch 1\n"), "t", running=True)
    assert "still running (output so far)" in page
    assert "No output." in output_page(RunResult(status="ok"), "t")


# --- a dense figure: its hover version ----------------------------------------------------


def dense_figure_output() -> dict[str, Any]:
    """A real 10,000-point scatter with a colour bar, captured as a run captures it."""
    matplotlib_figure = pytest.importorskip("matplotlib.figure")
    import random

    points = random.Random(0)
    xs = [points.gauss(0, 1) for _ in range(10_000)]
    ys = [points.gauss(0, 1) for _ in range(10_000)]
    figure = matplotlib_figure.Figure()
    axes = figure.subplots()
    figure.colorbar(axes.scatter(xs, ys, s=2, c=[points.random() for _ in range(10_000)]))
    data, metadata = figure_bundle(figure)
    (output,) = bounded_outputs(
        [{"output_type": "display_data", "data": data, "metadata": metadata}]
    )
    return output


def test_a_dense_figure_is_its_hover_version_in_vscode_and_sublime_and_a_line_in_neovim() -> None:
    output = dense_figure_output()
    full = output["data"]["image/png"]
    small = output["metadata"]["codeexec"]["hover"]["image/png"]
    assert len(full) > HOVER_IMAGE_BUDGET  # today's hover could not show it
    vscode = hover_outputs_markdown([output], "vscode")
    assert vscode == f"![figure 1](data:image/png;base64,{small}|width=480,height=360)"
    assert len(vscode) <= HOVER_IMAGE_BUDGET
    assert (
        hover_outputs_markdown([output], "plain") == f"![figure 1](data:image/png;base64,{small})"
    )
    neovim = hover_outputs_markdown([output], "none")
    assert neovim == r"figure 1\: 640×480 PNG — Show output to view"
    # Show output keeps the full image.
    images = [
        attrs["src"]
        for tag, attrs in parse(output_page(RunResult(status="ok", outputs=(output,)), "t")).tags
        if tag == "img"
    ]
    assert images == [f"data:image/png;base64,{full}"]


def test_the_full_image_wins_when_it_fits_and_the_hover_version_shares_the_budget() -> None:
    small = figure(320, 240)
    big = figure()
    big["data"]["image/png"] += "A" * HOVER_IMAGE_BUDGET  # over the budget on its own
    big["metadata"]["codeexec"] = {
        "hover": {"image/png": small["data"]["image/png"], "width": 320, "height": 240}
    }
    with_room = figure()
    with_room["metadata"]["codeexec"] = big["metadata"]["codeexec"]
    first, second = hover_outputs_markdown([with_room, big], "vscode").split("\n\n")
    assert first.startswith(f"![figure 1](data:image/png;base64,{with_room['data']['image/png']}|")
    assert second.endswith(f"base64,{small['data']['image/png']}|width=320,height=240)")
    # No room left for even the hover version: its text line.
    tight = hover_outputs_markdown([with_room, big], "vscode", image_budget=len(first) + 10)
    assert tight.split("\n\n")[1] == r"figure 2\: 640×480 PNG — Show output to view"


def test_the_largest_hover_version_display_makes_fits_the_budget_even_as_figure_200() -> None:
    too_big = figure()
    too_big["data"]["image/png"] += "A" * HOVER_IMAGE_BUDGET
    largest = figure()
    largest["data"]["image/png"] = too_big["data"]["image/png"]
    largest["metadata"]["codeexec"] = {
        "hover": {"image/png": "A" * HOVER_IMAGE_MAX_CHARS, "width": 480, "height": 360}
    }
    markdown = hover_outputs_markdown([too_big] * 199 + [largest], "vscode")
    last = markdown.split("\n\n")[-1]
    assert last.startswith("![figure 200](data:image/png;base64,AAAA")
    assert last.endswith("|width=480,height=360)")
