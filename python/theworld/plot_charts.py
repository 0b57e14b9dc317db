"""The charts of `theworld.plots`: grouped bar charts with error bars, scatter plots, histograms and line plots.

Each function draws one panel into the box it is given (see `theworld.plots` for figures, axes and text) and returns
its `Axes`:

    image = new_figure(1200, 500)
    left, right = panel_boxes(image, rows=1, cols=2)
    bar_chart(image, left, ["overall", "a"], [BarSeries("m", [0.6, 0.5], lows=[0.5, 0.4], highs=[0.7, 0.6])])
    image.save("chart.png")

[Contract] every function only draws inside the box it is given, and the same data always gives the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from theworld.plots import BLACK, Axes, Box, Color, color, font, padded_range, text_size


@dataclass
class BarSeries:
    """One bar per category; `lows`/`highs` (optional) are the error-bar ends in data units (NaN = no bar)."""

    name: str
    values: Sequence[float]
    lows: Sequence[float] | None = None
    highs: Sequence[float] | None = None
    color: Color | None = None  # None: the palette colour of the series' position


def bar_chart(
    image: Image.Image,
    box: Box,
    categories: Sequence[str],
    series: Sequence[BarSeries],
    title: str = "",
    ylabel: str = "",
    y_range: tuple[float, float] | None = None,
) -> Axes:
    """Grouped bars: one group per category, one coloured bar per series, black error bars; NaN values are skipped."""
    probe = ImageDraw.Draw(image)
    widest = max((text_size(probe, c, font())[0] for c in categories), default=0)
    slot_width = (box[2] - box[0] - 82) / max(len(categories), 1)
    extra = max(0, widest - 18) if widest > slot_width - 4 else 0
    if y_range is None:
        ends = [v for s in series for v in [*s.values, *(s.lows or []), *(s.highs or [])]]
        y_range = (min(0.0, *padded_range(ends)), padded_range(ends)[1])
    fills = [s.color or color(i) for i, s in enumerate(series)]
    legend = [(s.name, fill) for s, fill in zip(series, fills, strict=True)]
    axes = Axes(image, box, (0.0, float(len(categories))), y_range, title, "", ylabel, legend, bottom_extra=extra)
    axes.frame(x_ticks=False, category_labels=categories)
    slot = (axes.area[2] - axes.area[0]) / max(len(categories), 1)
    bar = slot * 0.8 / max(len(series), 1)
    for c in range(len(categories)):
        for s, entry in enumerate(series):
            value = entry.values[c]
            if not math.isfinite(value):
                continue
            x0 = axes.area[0] + c * slot + slot * 0.1 + s * bar
            y_zero, y_value = axes.y_px(axes.clamp_y(0.0)), axes.y_px(axes.clamp_y(value))
            axes.draw.rectangle((x0, min(y_zero, y_value), x0 + bar - 1, max(y_zero, y_value)), fill=fills[s])
            if entry.lows is not None and entry.highs is not None:
                axes.error_bar(x0 + bar / 2, entry.lows[c], entry.highs[c], half_width=max(2, min(5, bar / 4)))
    return axes


def scatter_plot(
    image: Image.Image,
    box: Box,
    groups: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    radius: float = 2.5,
) -> Axes:
    """(name, xs, ys) groups as coloured dots, in the given order (later groups are drawn on top)."""
    xs = [x for _, gx, _ in groups for x in gx]
    ys = [y for _, _, gy in groups for y in gy]
    legend = [(name, color(i)) for i, (name, _, _) in enumerate(groups)]
    axes = Axes(image, box, padded_range(xs), padded_range(ys), title, xlabel, ylabel, legend)
    axes.frame()
    for index, (_, gx, gy) in enumerate(groups):
        axes.scatter(gx, gy, color(index), radius)
    return axes


def histogram(
    image: Image.Image,
    box: Box,
    series: Sequence[tuple[str, Sequence[float]]],
    bins: int = 40,
    value_range: tuple[float, float] | None = None,
    title: str = "",
    xlabel: str = "",
    markers: Sequence[tuple[str, float]] = (),
) -> Axes:
    """Overlaid step histograms (fraction of each series per bin, so series of any size compare) plus optional
    dashed vertical markers (name, x) in the colour of the series with the same name."""
    values = [v for _, vs in series for v in vs if math.isfinite(v)]
    low, high = value_range or padded_range(values, 0.02)
    width = (high - low) / bins
    fractions: list[list[float]] = []
    for _, vs in series:
        counts = [0] * bins
        finite = [v for v in vs if math.isfinite(v)]
        for v in finite:
            if low <= v <= high:
                counts[min(int((v - low) / width), bins - 1)] += 1
        fractions.append([c / max(len(finite), 1) for c in counts])
    top = max((f for fs in fractions for f in fs), default=1.0) or 1.0
    legend = [(name, color(i)) for i, (name, _) in enumerate(series)]
    axes = Axes(image, box, (low, high), (0.0, top * 1.08), title, xlabel, "fraction of pairs", legend)
    axes.frame()
    for index, fs in enumerate(fractions):
        xs = [low + i * width for i in range(bins + 1)]
        steps_x: list[float] = []
        steps_y: list[float] = []
        for i, f in enumerate(fs):
            steps_x += [xs[i], xs[i + 1]]
            steps_y += [f, f]
        axes.line([low, *steps_x, high], [0.0, *steps_y, 0.0], color(index), width=2)
    names = [name for name, _ in series]
    for name, x in markers:
        if math.isfinite(x) and low <= x <= high:
            axes.vline(x, color(names.index(name)) if name in names else BLACK)
    return axes


def line_plot(
    image: Image.Image,
    box: Box,
    xs: Sequence[float],
    ys: Sequence[float],
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    xlog: bool = False,
    marker: tuple[str, float] | None = None,
    name: str = "",
) -> Axes:
    """One line (log x axis if `xlog`), with an optional dashed, labelled vertical marker (label, x)."""
    x_range = (min(xs), max(xs))
    if xlog and x_range[1] / x_range[0] < 1 + 1e-12:
        x_range = (x_range[0] / math.sqrt(10), x_range[1] * math.sqrt(10))
    elif not xlog:
        x_range = padded_range(xs, 0.0)
    legend = [(name, color(0))] if name else []
    axes = Axes(image, box, x_range, padded_range(ys), title, xlabel, ylabel, legend, xlog=xlog)
    axes.frame()
    axes.line(xs, ys, color(0))
    if marker is not None:
        axes.vline(marker[1], color(3), label=marker[0])
    return axes
