"""What a figure's hover version costs: display.figure_bundle as shipped next to the same
capture with the hover version off (its threshold past any PNG), and the hover version
alone, medians of `--repeats`, per figure, side by side in one run.

    python benchmarks/hover_images.py [--repeats 21]

Needs matplotlib and numpy (the `test` extra has both).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: a Figure draws on agg by itself

from codeexec_lsp.execution import display

RANDOM = np.random.default_rng(0)


def small() -> Figure:
    figure = Figure()
    figure.subplots().plot([1, 2, 3])
    return figure


def eight_lines() -> Figure:
    figure = Figure()
    axes = figure.subplots()
    x = np.linspace(0, 10, 500)
    for k in range(8):
        axes.plot(x, np.sin(x + k), label=str(k))
    axes.legend()
    return figure


def scatter() -> Figure:
    figure = Figure()
    axes = figure.subplots()
    points = axes.scatter(
        RANDOM.normal(size=10_000), RANDOM.normal(size=10_000), s=2, c=RANDOM.random(10_000)
    )
    figure.colorbar(points)
    return figure


def image() -> Figure:
    figure = Figure()
    figure.colorbar(figure.subplots().imshow(RANDOM.random((200, 200))))
    return figure


FIGURES: dict[str, Callable[[], Figure]] = {
    "small plot": small,
    "8 lines + legend": eight_lines,
    "10,000-point scatter": scatter,
    "200×200 imshow": image,
}


def capture_ms(figure: Figure, hover: bool, repeats: int) -> tuple[float, dict[str, Any], Any]:
    threshold = display.HOVER_IMAGE_MAX_CHARS
    display.HOVER_IMAGE_MAX_CHARS = threshold if hover else 10**12
    samples = []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            data, metadata = display.figure_bundle(figure)
            samples.append(time.perf_counter() - started)
    finally:
        display.HOVER_IMAGE_MAX_CHARS = threshold
    return statistics.median(samples) * 1000, data, metadata


def main(repeats: int) -> None:
    print("| figure | full PNG, base64 chars | capture, hover version off | on | hover version |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, make in FIGURES.items():
        figure = make()
        capture_ms(figure, True, 1)  # warm-up: fonts, Pillow
        off, data, _ = capture_ms(figure, False, repeats)
        on, _, metadata = capture_ms(figure, True, repeats)
        hover = metadata.get("codeexec", {}).get("hover")
        shown = "none"
        if hover:
            png = base64.b64decode(data["image/png"])
            alone = []
            for _ in range(repeats):
                started = time.perf_counter()
                display.hover_version(figure, png, figure.dpi)
                alone.append(time.perf_counter() - started)
            shown = (
                f"{hover['width']}×{hover['height']}, {len(hover['image/png']):,} chars, "
                f"{statistics.median(alone) * 1000:.1f} ms alone"
            )
        print(
            f"| {name} | {len(data['image/png']):,} | {off:.1f} ms | {on:.1f} ms "
            f"(+{on - off:.1f}) | {shown} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    main(parser.parse_args().repeats)
