"""A run's rich outputs as each editor can show them: a text line per output (every client),
a short inlay-hint form, images in hover (clients that render Markdown `data:` images), and one
self-contained HTML page for Show output. Pure functions of (result, client facts).

Everything in an output was produced by the user's code. Hover text is escaped or fenced (as
in present.py); an image is embedded only if its data is plain base64 of a raster type, so
it cannot close the Markdown link and add its own. The HTML page escapes every text and
embeds HTML outputs as they are, under a Content-Security-Policy that allows no script, no
network and no form: only inline styles and `data:` images.

Hover images: VS Code drops any hover Markdown past 100,000 characters, so images are
embedded only within HOVER_IMAGE_BUDGET characters in all (the rest get their text line); a
figure whose PNG is over it is shown by its hover version (`metadata["codeexec"]["hover"]`,
made by display.py: at most 480 px wide, 256 colours) if it has one;
VS Code and its forks size an image by `![alt](uri|width=W,height=H)` (its own syntax, see
its `parseHrefAndDimensions`); raw `<img>` tags are dropped there unless the extension turned
on `supportHtml`, so the size rides on that syntax. Sublime's LSP gets plain `![alt](uri)`.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from codeexec_lsp.execution.display import hover_of
from codeexec_lsp.results import RunResult

HoverImages = Literal["auto", "always", "never"]
ImageStyle = Literal["none", "plain", "vscode"]
HOVER_IMAGE_BUDGET = 80_000
HOVER_IMAGE_MAX_WIDTH = 480
PREVIEW_LINES = 6
PREVIEW_LINE_CHARS = 120
RASTER_TYPES = ("image/png", "image/jpeg", "image/gif")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_PANDAS_SHAPE = re.compile(r"\[(\d+) rows x (\d+) columns\]\s*$")
_NO_META = re.compile(r"<(?=meta\b)", re.IGNORECASE)
# A live page (a run still going) reloads itself this often; the server rewrites it as often.
LIVE_PAGE_REFRESH_S = 2
PAGE_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "form-action 'none'; base-uri 'none'"
)


def hover_image_style(
    markdown_parser: str | None, client_name: str | None, setting: str = "auto"
) -> ImageStyle:
    """How (and whether) hover may show images, from the client's
    `general.markdown.parser`, its `clientInfo.name` and the `hoverImages` setting.

    "auto": only clients known to render `data:` images in hover: `marked` (VS Code and its
    forks, which also take a size) and Sublime Text's LSP. "always" also tries every other
    client (plain Markdown image); "never" shows text lines only."""
    if setting == "never":
        return "none"
    if (markdown_parser or "").strip().lower() == "marked":
        return "vscode"
    if "sublime" in (client_name or "").lower():
        return "plain"
    return "plain" if setting == "always" else "none"


@dataclass(frozen=True)
class OutputSummary:
    """One output in words: `line` for hover and lists, `short` for an inlay hint,
    `preview` (first rows of its text form, or "") under the line."""

    kind: Literal["image", "table", "html", "svg", "markdown", "latex", "json", "text"]
    line: str
    short: str
    preview: str = ""
    mime: str = "text/plain"


def _codeexec_meta(output: dict[str, Any]) -> dict[str, Any]:
    metadata = output.get("metadata")
    meta = metadata.get("codeexec") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def image_size(output: dict[str, Any], mime: str) -> tuple[int, int] | None:
    """(width, height) in pixels, from the metadata or the PNG header."""
    metadata = output.get("metadata")
    sizes = metadata.get(mime) if isinstance(metadata, dict) else None
    if isinstance(sizes, dict):
        width, height = sizes.get("width"), sizes.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return width, height
    data = output.get("data", {}).get(mime)
    if mime == "image/png" and isinstance(data, str):
        try:
            head = base64.b64decode(data[:44], validate=False)
        except (binascii.Error, ValueError):
            return None
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def _preview(text: str) -> str:
    lines = text.splitlines()
    kept = [
        line if len(line) <= PREVIEW_LINE_CHARS else line[: PREVIEW_LINE_CHARS - 1] + "…"
        for line in lines[:PREVIEW_LINES]
    ]
    if len(lines) > PREVIEW_LINES:
        kept.append(f"… ({len(lines) - PREVIEW_LINES} more lines)")
    return "\n".join(kept)


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table_shape(output: dict[str, Any], plain: str) -> tuple[int, int] | None:
    shape = _codeexec_meta(output).get("shape")
    if isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in shape):
        return shape[0], shape[1]
    found = _PANDAS_SHAPE.search(plain)
    return (int(found.group(1)), int(found.group(2))) if found else None


def summarize(outputs: Sequence[dict[str, Any]]) -> list[OutputSummary]:
    """Each output in words; figures and images are numbered in order ("figure 1")."""
    summaries = []
    images = 0
    for output in outputs:
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        assert isinstance(data, dict)
        plain = data.get("text/plain")
        plain = plain if isinstance(plain, str) else ""
        type_name = str(_codeexec_meta(output).get("type") or "")
        raster = next((mime for mime in RASTER_TYPES if isinstance(data.get(mime), str)), None)
        if raster or isinstance(data.get("image/svg+xml"), str):
            images += 1
            mime = raster or "image/svg+xml"
            noun = "figure" if plain.startswith("<Figure") else "image"
            size = image_size(output, mime) if raster else None
            dims = f"{size[0]}×{size[1]} " if size else ""
            kind_name = mime.split("/")[1].split("+")[0].upper()
            summaries.append(
                OutputSummary(
                    kind="image" if raster else "svg",
                    line=f"{noun} {images}: {dims}{kind_name} — Show output to view",
                    short=f"🖼 {noun}",
                    mime=mime,
                )
            )
        elif isinstance(data.get("text/html"), str):
            shape = _table_shape(output, plain)
            is_table = shape is not None or "<table" in data["text/html"][:2000].lower()
            name = type_name or ("table" if is_table else "HTML")
            where = f" {shape[0]}×{shape[1]}" if shape else ""
            summaries.append(
                OutputSummary(
                    kind="table" if is_table else "html",
                    line=f"{name}{where} (HTML) — Show output to view",
                    short=f"{name}{where}",
                    preview=_preview(plain),
                    mime="text/html",
                )
            )
        else:
            mime = next(
                (m for m in ("text/markdown", "text/latex", "application/json") if m in data),
                "text/plain",
            )
            kind: Literal["markdown", "latex", "json", "text"] = {
                "text/markdown": "markdown",
                "text/latex": "latex",
                "application/json": "json",
            }.get(mime, "text")  # type: ignore[assignment]
            label = {"markdown": "Markdown", "latex": "LaTeX", "json": "JSON"}.get(kind, "")
            text = plain or _as_text(data.get(mime))
            summaries.append(
                OutputSummary(
                    kind=kind,
                    line=(f"{label}: " if label else "") + _one_line(text),
                    short=_one_line(type_name or text, 30),
                    preview=_preview(text) if "\n" in text else "",
                    mime=mime,
                )
            )
    return summaries


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def hint_text(result: RunResult) -> str | None:
    """The inlay-hint form of a run's rich outputs (`→ DataFrame 100×3`, `→ 🖼 figure`,
    `→ 🖼 2 figures`), or None when it has none (the hint then shows the value or output)."""
    if not result.outputs:
        return None
    summaries = summarize(result.outputs)
    for output, summary in zip(result.outputs, summaries, strict=True):
        if output.get("output_type") == "execute_result" and summary.kind in ("table", "html"):
            return "→ " + summary.short
    images = [s for s in summaries if s.kind in ("image", "svg")]
    if images:
        noun = images[0].short.split(" ", 1)[1]
        return f"→ 🖼 {noun}" if len(images) == 1 else f"→ 🖼 {len(images)} {noun}s"
    tables = [s for s in summaries if s.kind == "table"]
    if tables:
        return "→ " + tables[0].short
    return None


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _escape(text: str) -> str:
    return re.sub(r"([!-.:-@\[-`{-~])", r"\\\1", text)


def _clean_base64(value: Any) -> str | None:
    """`value` as base64 that cannot break out of a Markdown link or a `src` attribute."""
    if not isinstance(value, str):
        return None
    compact = "".join(value.split())
    return compact if compact and _BASE64.fullmatch(compact) else None


def _hover_image(output: dict[str, Any], mime: str, alt: str, style: ImageStyle) -> str | None:
    data = output.get("data", {}).get(mime)
    return _image_markdown(data, mime, image_size(output, mime), alt, style)


def _small_hover_image(output: dict[str, Any], alt: str, style: ImageStyle) -> str | None:
    """The figure's hover version (display.py makes one when its PNG is too big for a hover),
    or None if it has none."""
    metadata = output.get("metadata")
    hover = hover_of(metadata) if isinstance(metadata, dict) else None
    if hover is None:
        return None
    size = (hover["width"], hover["height"])
    return _image_markdown(hover["image/png"], "image/png", size, alt, style)


def _image_markdown(
    value: Any, mime: str, size: tuple[int, int] | None, alt: str, style: ImageStyle
) -> str | None:
    data = _clean_base64(value)
    if data is None:
        return None
    uri = f"data:{mime};base64,{data}"
    if style == "vscode" and size:
        width, height = size
        if width > HOVER_IMAGE_MAX_WIDTH:
            width, height = (
                HOVER_IMAGE_MAX_WIDTH,
                max(1, height * HOVER_IMAGE_MAX_WIDTH // width),
            )
        uri += f"|width={width},height={height}"
    return f"![{alt}]({uri})"


def hover_outputs_markdown(
    outputs: Sequence[dict[str, Any]],
    style: ImageStyle,
    value: str | None = None,
    image_budget: int = HOVER_IMAGE_BUDGET,
) -> str:
    """The hover section for a run's outputs: images where `style` allows and they fit the
    budget, a text line (and the first rows of a table) for everything else. A trailing
    value's text form that equals `value` (already shown by the hover) is not repeated."""
    parts = []
    budget = image_budget
    for output, summary in zip(outputs, summarize(outputs), strict=True):
        if summary.kind == "image" and style != "none":
            alt = summary.line.split(":", 1)[0]
            image = _hover_image(output, summary.mime, alt, style)
            if image is None or len(image) > budget:  # its smaller hover version, if any
                image = _small_hover_image(output, alt, style)
            if image is not None and len(image) <= budget:
                budget -= len(image)
                parts.append(image)
                continue
        parts.append(_escape(summary.line))
        plain = output.get("data", {}).get("text/plain")
        if summary.preview and not (value is not None and plain == value):
            parts.append(_fence(summary.preview))
    return "\n\n".join(parts)


# --- Show output: one self-contained HTML page --------------------------------------------

_PAGE_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 70em;
       padding: 0 1em; color: #1f2328; background: #fff; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.6em; color: #57606a; }
pre { background: #f6f8fa; padding: .8em; overflow: auto; white-space: pre-wrap; }
pre.stderr, pre.error { background: #fff1f0; }
img { max-width: 100%; height: auto; }
.output { margin: .6em 0 1.2em; overflow: auto; }
.output table { border-collapse: collapse; }
.output th, .output td { border: 1px solid #d0d7de; padding: .2em .5em; }
.note { color: #57606a; font-style: italic; }
@media (prefers-color-scheme: dark) {
  body { color: #e6edf3; background: #0d1117; }
  pre { background: #161b22; } pre.stderr, pre.error { background: #2d1417; }
}
"""


def _pre(text: str, css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<pre{attr}>{html.escape(text)}</pre>"


def _output_html(output: dict[str, Any], summary: OutputSummary) -> str:
    data = output.get("data", {})
    if summary.kind == "image":
        encoded = _clean_base64(data.get(summary.mime))
        if encoded is not None:
            alt = html.escape(summary.line.split(":", 1)[0], quote=True)
            return f'<img alt="{alt}" src="data:{summary.mime};base64,{encoded}">'
        return _pre(
            f"[not shown: its {summary.mime} data is not base64]\n"
            + _as_text(data.get("text/plain", ""))
        )
    if summary.kind == "svg":
        # As an image, an SVG cannot run script or reach the page.
        svg = str(data.get("image/svg+xml", "")).encode("utf-8")
        encoded = base64.b64encode(svg).decode("ascii")
        return f'<img alt="image" src="data:image/svg+xml;base64,{encoded}">'
    if summary.kind in ("table", "html"):
        # The code's own HTML, rendered as the notebook would. The page's CSP keeps any
        # script, remote resource, frame or form in it inert; a <meta> refresh is the one
        # navigation a CSP does not stop, so no <meta> of it is parsed as a tag.
        return _NO_META.sub("&lt;", str(data.get("text/html", "")))
    text = _as_text(data.get(summary.mime, data.get("text/plain", "")))
    return _pre(text)


def output_page(result: RunResult, title: str, running: bool = False) -> str:
    """The whole of a run as one HTML page: what it printed, its error, every output.
    (A run still going has its own page: live_output_page.)"""
    status = "still running (output so far)" if running else result.status
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(status)} · {result.duration_ms:.0f} ms · '
        f"{html.escape(result.executor)}</p>",
    ]
    if result.message:
        body.append(f"<p>{html.escape(result.message)}</p>")
    body += _streams_html(result.stdout, result.stderr)
    if result.value is not None:
        body += ["<h2>Value</h2>", _pre(result.value)]
    if result.error is not None:
        where = f" at line {result.error.line}" if result.error.line else ""
        body += [f"<h2>Exception{html.escape(where)}</h2>", _pre(result.error.headline, "error")]
        if result.error.traceback:
            body.append(_pre(result.error.traceback, "error"))
    body += _outputs_html(result.outputs)
    if result.truncated:
        body.append('<p class="note">Output truncated to its head and tail (maxOutputBytes).</p>')
    if not (result.stdout or result.stderr or result.value or result.error or result.outputs):
        body.append('<p class="note">No output.</p>')
    return _page(title, body)


def live_output_page(
    title: str,
    elapsed_s: float,
    stdout: str,
    stderr: str,
    outputs: Sequence[dict[str, Any]] = (),
    waiting_for: str | None = None,
    omitted: tuple[int, int] = (0, 0),
    ended: bool = False,
) -> str:
    """A run still going, as far as it got: its output so far (the tail a LiveOutput
    keeps: `omitted` counts the stdout and stderr characters before it) and rich outputs
    so far, marked as running, or as queued while it waits for `waiting_for`. The page
    reloads itself every LIVE_PAGE_REFRESH_S (the server rewrites it while the run goes,
    and with the whole result at its end). `ended`: the run ended but left no result to
    show (cancelled, or its lines changed while it ran): the last output seen, no reload."""
    seconds = f"{elapsed_s:.0f} s"
    if ended:
        status = (
            f"ended after {seconds} without a result to show (cancelled, or its lines "
            "changed while it ran) — its output as last seen"
        )
    elif waiting_for:
        status = f"queued for {seconds}, waiting for {waiting_for} — nothing run yet"
    else:
        status = f"running for {seconds} — output so far"
    after = "" if ended else " This page follows the run until it ends."
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(status)}.{after}</p>',
    ]
    for name, count in zip(("Output", "stderr"), omitted, strict=True):
        if count:
            body.append(
                f'<p class="note">{name}: the first {count:,} characters are not shown here '
                "(only the latest are kept while it runs).</p>"
            )
    body += _streams_html(stdout, stderr)
    body += _outputs_html(outputs)
    if not (stdout or stderr or outputs or waiting_for):
        body.append('<p class="note">No output yet.</p>')
    return _page(title, body, refresh_s=None if ended else LIVE_PAGE_REFRESH_S)


def _streams_html(stdout: str, stderr: str) -> list[str]:
    body = []
    if stdout:
        body += ["<h2>Output</h2>", _pre(stdout)]
    if stderr:
        body += ["<h2>stderr</h2>", _pre(stderr, "stderr")]
    return body


def _outputs_html(outputs: Sequence[dict[str, Any]]) -> list[str]:
    body = []
    for number, (output, summary) in enumerate(zip(outputs, summarize(outputs), strict=True), 1):
        kind = str(output.get("output_type", "output")).replace("_", " ")
        heading = f"{number}. {summary.line.split(' — ')[0]} ({kind})"
        body += [
            f"<h2>{html.escape(heading)}</h2>",
            f'<div class="output">{_output_html(output, summary)}</div>',
        ]
    return body


def _page(title: str, body: list[str], refresh_s: int | None = None) -> str:
    # Our own reload of a live page (the code's HTML never gets a <meta>: _output_html).
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">\n' if refresh_s else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">\n{refresh}'
        f"<title>{html.escape(title)}</title>\n<style>{_PAGE_STYLE}</style></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
