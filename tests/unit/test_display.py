"""display.py: rich MIME bundles, limits, and Matplotlib/IPython capture, in-process and in
real child interpreters (the way runner.py loads it: by path, under a private name)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.execution import display
from codeexec_lsp.execution.display import OutputCollector, bounded_outputs, mime_bundle

DISPLAY_FILE = Path(display.__file__)
RUN_SEPARATOR = "\n# --- next run ---\n"

# Runs each chunk of stdin as one run (trailing expression = the value), as runner.py does,
# and prints one JSON line per run: outputs and the value's repr.
DRIVER = textwrap.dedent(
    """
    import ast, importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("_codeexec_display", sys.argv[1])
    display = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = display
    spec.loader.exec_module(display)
    display.install()
    namespace = {"__name__": "__main__"}
    for chunk in sys.stdin.read().split(sys.argv[2]):
        tree = ast.parse(chunk)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        display.begin_run()
        exec(compile(tree, "<run>", "exec"), namespace)
        value = None
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<run>", "eval"), namespace)
        outputs = display.end_run(value)
        sys.stdout.write("RESULT " + json.dumps({"outputs": outputs, "value": repr(value)}) + "\\n")
    """
)


def run_child(*runs: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Each run's {"outputs", "value"}, from a real child interpreter."""
    child_env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    child_env.update(env or {})
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(DISPLAY_FILE), RUN_SEPARATOR],
        input=RUN_SEPARATOR.join(textwrap.dedent(run) for run in runs),
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env,
    )
    assert completed.returncode == 0, completed.stderr
    results = [
        json.loads(line[len("RESULT ") :])
        for line in completed.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    assert len(results) == len(runs), completed.stdout
    return results


def png_of(output: dict[str, Any]) -> bytes:
    return base64.b64decode(output["data"]["image/png"])


needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode
    != 0,
    reason="matplotlib is not installed",
)


# --- MIME bundles, in-process -------------------------------------------------------------


class Rich:
    def _repr_html_(self) -> str:
        return "<b>rich</b>"

    def _repr_png_(self) -> bytes:
        return b"\x89PNG fake"

    def _repr_json_(self) -> dict[str, int]:
        return {"a": 1}

    def __repr__(self) -> str:
        return "Rich()"


def test_repr_methods_make_a_bundle_with_the_repr_as_text_and_binary_as_base64() -> None:
    data, metadata = mime_bundle(Rich())
    assert data == {
        "text/html": "<b>rich</b>",
        "image/png": base64.b64encode(b"\x89PNG fake").decode("ascii"),
        "application/json": {"a": 1},
        "text/plain": "Rich()",
    }
    assert metadata == {}


def test_mimebundle_comes_first_and_repr_methods_fill_in_the_rest() -> None:
    class Both:
        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
            return {"text/html": "<i>bundle</i>", "text/plain": "plain"}, {"text/html": {"k": 1}}

        def _repr_html_(self) -> str:
            return "<i>method</i>"

        def _repr_markdown_(self) -> str:
            return "*md*"

    data, metadata = mime_bundle(Both())
    assert data == {"text/html": "<i>bundle</i>", "text/plain": "plain", "text/markdown": "*md*"}
    assert metadata == {"text/html": {"k": 1}}


def test_a_broken_or_useless_repr_method_is_skipped_and_said_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken:
        def _repr_html_(self) -> str:
            raise ValueError("nope")

        def _repr_svg_(self) -> None:
            return None

        def _repr_latex_(self) -> int:
            return 3

    data, _ = mime_bundle(Broken())
    assert set(data) == {"text/plain"}
    assert "Broken._repr_html_ raised ValueError" in capsys.readouterr().err


def test_a_class_is_plain_even_if_it_defines_repr_methods() -> None:
    data, _ = mime_bundle(Rich)
    assert set(data) == {"text/plain"}
    assert "Rich" in data["text/plain"]


def test_include_and_exclude_filter_the_bundle() -> None:
    assert set(mime_bundle(Rich(), include=["text/html"])[0]) == {"text/html"}
    assert "image/png" not in mime_bundle(Rich(), exclude=["image/png"])[0]


def test_execute_result_only_for_values_richer_than_text() -> None:
    collector = OutputCollector()
    collector.execute_result(42)
    collector.execute_result(None)
    assert collector.take() == []
    collector.execute_result(Rich())
    (output,) = collector.take()
    assert output["output_type"] == "execute_result"
    assert output["data"]["text/html"] == "<b>rich</b>"


def test_display_adds_display_data_and_honours_raw_and_ipython_display() -> None:
    collector = OutputCollector()
    shown: list[str] = []

    class SelfShowing:
        def _ipython_display_(self) -> None:
            shown.append("called")

    collector.display(Rich(), "text", {"text/html": "<p>raw</p>"}, SelfShowing())
    collector.display({"text/html": "<p>raw</p>", "bad": 3}, raw=True)
    outputs = collector.take()
    assert [o["output_type"] for o in outputs] == ["display_data"] * 4
    assert outputs[1]["data"] == {"text/plain": "'text'"}
    assert outputs[2]["data"]["text/plain"].startswith("{")  # a dict, not raw
    assert outputs[3]["data"] == {"text/html": "<p>raw</p>"}
    assert shown == ["called"]


# --- limits -------------------------------------------------------------------------------


def test_an_output_over_the_per_output_limit_is_refused_with_the_reason() -> None:
    collector = OutputCollector(max_output_bytes=1000, max_run_bytes=10_000)
    collector.add("display_data", {"text/html": "x" * 2000, "text/plain": "Big()"})
    (output,) = collector.take()
    text = output["data"]["text/plain"]
    assert set(output["data"]) == {"text/plain"}
    assert "text/html output" in text and "refused" in text and "per-output limit" in text
    assert text.endswith("Big()")


def test_outputs_past_the_run_limit_are_refused_and_past_the_count_dropped_with_a_note() -> None:
    collector = OutputCollector(max_output_bytes=1000, max_run_bytes=2000, max_outputs=5)
    for _ in range(3):
        collector.add("display_data", {"text/html": "y" * 900})
    outputs = collector.take()
    assert [set(o["data"]) for o in outputs] == [{"text/html"}, {"text/html"}, {"text/plain"}]
    assert "run's outputs would pass" in outputs[2]["data"]["text/plain"]
    for _ in range(8):
        collector.add("display_data", {"text/plain": "z"})
    outputs = collector.take()
    assert len(outputs) == 6
    assert "3 more outputs were not kept" in outputs[-1]["data"]["text/plain"]


OVER_ONE_OUTPUT = display.MAX_OUTPUT_BYTES + 1


def test_bounded_outputs_keeps_the_contract_shape_only() -> None:
    good = {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}
    raw = [
        good,
        {"output_type": "stream", "data": {"text/plain": "x"}},
        {"output_type": "display_data", "data": {"image/png": 5}},
        {"output_type": "execute_result", "data": "x"},
        "junk",
        {
            "output_type": "display_data",
            "data": {"text/html": "h" * (display.MAX_OUTPUT_BYTES + 1)},
        },
    ]
    outputs = bounded_outputs(raw)
    assert outputs[0] == good
    assert len(outputs) == 2
    assert "refused" in outputs[1]["data"]["text/plain"]
    assert bounded_outputs({"not": "a list"}) == []


def test_png_size_reads_the_header() -> None:
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (640).to_bytes(4, "big")
    assert display.png_size(header + (480).to_bytes(4, "big")) == (640, 480)
    assert display.png_size(b"GIF89a" + b"\x00" * 30) is None


@needs_matplotlib
def test_figure_bundle_respects_dpi_and_refuses_giant_figures() -> None:
    from matplotlib.figure import Figure

    data, metadata = display.figure_bundle(Figure(figsize=(2, 1), dpi=50))
    assert display.png_size(base64.b64decode(data["image/png"])) == (100, 50)
    assert metadata == {"image/png": {"width": 100, "height": 50}}
    assert data["text/plain"].startswith("<Figure size 100x50")
    data, _ = display.figure_bundle(Figure(figsize=(100, 100), dpi=100))
    assert set(data) == {"text/plain"}
    assert "10000×10000 pixels was refused" in data["text/plain"]


# --- real child interpreters --------------------------------------------------------------


def test_a_run_without_matplotlib_or_ipython_imports_neither() -> None:
    (run,) = run_child("import sys\nx = 1\n'matplotlib' in sys.modules, 'IPython' in sys.modules")
    assert run == {"outputs": [], "value": "(False, False)"}


def test_display_is_a_builtin_and_a_rich_trailing_value_is_an_execute_result() -> None:
    (run,) = run_child(
        """
        class Table:
            def _repr_html_(self):
                return "<table><tr><td>1</td></tr></table>"
            def __repr__(self):
                return "Table()"
        display(Table(), 5)
        Table()
        """
    )
    kinds = [(o["output_type"], sorted(o["data"])) for o in run["outputs"]]
    assert kinds == [
        ("display_data", ["text/html", "text/plain"]),
        ("display_data", ["text/plain"]),
        ("execute_result", ["text/html", "text/plain"]),
    ]
    assert run["outputs"][2]["data"]["text/html"].startswith("<table>")
    assert run["value"] == "Table()"


@needs_matplotlib
def test_figures_left_open_are_captured_as_png_at_their_dpi_and_closed() -> None:
    first, second = run_child(
        """
        import matplotlib
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        plt.figure(figsize=(2, 1), dpi=50)
        matplotlib.get_backend()
        """,
        "plt.get_fignums()",
    )
    assert first["value"] == "'agg'"
    images = [o for o in first["outputs"] if "image/png" in o["data"]]
    assert [display.png_size(png_of(o)) for o in images] == [(640, 480), (100, 50)]
    assert images[0]["metadata"] == {"image/png": {"width": 640, "height": 480}}
    assert images[0]["data"]["text/plain"] == "<Figure size 640x480 with 1 Axes>"
    assert second == {"outputs": [], "value": "[]"}


@needs_matplotlib
def test_plt_show_captures_in_order_and_does_not_block() -> None:
    (run,) = run_child(
        """
        import matplotlib.pyplot as plt
        plt.plot([1, 2])
        plt.show()
        display("between")
        plt.bar([1], [2])
        plt.show(block=True)
        plt.scatter([1], [1])
        """
    )
    kinds = [sorted(o["data"]) for o in run["outputs"]]
    assert kinds == [
        ["image/png", "text/plain"],
        ["text/plain"],
        ["image/png", "text/plain"],
        ["image/png", "text/plain"],
    ]
    assert run["outputs"][1]["data"]["text/plain"] == "'between'"


@needs_matplotlib
def test_a_trailing_figure_is_one_execute_result_not_two_outputs() -> None:
    (run,) = run_child("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nfig")
    assert [o["output_type"] for o in run["outputs"]] == ["execute_result"]
    assert "image/png" in run["outputs"][0]["data"]


@needs_matplotlib
def test_the_users_backend_choice_is_kept() -> None:
    (from_env,) = run_child(
        "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.get_backend()",
        env={"MPLBACKEND": "svg"},
    )
    assert from_env["value"] == "'svg'"
    # svg is non-interactive too: the figure is still shown as an output.
    assert len(from_env["outputs"]) == 1
    (used,) = run_child(
        "import matplotlib\nmatplotlib.use('pdf')\nimport matplotlib.pyplot as plt\n"
        "plt.get_backend()"
    )
    assert used["value"] == "'pdf'"


@needs_matplotlib
def test_a_session_that_imported_pyplot_earlier_still_captures_later_runs() -> None:
    runs = run_child(
        "import matplotlib.pyplot as plt",
        "plt.plot([3, 1])\nplt.show()",
        "import matplotlib.pyplot as again\nagain.plot([1])",
    )
    assert [len(run["outputs"]) for run in runs] == [0, 1, 1]


def test_ipython_display_is_redirected_to_the_run() -> None:
    pytest.importorskip("IPython")
    (run,) = run_child(
        """
        from IPython.display import display as ipython_display, HTML
        ipython_display(HTML("<b>bold</b>"))
        HTML("<i>last</i>")
        """
    )
    assert [o["output_type"] for o in run["outputs"]] == ["display_data", "execute_result"]
    assert run["outputs"][0]["data"]["text/html"] == "<b>bold</b>"
    assert run["outputs"][1]["data"]["text/html"] == "<i>last</i>"


def texts(run: dict[str, Any]) -> list[str]:
    return [output["data"]["text/plain"] for output in run["outputs"]]


def test_a_display_handle_updates_its_output_in_place() -> None:
    (run,) = run_child(
        """
        handle = display("step 0", display_id=True)
        display("between")
        for step in range(1, 4):
            handle.update(f"step {step}")
        handle
        """
    )
    assert texts(run)[:2] == ["'step 3'", "'between'"]
    assert run["value"].startswith("<DisplayHandle display_id=")


def test_clear_output_keeps_only_what_follows_it() -> None:
    pytest.importorskip("IPython")
    clear = "from IPython.display import clear_output\n"
    runs = run_child(
        clear + "display('old')\nclear_output()\ndisplay('new')",
        clear + "display('kept')\nclear_output(wait=True)",
        clear + "display('old')\nclear_output(wait=True)\ndisplay('new')",
    )
    assert [texts(run) for run in runs] == [["'new'"], ["'kept'"], ["'new'"]]


def test_ipython_update_display_and_clear_output_reach_the_run() -> None:
    pytest.importorskip("IPython")
    (run,) = run_child(
        """
        from IPython.display import HTML, clear_output, display, update_display
        display(HTML("<p>gone</p>"))
        clear_output()
        display(HTML("<p>1 of 3</p>"), display_id="progress")
        for done in (2, 3):
            update_display(HTML(f"<p>{done} of 3</p>"), display_id="progress")
        """
    )
    assert [o["data"]["text/html"] for o in run["outputs"]] == ["<p>3 of 3</p>"]


def test_an_update_for_an_id_this_run_never_showed_is_a_new_output() -> None:
    runs = run_child(
        "handle = display('first', display_id='kept')",
        "handle.update('second')",
    )
    assert [texts(run) for run in runs] == [["'first'"], ["'second'"]]


def test_updates_keep_the_byte_count_of_what_is_shown() -> None:
    from codeexec_lsp.execution.display import OutputCollector

    collector = OutputCollector(max_output_bytes=1000, max_run_bytes=2000, max_outputs=10)
    handle = collector.display("x" * 900, display_id="big")
    assert handle is not None
    for _ in range(5):  # each update replaces: the run never reaches its limit
        collector.update("y" * 900, "big")
    collector.display("z" * 900)
    assert [o["data"]["text/plain"][:2] for o in collector.outputs] == ["'y", "'z"]
    assert collector.total_bytes == sum(len(o["data"]["text/plain"]) for o in collector.outputs)


def test_a_pandas_dataframe_gives_html() -> None:
    pytest.importorskip("pandas")
    (run,) = run_child("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    (output,) = run["outputs"]
    assert output["output_type"] == "execute_result"
    assert "<table" in output["data"]["text/html"]
    assert "a  b" in output["data"]["text/plain"]
    assert output["metadata"]["codeexec"] == {"type": "DataFrame", "shape": [2, 2]}


def test_a_pil_image_gives_a_png() -> None:
    pytest.importorskip("PIL")
    (run,) = run_child("from PIL import Image\nImage.new('RGB', (3, 2), 'red')")
    (output,) = run["outputs"]
    assert output["output_type"] == "execute_result"
    assert display.png_size(png_of(output)) == (3, 2)


# --- a figure's hover version -------------------------------------------------------------

# A real dense plot: 10,000 coloured points and a colour bar (~230,000 characters as a PNG).
DENSE_SCATTER = """
import random
import matplotlib.pyplot as plt
points = random.Random(0)
xs = [points.gauss(0, 1) for _ in range(10_000)]
ys = [points.gauss(0, 1) for _ in range(10_000)]
plt.scatter(xs, ys, s=2, c=[points.random() for _ in range(10_000)])
plt.colorbar()
"""


def scatter_figure() -> Any:
    """The figure of DENSE_SCATTER, built without pyplot."""
    import random

    from matplotlib.figure import Figure

    points = random.Random(0)
    xs = [points.gauss(0, 1) for _ in range(10_000)]
    ys = [points.gauss(0, 1) for _ in range(10_000)]
    figure = Figure()
    axes = figure.subplots()
    figure.colorbar(axes.scatter(xs, ys, s=2, c=[points.random() for _ in range(10_000)]))
    return figure


def full_png(figure: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


@needs_matplotlib
def test_a_dense_figure_gets_a_hover_version_within_the_budget_its_full_png_unchanged() -> None:
    figure = scatter_figure()
    data, metadata = display.figure_bundle(figure)
    assert len(data["image/png"]) > display.HOVER_IMAGE_MAX_CHARS
    assert base64.b64decode(data["image/png"]) == full_png(figure)
    assert metadata["image/png"] == {"width": 640, "height": 480}
    hover = metadata["codeexec"]["hover"]
    assert set(hover) == {"image/png", "width", "height"}
    assert len(hover["image/png"]) <= display.HOVER_IMAGE_MAX_CHARS
    small = base64.b64decode(hover["image/png"])
    assert display.png_size(small) == (hover["width"], hover["height"]) == (480, 360)


@needs_matplotlib
def test_a_simple_plot_gets_no_hover_version() -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    figure.subplots().plot([1, 2, 3])
    data, metadata = display.figure_bundle(figure)
    assert len(data["image/png"]) <= display.HOVER_IMAGE_MAX_CHARS
    assert metadata == {"image/png": {"width": 640, "height": 480}}
    assert base64.b64decode(data["image/png"]) == full_png(figure)


@needs_matplotlib
def test_a_figure_too_dense_for_even_the_smallest_hover_version_gets_none() -> None:
    import numpy  # Matplotlib's own dependency
    from matplotlib.figure import Figure

    # Noise in a tall figure: 240 px wide is still 240×2,400 pixels that do not compress.
    figure = Figure(figsize=(2, 20), dpi=120)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(numpy.random.default_rng(1).random((2000, 200, 3)))
    data, metadata = display.figure_bundle(figure)
    assert len(data["image/png"]) > display.HOVER_IMAGE_MAX_CHARS
    assert metadata == {"image/png": {"width": 240, "height": 2400}}


@needs_matplotlib
def test_without_pillow_the_hover_version_is_drawn_again_at_a_lower_dpi() -> None:
    figure = scatter_figure()
    (small,) = display._redrawn_pngs(figure, figure.dpi, 640, [320])
    assert display.png_size(small) == (320, 240)


@needs_matplotlib
def test_a_dense_figure_in_a_real_run_carries_its_hover_version() -> None:
    (run,) = run_child(DENSE_SCATTER)
    (output,) = run["outputs"]
    assert display.png_size(png_of(output)) == (640, 480)
    hover = output["metadata"]["codeexec"]["hover"]
    assert display.png_size(base64.b64decode(hover["image/png"])) == (480, 360)
    assert bounded_outputs(run["outputs"]) == run["outputs"]


def hover_metadata(chars: int, **extra: Any) -> dict[str, Any]:
    hover = {"image/png": "A" * chars, "width": 480, "height": 360}
    return {"image/png": {"width": 640, "height": 480}, "codeexec": {"hover": hover, **extra}}


def test_a_hover_version_counts_towards_the_limits_and_is_dropped_before_the_image() -> None:
    collector = OutputCollector(max_output_bytes=1500, max_run_bytes=3000)
    collector.add("display_data", {"image/png": "B" * 1000}, hover_metadata(400))
    collector.add("display_data", {"image/png": "B" * 1000}, hover_metadata(600))  # > 1500
    collector.add("display_data", {"image/png": "B" * 500}, hover_metadata(200))  # > 3000
    first, second, third = collector.take()
    assert first["metadata"] == hover_metadata(400)
    assert second["data"] == {"image/png": "B" * 1000}
    assert second["metadata"] == {"image/png": {"width": 640, "height": 480}}
    assert third["data"] == {"image/png": "B" * 500} and "codeexec" not in third["metadata"]
    # 1,400 + 1,100 characters, hover versions counted: 600 more pass the run's 3,000.
    collector = OutputCollector(max_output_bytes=1500, max_run_bytes=3000)
    collector.add("display_data", {"image/png": "B" * 1000}, hover_metadata(400))
    collector.add("display_data", {"image/png": "B" * 1000}, hover_metadata(100, type="x"))
    collector.add("display_data", {"text/plain": "C" * 600})
    *_, last = collector.take()
    assert "run's outputs would pass" in last["data"]["text/plain"]


def test_bounded_outputs_keeps_a_well_formed_hover_version_only() -> None:
    image = {"image/png": "B" * 1000}
    good = {"output_type": "display_data", "data": image, "metadata": hover_metadata(20_000)}
    kept, *_ = bounded_outputs([good])
    assert kept == good  # past the 10,000 characters other metadata may take, and kept
    too_big = {**good, "metadata": hover_metadata(display.HOVER_IMAGE_MAX_CHARS + 1)}
    odd = hover_metadata(100)
    odd["codeexec"]["hover"]["width"] = "480"
    junk = {"image/png": {"width": 640, "height": 480}, "codeexec": {"hover": "x", "type": "F"}}
    outputs = bounded_outputs([too_big, {**good, "metadata": odd}, {**good, "metadata": junk}])
    assert [o["metadata"] for o in outputs] == [
        {"image/png": {"width": 640, "height": 480}},
        {"image/png": {"width": 640, "height": 480}},
        {"image/png": {"width": 640, "height": 480}, "codeexec": {"type": "F"}},
    ]
