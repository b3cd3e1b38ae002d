"""Rich outputs of a run, collected inside the child: ``display()``, the trailing value's
rich forms and Matplotlib figures, in nbformat's output shape.

Like runner.py (which loads it with ``load_sibling``) it runs under the *user's* interpreter:
standard library only (and Pillow, if Matplotlib loaded it, for a figure's hover version),
valid Python 3.8. Also imported by the server (outcome.py), which bounds what arrives with
the same limits, since the result channel is reachable by user code.

Why it is built so:

- **Zero cost when unused.** Nothing here imports Matplotlib or IPython. A meta-path finder
  watches for their import (a dictionary lookup per import that misses ``sys.modules``) and
  adjusts them right after they load: Matplotlib gets the non-interactive ``agg`` backend
  unless the user chose one (``MPLBACKEND``, a ``backend`` line in a matplotlibrc, or
  ``matplotlib.use``), and ``pyplot.show`` captures the open figures instead of blocking.
  The environment is left alone, so the user's own subprocesses keep their backend.
- **As Jupyter's inline backend does:** figures shown or left open at the end of a run become
  ``display_data`` PNGs (the figure's own dpi) and are closed.
- **A hover version** of a figure whose PNG is too big for an editor's hover
  (HOVER_IMAGE_MAX_CHARS of base64): the same image at most 480 px wide, then 360 and 240,
  as a 256-colour PNG, until one fits; it rides in the output's metadata
  (``metadata["codeexec"]["hover"]``), the full PNG stays as it was. With Pillow (which
  Matplotlib 3.3+ needs and has loaded to write the PNG) it is the full PNG shrunk, 20-50 ms;
  without, the figure is drawn again at a lower dpi. Small figures never pay for it.
- **``display``** is a builtin (as in IPython). Importing IPython costs ~0.3 s and its
  ``display`` only prints outside a kernel, so ours formats objects the way IPython's does
  (``_ipython_display_``, ``_repr_mimebundle_``, ``_repr_*_``) and ``IPython.display.display``
  is redirected to it when user code imports IPython, so its output is captured too.
- **Limits of their own:** at most MAX_OUTPUT_BYTES (4 MB as sent, base64 included) per
  output, MAX_RUN_OUTPUT_BYTES (8 MB) per run and MAX_OUTPUTS (200) outputs per run; a
  figure over MAX_FIGURE_PIXELS is refused before it is drawn. The server reads at most
  10 × maxOutputBytes (10 MB by default) of a run's result, so a run's outputs must fit
  well inside that. A refused output is replaced by a ``text/plain`` line saying why. A
  hover version counts towards both byte limits; where it would pass one, the output keeps
  its full image without it (the other metadata stays within 10,000 characters).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_RUN_OUTPUT_BYTES = 8 * 1024 * 1024
MAX_OUTPUTS = 200
MAX_FIGURE_PIXELS = 25_000_000
MAX_PLAIN_CHARS = 100_000  # like runner.MAX_VALUE_CHARS
OUTPUT_TYPES = ("display_data", "execute_result")
# The `_repr_*_` methods IPython's formatter consults, in its order.
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)
BINARY_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
# Builtin types have no rich forms: their trailing values skip the formatter entirely.
PLAIN_TYPES = frozenset((int, float, complex, bool, str, bytes, list, tuple, dict, set, range))
NON_INTERACTIVE_BACKENDS = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")
# A figure's hover version: base64 characters at most (present_outputs.HOVER_IMAGE_BUDGET,
# 80,000, less the Markdown around it), and the widths tried, largest first. VS Code shows a
# hover image at most 480 px wide (present_outputs.HOVER_IMAGE_MAX_WIDTH).
HOVER_IMAGE_MAX_CHARS = 79_000
HOVER_WIDTHS = (480, 360, 240)
HOVER_KEY = "hover"


def _b64(data: bytes) -> str:
    import base64  # on use: a run without binary outputs never pays for the import

    return base64.b64encode(data).decode("ascii")


def is_json_mime(mime: str) -> bool:
    """nbformat keeps JSON MIME types as structures, every other type as text."""
    return mime == "application/json" or mime.endswith("+json")


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    try:
        return len(json.dumps(value, default=str))
    except (TypeError, ValueError, RecursionError):
        return MAX_RUN_OUTPUT_BYTES + 1


def bundle_size(data: dict[str, Any]) -> int:
    """Characters the bundle takes as sent (base64 included; JSON types as JSON text)."""
    return sum(_size(value) for value in data.values())


def _megabytes(size: int) -> str:
    return format(size / (1024 * 1024), ".1f") + " MB"


def _clip_plain(text: str, limit: int = MAX_PLAIN_CHARS) -> str:
    if len(text) <= limit:
        return text
    # The same words as runner.py's value, so a hover can tell the two are one text.
    return text[:limit] + "… [" + str(len(text) - limit) + " characters omitted]"


def safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # a broken __repr__ must not lose the run
        text = "<repr failed: " + type(exc).__name__ + ">"
    if not isinstance(text, str):
        text = "<repr returned " + type(text).__name__ + ">"
    return _clip_plain(text)


def _warn(message: str) -> None:
    """Tell the user on stderr (the run's output) why something was not shown."""
    with contextlib.suppress(Exception):
        sys.stderr.write("codeexec: " + message + "\n")


def _repr_method(obj: Any, name: str) -> Callable[..., Any] | None:
    """A bound `_repr_*_` method of `obj`, as IPython finds one: never on a class itself
    (its methods are unbound), and any error while looking counts as none."""
    if isinstance(obj, type):
        return None
    try:
        method = getattr(obj, name, None)
    except Exception:
        return None
    if method is None or isinstance(method, type) or not callable(method):
        return None
    return method  # type: ignore[no-any-return]


def _normalized(mime: str, value: Any) -> Any:
    """`value` as nbformat stores it for `mime`, or None if it cannot be one."""
    if is_json_mime(mime):
        return value if isinstance(value, (dict, list)) else None
    if mime in BINARY_MIME_TYPES:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return _b64(bytes(value))
        return value if isinstance(value, str) else None  # already base64, as IPython's
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _call_repr(obj: Any, name: str, method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except Exception as exc:
        _warn(
            type(obj).__name__ + "." + name + " raised " + type(exc).__name__ + "; shown without it"
        )
        return None


def mime_bundle(
    obj: Any, include: list[str] | None = None, exclude: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, metadata) for `obj` as IPython's display formatter builds them: its
    `_repr_mimebundle_` first, then each `_repr_*_` method for the types still missing;
    `text/plain` is always the repr."""
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    method = _repr_method(obj, "_repr_mimebundle_")
    if method is not None:
        try:
            got = method(include=include, exclude=exclude)
        except TypeError:
            got = _call_repr(obj, "_repr_mimebundle_", method)
        except Exception as exc:
            _warn(type(obj).__name__ + "._repr_mimebundle_ raised " + type(exc).__name__)
            got = None
        if isinstance(got, tuple) and len(got) == 2:
            got, extra = got
            if isinstance(extra, dict):
                metadata.update(extra)
        if isinstance(got, dict):
            for mime, value in got.items():
                normalized = _normalized(str(mime), value)
                if normalized is not None:
                    data[str(mime)] = normalized
    for mime, name in REPR_METHODS:
        if mime in data or (include is not None and mime not in include):
            continue
        if exclude is not None and mime in exclude:
            continue
        method = _repr_method(obj, name)
        if method is None:
            continue
        got = _call_repr(obj, name, method)
        if isinstance(got, tuple) and len(got) == 2:  # (data, metadata), as IPython allows
            got, extra = got
            if isinstance(extra, dict):
                metadata[mime] = extra
        normalized = _normalized(mime, got)
        if normalized is not None:
            data[mime] = normalized
    if "text/plain" not in data or not isinstance(data["text/plain"], str):
        data["text/plain"] = safe_repr(obj)
    else:
        data["text/plain"] = _clip_plain(data["text/plain"])
    if include is not None:
        data = {mime: value for mime, value in data.items() if mime in include}
    if exclude is not None:
        data = {mime: value for mime, value in data.items() if mime not in exclude}
    return data, {mime: meta for mime, meta in metadata.items() if mime in data}


def describe(obj: Any) -> dict[str, Any]:
    """What the text lines of editors without rich display name: the type and, for tables
    and arrays, the shape (`DataFrame 100×3`)."""
    described: dict[str, Any] = {"type": type(obj).__name__[:100]}
    try:
        shape = getattr(obj, "shape", None)
    except Exception:
        return described
    if isinstance(shape, tuple) and 0 < len(shape) <= 4 and all(type(n) is int for n in shape):
        described["shape"] = list(shape)
    return described


def is_rich(data: dict[str, Any]) -> bool:
    return any(mime != "text/plain" for mime in data)


def refusal(data: dict[str, Any], size: int, why: str) -> dict[str, Any]:
    """The text/plain bundle that stands for an output that was not sent."""
    kinds = ", ".join(sorted(mime for mime in data if mime != "text/plain")) or "text/plain"
    text = "[codeexec: a " + kinds + " output of " + _megabytes(size) + " was refused: " + why
    text += ". Save it to a file instead (e.g. fig.savefig('plot.png')).]"
    plain = data.get("text/plain")
    if isinstance(plain, str) and plain:
        text += "\n" + _clip_plain(plain, 2000)
    return {"text/plain": text}


class OutputCollector:
    """The rich outputs of one run, in order, within the limits above."""

    def __init__(
        self,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        max_run_bytes: int = MAX_RUN_OUTPUT_BYTES,
        max_outputs: int = MAX_OUTPUTS,
    ) -> None:
        self.max_output_bytes = max_output_bytes
        self.max_run_bytes = max_run_bytes
        self.max_outputs = max_outputs
        self.outputs: list[dict[str, Any]] = []
        self.total_bytes = 0
        self.dropped = 0
        # display_id -> indexes into outputs: update_display rewrites those in place.
        self.display_ids: dict[str, list[int]] = {}
        self.clear_pending = False  # clear_output(wait=True): clear at the next output

    def add(
        self, output_type: str, data: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> None:
        if self.clear_pending:
            self.clear()
        if len(self.outputs) >= self.max_outputs:
            self.dropped += 1
            return
        metadata = dict(metadata or {})
        hover = hover_of(metadata)
        metadata = without_hover(metadata)
        size = bundle_size(data)
        extra = 0  # the hover version's characters, counted like the data's
        if size > self.max_output_bytes:
            data = refusal(
                data, size, "over the " + _megabytes(self.max_output_bytes) + " per-output limit"
            )
            metadata = {}
        elif self.total_bytes + size > self.max_run_bytes:
            data = refusal(
                data,
                size,
                "the run's outputs would pass their " + _megabytes(self.max_run_bytes) + " limit",
            )
            metadata = {}
        elif hover is not None:
            extra = len(hover["image/png"])
            if (
                size + extra > self.max_output_bytes
                or self.total_bytes + size + extra > self.max_run_bytes
            ):
                extra = 0  # the full image is kept, its hover version is not
            else:
                metadata = with_hover(metadata, hover)
        self.total_bytes += bundle_size(data) + extra
        output: dict[str, Any] = {"output_type": output_type, "data": data, "metadata": metadata}
        if output_type == "execute_result":
            output["execution_count"] = None
        self.outputs.append(output)

    def display(
        self,
        *objs: Any,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        raw: bool = False,
        display_id: Any = None,
        **ignored: Any,
    ) -> DisplayHandle | None:
        """IPython's `display` signature. With a `display_id` (True makes one up) the
        outputs can be replaced later in the same run (`update_display`, the handle's
        `update`), and the handle is returned as IPython returns it; `transient` and the
        like are ignored."""
        first = len(self.outputs)
        for obj in objs:
            if raw:
                if isinstance(obj, dict):
                    data = {str(k): v for k, v in obj.items() if _normalized(str(k), v) is not None}
                    self.add(
                        "display_data", {k: _normalized(k, v) for k, v in data.items()}, metadata
                    )
                continue
            hook = _repr_method(obj, "_ipython_display_")
            if hook is not None:
                _call_repr(obj, "_ipython_display_", hook)
                continue
            if _is_figure(obj):
                self.add_figure(obj, close=False)
                continue
            data, meta = mime_bundle(obj, include, exclude)
            if is_rich(data):
                meta["codeexec"] = describe(obj)
            if metadata:
                meta.update(metadata)
            self.add("display_data", data, meta)
        if display_id is None:
            return None
        if display_id is True:
            display_id = os.urandom(8).hex()
        self._remember(str(display_id), first)
        return DisplayHandle(str(display_id))

    def update(self, obj: Any, display_id: str, **options: Any) -> None:
        """Replace the outputs shown under `display_id` in this run with `obj`'s. An id
        from an earlier run (whose outputs were already sent) or none at all gets a new
        output, so the latest state is what the run shows."""
        if self.clear_pending:
            self.clear()
        indexes = self.display_ids.get(display_id)
        first = len(self.outputs)
        self.display(obj, **options)
        added = self.outputs[first:]
        if not indexes or not added:
            self._remember(display_id, first)
            return
        del self.outputs[first:]
        for index in indexes:
            old = self.outputs[index]
            self.total_bytes -= bundle_size(old["data"]) + _hover_chars(old["metadata"])
            self.outputs[index] = dict(added[0], output_type=old["output_type"])
        # The new bundle was counted once by add(); each further place counts it again.
        self.total_bytes += (len(indexes) - 1) * (
            bundle_size(added[0]["data"]) + _hover_chars(added[0]["metadata"])
        )

    def _remember(self, display_id: str, first: int) -> None:
        """The outputs from index `first` on are shown under `display_id`."""
        if len(self.outputs) > first:
            self.display_ids.setdefault(display_id, []).extend(range(first, len(self.outputs)))

    def clear(self, wait: bool = False) -> None:
        """Jupyter's clear_output for this run's rich outputs (what it printed stays: it has
        already gone to the editor). `wait`: clear when the next output arrives."""
        if wait:
            self.clear_pending = True
            return
        self.outputs = []
        self.total_bytes = 0
        self.dropped = 0
        self.display_ids = {}
        self.clear_pending = False

    def execute_result(self, value: Any) -> None:
        """The trailing value's rich forms, if it has more than text (its repr stays the
        RunResult `value`). An open Matplotlib figure is drawn and closed here, so it is
        not drawn a second time among the figures left open."""
        if value is None or type(value) in PLAIN_TYPES:
            return
        if _is_figure(value):
            self.add_figure(value, close=True, output_type="execute_result")
            return
        data, metadata = mime_bundle(value)
        if is_rich(data):
            metadata["codeexec"] = describe(value)
            self.add("execute_result", data, metadata)

    def add_figure(self, figure: Any, close: bool, output_type: str = "display_data") -> None:
        data, metadata = figure_bundle(figure)
        self.add(output_type, data, metadata)
        if close:
            _close_figure(figure)

    def take(self) -> list[dict[str, Any]]:
        """The outputs so far, with a last line if some were dropped; starts afresh."""
        outputs = self.outputs
        if self.dropped:
            outputs.append(
                {
                    "output_type": "display_data",
                    "data": {
                        "text/plain": "[codeexec: "
                        + format(self.dropped, ",")
                        + " more outputs were not kept: at most "
                        + str(self.max_outputs)
                        + " per run]"
                    },
                    "metadata": {},
                }
            )
        self.clear()
        return outputs


# --- Matplotlib ---------------------------------------------------------------------------


def _is_figure(obj: Any) -> bool:
    """A matplotlib Figure, known without importing matplotlib."""
    figure_module = sys.modules.get("matplotlib.figure")
    if figure_module is None:
        return False
    figure_class = getattr(figure_module, "Figure", None)
    return figure_class is not None and isinstance(obj, figure_class)


def figure_bundle(figure: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A figure as Jupyter's inline backend shows it: PNG at the figure's dpi and its repr."""
    plain = safe_repr(figure)
    try:
        dpi = float(figure.dpi)
        width_in, height_in = (float(size) for size in figure.get_size_inches())
        width, height = round(width_in * dpi), round(height_in * dpi)
        if width * height > MAX_FIGURE_PIXELS:
            return {
                "text/plain": "[codeexec: a figure of "
                + str(width)
                + "×"
                + str(height)
                + " pixels was refused: over the "
                + format(MAX_FIGURE_PIXELS, ",")
                + "-pixel limit. Lower its size or dpi, or save it to a file.]\n"
                + plain
            }, {}
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
    except Exception as exc:
        return {
            "text/plain": "[codeexec: the figure could not be drawn: "
            + type(exc).__name__
            + ": "
            + _clip_plain(str(exc), 500)
            + "]\n"
            + plain
        }, {}
    png = buffer.getvalue()
    width, height = png_size(png) or (width, height)
    encoded = _b64(png)
    metadata: dict[str, Any] = {"image/png": {"width": width, "height": height}}
    if HOVER_IMAGE_MAX_CHARS < len(encoded) <= MAX_OUTPUT_BYTES:
        hover = hover_version(figure, png, dpi)
        if hover is not None:
            metadata["codeexec"] = {HOVER_KEY: hover}
    return {"image/png": encoded, "text/plain": plain}, metadata


def hover_version(figure: Any, png: bytes, dpi: float) -> dict[str, Any] | None:
    """The figure small enough for a hover: `{"image/png": base64, "width", "height"}`
    within HOVER_IMAGE_MAX_CHARS, or None if even the smallest width does not fit (or it
    cannot be made). `png` is the figure drawn at `dpi`."""
    size = png_size(png)
    if size is None:
        return None
    width = size[0]
    widths = sorted({min(width, w) for w in HOVER_WIDTHS}, reverse=True)
    try:
        import importlib  # on use, like base64

        image_module = importlib.import_module("PIL.Image")  # loaded already, to write the PNG
    except Exception:
        image_module = None
    try:
        if image_module is not None:
            smaller = _shrunk_pngs(image_module, png, widths)
        else:  # no Pillow: draw it again at a lower dpi (the same width gains nothing)
            smaller = _redrawn_pngs(figure, dpi, width, [w for w in widths if w < width])
        for small in smaller:
            encoded = _b64(small)
            small_size = png_size(small)
            if small_size is not None and len(encoded) <= HOVER_IMAGE_MAX_CHARS:
                return {"image/png": encoded, "width": small_size[0], "height": small_size[1]}
    except Exception:  # the full image is what matters: never lose it for this
        return None
    return None


def _shrunk_pngs(image_module: Any, png: bytes, widths: list[int]) -> Iterator[bytes]:
    """The PNG resized to each width (Lanczos), as 256-colour PNGs (transparency kept)."""
    lanczos = getattr(getattr(image_module, "Resampling", image_module), "LANCZOS", 1)
    fast_octree = getattr(getattr(image_module, "Quantize", image_module), "FASTOCTREE", 2)
    image = image_module.open(io.BytesIO(png))
    image.load()
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA")
    for width in widths:
        height = max(1, round(image.height * width / image.width))
        resized = image
        if width != image.width:
            try:
                resized = image.resize((width, height), lanczos, reducing_gap=3.0)
            except TypeError:  # Pillow before 7.0
                resized = image.resize((width, height), lanczos)
        buffer = io.BytesIO()
        resized.quantize(256, method=fast_octree).save(buffer, format="PNG")
        yield buffer.getvalue()


def _redrawn_pngs(figure: Any, dpi: float, width: int, widths: list[int]) -> Iterator[bytes]:
    for smaller in widths:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi * smaller / width)
        yield buffer.getvalue()


def _hover_chars(metadata: dict[str, Any]) -> int:
    """The characters a kept hover version adds to an output (counted like its data)."""
    hover = hover_of(metadata)
    return len(hover["image/png"]) if hover is not None else 0


def hover_of(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The output's hover version if it is well formed (the server checks again what a child
    sent: its result channel is reachable by user code), else None."""
    codeexec = metadata.get("codeexec")
    hover = codeexec.get(HOVER_KEY) if isinstance(codeexec, dict) else None
    if not isinstance(hover, dict):
        return None
    png, width, height = hover.get("image/png"), hover.get("width"), hover.get("height")
    if not (isinstance(png, str) and 0 < len(png) <= HOVER_IMAGE_MAX_CHARS):
        return None
    if type(width) is not int or type(height) is not int or width <= 0 or height <= 0:
        return None
    return {"image/png": png, "width": width, "height": height}


def without_hover(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` without a hover version (a copy if it had one)."""
    codeexec = metadata.get("codeexec")
    if not isinstance(codeexec, dict) or HOVER_KEY not in codeexec:
        return metadata
    rest = {key: value for key, value in codeexec.items() if key != HOVER_KEY}
    stripped = {key: value for key, value in metadata.items() if key != "codeexec"}
    if rest:
        stripped["codeexec"] = rest
    return stripped


def with_hover(metadata: dict[str, Any], hover: dict[str, Any]) -> dict[str, Any]:
    codeexec = metadata.get("codeexec")
    merged = dict(codeexec) if isinstance(codeexec, dict) else {}
    merged[HOVER_KEY] = hover
    return {**metadata, "codeexec": merged}


def png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None if it is not a PNG."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return None
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _close_figure(figure: Any) -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        with contextlib.suppress(Exception):
            pyplot.close(figure)


def _backend_is_inline_like() -> bool:
    """True when figures cannot be shown in a window: then we show them as outputs."""
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is None:
        return False
    try:
        backend = str(matplotlib.get_backend()).lower()
    except Exception:
        return False
    return backend in NON_INTERACTIVE_BACKENDS


def open_figures() -> list[Any]:
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return []
    try:
        managers = helpers.Gcf.get_all_fig_managers()
        return [manager.canvas.figure for manager in managers]
    except Exception:
        return []


def capture_open_figures(collector: OutputCollector) -> None:
    """Every open pyplot figure becomes a display_data PNG and is closed (as plt.show()
    and the end of a cell do under Jupyter's inline backend)."""
    if "matplotlib.pyplot" not in sys.modules or not _backend_is_inline_like():
        return
    for figure in open_figures():
        collector.add_figure(figure, close=True)


def _choose_backend(matplotlib: Any) -> None:
    """Right after `import matplotlib`: agg, unless the user chose a backend."""
    if os.environ.get("MPLBACKEND"):
        return
    try:
        rc = matplotlib.rcParams
        if hasattr(rc, "_get_backend_or_none"):  # Matplotlib 3.7+
            unchosen = rc._get_backend_or_none() is None
        else:
            sentinel = getattr(matplotlib.rcsetup, "_auto_backend_sentinel", None)
            unchosen = dict.__getitem__(rc, "backend") is sentinel
        if unchosen:
            rc["backend"] = "agg"
    except Exception:
        pass


def _hook_pyplot(pyplot: Any) -> None:
    original = getattr(pyplot, "show", None)
    if original is None or getattr(original, "_codeexec_original", None) is not None:
        return

    def show(*args: Any, **kwargs: Any) -> Any:
        if not _backend_is_inline_like():
            return original(*args, **kwargs)
        capture_open_figures(current)
        return None

    show.__doc__ = original.__doc__
    show.__wrapped__ = original  # type: ignore[attr-defined]
    show._codeexec_original = original  # type: ignore[attr-defined]
    pyplot.show = show


def _hook_ipython_display(module: Any) -> None:
    # IPython's own DisplayHandle looks these up in its module at call time, so its
    # handles reach the run too.
    for name, ours in (
        ("display", display),
        ("update_display", update_display),
        ("clear_output", clear_output),
    ):
        if hasattr(module, name):
            setattr(module, name, ours)


POST_IMPORT_HOOKS: dict[str, Callable[[Any], None]] = {
    "matplotlib": _choose_backend,
    "matplotlib.pyplot": _hook_pyplot,
    "IPython.core.display_functions": _hook_ipython_display,
    "IPython.core.display": _hook_ipython_display,
    "IPython.display": _hook_ipython_display,
}


class _HookedLoader:
    """Runs the real loader, then our hook; the module keeps the real loader."""

    def __init__(self, loader: Any, spec: Any, hook: Callable[[Any], None]) -> None:
        self.loader = loader
        self.spec = spec
        self.hook = hook

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self.loader
        self.spec.loader = self.loader
        self.loader.exec_module(module)
        with contextlib.suppress(Exception):
            self.hook(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class PostImportFinder:
    """Watches for the few modules we adjust; every other import costs one dict lookup."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        hook = POST_IMPORT_HOOKS.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, PostImportFinder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, spec, hook)
        return spec

    def invalidate_caches(self) -> None:
        pass


# --- per run ------------------------------------------------------------------------------

current = OutputCollector()


def display(*objs: Any, **kwargs: Any) -> DisplayHandle | None:
    """Show objects as Jupyter does: each becomes a display_data output of this run."""
    return current.display(*objs, **kwargs)


def update_display(obj: Any, *, display_id: Any, **kwargs: Any) -> None:
    """IPython's update_display: replace what was shown under `display_id` in this run."""
    current.update(obj, str(display_id), **kwargs)


def clear_output(wait: bool = False) -> None:
    """IPython's clear_output, for the run's rich outputs (printed text stays)."""
    current.clear(wait)


class DisplayHandle:
    """What `display(..., display_id=...)` returns, as IPython's DisplayHandle."""

    def __init__(self, display_id: str) -> None:
        self.display_id = display_id

    def __repr__(self) -> str:
        return "<DisplayHandle display_id=" + self.display_id + ">"

    def display(self, obj: Any, **kwargs: Any) -> None:
        current.display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj: Any, **kwargs: Any) -> None:
        current.update(obj, self.display_id, **kwargs)


def install() -> None:
    """Once per process, before user code: the `display` builtin and the import watch.
    Modules imported before (a session's earlier runs do not count) are adjusted now."""
    builtins.display = display  # type: ignore[attr-defined]
    if not any(isinstance(finder, PostImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, PostImportFinder())
        for name, hook in POST_IMPORT_HOOKS.items():
            module = sys.modules.get(name)
            if module is not None and name != "matplotlib":
                hook(module)


def begin_run() -> None:
    global current
    current = OutputCollector()


def end_run(value: Any = None, ok: bool = True) -> list[dict[str, Any]]:
    """The run's outputs: what it displayed, the trailing value's rich forms (if it ended
    well), then the figures it left open. Never raises."""
    collector = current
    try:
        if ok:
            collector.execute_result(value)
        capture_open_figures(collector)
    except Exception as exc:
        _warn("rich outputs were lost: " + type(exc).__name__)
    return collector.take()


# --- on the server side: what arrived, bounded again --------------------------------------


def bounded_outputs(raw: Any) -> list[dict[str, Any]]:
    """The child's `outputs` in the contract's shape and within the same limits; anything
    else is dropped (the child's result channel is reachable by the code it ran)."""
    if not isinstance(raw, list):
        return []
    collector = OutputCollector()
    for item in raw:
        if not isinstance(item, dict):
            continue
        output_type = item.get("output_type")
        data = item.get("data")
        if output_type not in OUTPUT_TYPES or not isinstance(data, dict):
            continue
        clean: dict[str, Any] = {}
        for mime, value in data.items():
            if (
                isinstance(mime, str)
                and _normalized(mime, value) is not None
                and not isinstance(value, (bytes, bytearray, memoryview))
            ):
                clean[mime] = value
        if not clean:
            continue
        metadata = item.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        # A figure's hover version is bounded on its own (and counted by `add`).
        hover = hover_of(metadata)
        metadata = without_hover(metadata)
        if _size(metadata) > 10_000:
            metadata = {}
        if hover is not None:
            metadata = with_hover(metadata, hover)
        collector.add(str(output_type), clean, metadata)
    return collector.take()
