"""Small Pillow charts (there is no matplotlib here): the figure, axes, ticks and text primitives they are drawn with.

A figure is a plain `PIL.Image`; `panel_boxes` splits it into a grid, and each chart function (bar charts with error
bars, scatter plots, histograms, lines: `theworld.plot_charts`, re-exported here) draws one panel into a box through
an `Axes`: title, legend strip under the title (never over the data), framed plot area with light grid lines, "nice"
ticks (1/2/2.5/5 x 10^k; decades on a log axis), tick labels, axis labels (the y label rotated). Categorical x labels
that do not fit under their slot are drawn rotated. Text positions come from `textbbox`, so Pillow's bitmap font works
as well as the FreeType default font.

    image = new_figure(1200, 500)
    left, right = panel_boxes(image, rows=1, cols=2)
    bar_chart(image, left, ["overall", "a"], [BarSeries("m", [0.6, 0.5], lows=[0.5, 0.4], highs=[0.7, 0.6])])
    image.save("chart.png")

[Contract] every function only draws inside the box it is given, and the same data always gives the same pixels.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom

# matplotlib's "tab10": distinguishable, colour-blind-friendlier than pure RGB.
PALETTE: tuple[Color, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
GRID: Color = (232, 232, 232)
BLACK: Color = (0, 0, 0)
FONT_SIZE = 13
TITLE_SIZE = 15
_CHARTS = ("BarSeries", "bar_chart", "histogram", "line_plot", "scatter_plot")  # defined in theworld.plot_charts


def color(index: int) -> Color:
    return PALETTE[index % len(PALETTE)]


@functools.lru_cache(maxsize=8)
def font(size: int = FONT_SIZE) -> Any:
    """Pillow's bundled font at `size` (FreeType when available; the fixed bitmap font otherwise)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the bitmap font, one size only
        return ImageFont.load_default()


def text_size(draw: ImageDraw.ImageDraw, text: str, text_font: Any) -> tuple[int, int]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=text_font)
    return math.ceil(x1 - x0), math.ceil(y1 - y0)


def draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    text_font: Any = None,
    anchor: str = "lt",
    fill: Color | int = BLACK,
) -> None:
    """Text placed by a two-letter anchor: horizontal l/m/r, vertical t/m/b (of the ink box, not the baseline)."""
    text_font = text_font or font()
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=text_font)
    width, height = x1 - x0, y1 - y0
    dx = {"l": 0.0, "m": width / 2, "r": width}[anchor[0]]
    dy = {"t": 0.0, "m": height / 2, "b": height}[anchor[1]]
    draw.text((xy[0] - dx - x0, xy[1] - dy - y0), text, fill=fill, font=text_font)


def draw_rotated_text(
    image: Image.Image, xy: tuple[float, float], text: str, text_font: Any = None, anchor: str = "mm"
) -> None:
    """Text turned 90° counter-clockwise (reads bottom to top), placed by `anchor` of the rotated box."""
    text_font = text_font or font()
    probe = ImageDraw.Draw(image)
    width, height = text_size(probe, text, text_font)
    tile = Image.new("L", (width + 2, height + 2), 0)
    draw_text(ImageDraw.Draw(tile), (1, 1), text, text_font, "lt", fill=255)  # a mask: white = ink
    tile = tile.rotate(90, expand=True)
    dx = {"l": 0.0, "m": tile.width / 2, "r": tile.width}[anchor[0]]
    dy = {"t": 0.0, "m": tile.height / 2, "b": tile.height}[anchor[1]]
    image.paste(Image.new("RGB", tile.size, BLACK), (round(xy[0] - dx), round(xy[1] - dy)), tile)


def new_figure(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), "white")


def panel_boxes(image: Image.Image, rows: int, cols: int, pad: int = 10, top: int = 0) -> list[Box]:
    """Grid cells of `image` below a `top` strip (e.g. a figure title), row by row, each inset by `pad` pixels."""
    cell_w, cell_h = image.width / cols, (image.height - top) / rows
    return [
        (
            round(c * cell_w) + pad,
            top + round(r * cell_h) + pad,
            round((c + 1) * cell_w) - pad,
            top + round((r + 1) * cell_h) - pad,
        )
        for r in range(rows)
        for c in range(cols)
    ]


# ---- ticks ----
def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values (1, 2, 2.5 or 5 x 10^k apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9)
    ticks = []
    index = first
    while index * step <= high + step * 1e-9:
        ticks.append(round(index * step, 12))
        index += 1
    return ticks


def format_tick(value: float, ticks: Sequence[float]) -> str:
    """The fewest decimals (≤ 6) that write every tick of `ticks` exactly; `g` format for very large/small values."""
    scale = max((abs(t) for t in ticks), default=abs(value))
    if scale >= 1e5 or 0 < scale < 1e-3:
        return f"{value:.2g}"
    step = min((abs(b - a) for a, b in itertools.pairwise(ticks)), default=scale) or 1.0
    decimals = next(d for d in range(7) if all(abs(round(t, d) - t) < step * 1e-6 for t in (*ticks, value)) or d == 6)
    return f"{value:.{decimals}f}"


def padded_range(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    """[min, max] of the finite values, widened by `pad` of the span (or ±0.5 for a single value)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high - low < 1e-12:
        return low - 0.5, high + 0.5
    return low - pad * (high - low), high + pad * (high - low)


# ---- axes ----
@dataclass
class Axes:
    """One panel: a framed plot area inside `box` mapping data (x, y) to pixels; draw with the methods below."""

    image: Image.Image
    box: Box
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    legend: Sequence[tuple[str, Color]] = ()
    xlog: bool = False
    bottom_extra: int = 0  # room for tall (rotated) category labels
    draw: ImageDraw.ImageDraw = field(init=False)
    area: Box = field(init=False)

    def __post_init__(self) -> None:
        self.draw = ImageDraw.Draw(self.image)
        left, top, right, bottom = self.box
        top += text_size(self.draw, self.title or "Ag", font(TITLE_SIZE))[1] + 8 if self.title else 4
        legend_rows = self._legend_layout(right - left - 70)
        top += len(legend_rows) * 18 + (6 if legend_rows else 0)
        self.area = (left + 70, top + 4, right - 12, bottom - 40 - self.bottom_extra)
        if self.xlog:
            self.x_range = (math.log10(self.x_range[0]), math.log10(self.x_range[1]))

    def x_px(self, x: float) -> float:
        """Pixel column of data x (x > 0 on a log axis)."""
        (x0, x1), (left, _, right, _) = self.x_range, self.area
        value = math.log10(x) if self.xlog else x
        return left + (value - x0) / ((x1 - x0) or 1.0) * (right - left)

    def y_px(self, y: float) -> float:
        (y0, y1), (_, top, _, bottom) = self.y_range, self.area
        return bottom - (y - y0) / ((y1 - y0) or 1.0) * (bottom - top)

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        return self.x_px(x), self.y_px(y)

    def clamp_y(self, y: float) -> float:
        return min(max(y, self.y_range[0]), self.y_range[1])

    # frame, ticks, labels
    def frame(self, x_ticks: bool = True, category_labels: Sequence[str] = ()) -> None:
        left, top, right, bottom = self.area
        small = font()
        y_ticks = [t for t in nice_ticks(*self.y_range) if self.y_range[0] <= t <= self.y_range[1]]
        for tick in y_ticks:
            y = self.y_px(tick)
            self.draw.line((left, y, right, y), fill=GRID)
            self.draw.line((left - 5, y, left, y), fill=BLACK)
            draw_text(self.draw, (left - 8, y), format_tick(tick, y_ticks), small, "rm")
        if x_ticks and not category_labels:
            self._x_ticks()
        if category_labels:
            self._category_labels(category_labels)
        self.draw.rectangle(self.area, outline=BLACK)
        if self.title:
            draw_text(self.draw, ((self.box[0] + self.box[2]) / 2, self.box[1]), self.title, font(TITLE_SIZE), "mt")
        self._draw_legend()
        if self.xlabel:
            draw_text(self.draw, ((left + right) / 2, self.box[3]), self.xlabel, small, "mb")
        if self.ylabel:
            draw_rotated_text(self.image, (self.box[0], (top + bottom) / 2), self.ylabel, small, "lm")

    def _x_ticks(self) -> None:
        bottom = self.area[3]
        small = font()
        if self.xlog:
            ticks = [float(d) for d in range(math.ceil(self.x_range[0]), math.floor(self.x_range[1]) + 1)]
            labels = [f"1e{int(d)}" for d in ticks]
        else:
            ticks = [t for t in nice_ticks(*self.x_range) if self.x_range[0] <= t <= self.x_range[1]]
            labels = [format_tick(t, ticks) for t in ticks]
        for tick, label in zip(ticks, labels, strict=True):
            x = self.x_px(10.0**tick if self.xlog else tick)
            self.draw.line((x, self.area[1], x, bottom), fill=GRID)
            self.draw.line((x, bottom, x, bottom + 5), fill=BLACK)
            draw_text(self.draw, (x, bottom + 8), label, small, "mt")

    def _category_labels(self, labels: Sequence[str]) -> None:
        _, _, _, bottom = self.area
        slot = (self.area[2] - self.area[0]) / max(len(labels), 1)
        small = font()
        rotate = max(text_size(self.draw, label, small)[0] for label in labels) > slot - 4
        for index, label in enumerate(labels):
            x = self.area[0] + (index + 0.5) * slot
            self.draw.line((x, bottom, x, bottom + 4), fill=BLACK)
            if rotate:
                draw_rotated_text(self.image, (x, bottom + 7), label, small, "mt")
            else:
                draw_text(self.draw, (x, bottom + 8), label, small, "mt")

    def _legend_layout(self, width: int) -> list[list[tuple[str, Color]]]:
        rows: list[list[tuple[str, Color]]] = []
        used = width + 1
        for label, swatch in self.legend:
            needed = 18 + text_size(self.draw, label, font())[0] + 16
            if used + needed > width:
                rows.append([])
                used = 0
            rows[-1].append((label, swatch))
            used += needed
        return rows

    def _draw_legend(self) -> None:
        title_height = text_size(self.draw, self.title or "Ag", font(TITLE_SIZE))[1] + 8 if self.title else 4
        y = self.box[1] + title_height
        for row in self._legend_layout(self.box[2] - self.box[0] - 70):
            x = self.area[0]
            for label, swatch in row:
                self.draw.rectangle((x, y + 3, x + 12, y + 13), fill=swatch, outline=BLACK)
                draw_text(self.draw, (x + 18, y + 8), label, font(), "lm")
                x += 18 + text_size(self.draw, label, font())[0] + 16
            y += 18

    # marks
    def line(self, xs: Sequence[float], ys: Sequence[float], fill: Color, width: int = 2) -> None:
        points = [self.to_px(x, y) for x, y in zip(xs, ys, strict=True)]
        if len(points) > 1:
            self.draw.line(points, fill=fill, width=width)
        elif points:
            self.dot(points[0], fill, 2)

    def dot(self, xy: tuple[float, float], fill: Color, radius: float) -> None:
        x, y = xy
        self.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)

    def scatter(self, xs: Sequence[float], ys: Sequence[float], fill: Color, radius: float = 2.5) -> None:
        for x, y in zip(xs, ys, strict=True):
            if math.isfinite(x) and math.isfinite(y):
                self.dot(self.to_px(x, y), fill, radius)

    def vline(self, x: float, fill: Color, label: str = "", dashed: bool = True) -> None:
        px = self.x_px(x)
        top, bottom = self.area[1], self.area[3]
        step = 10 if dashed else bottom - top
        for y in range(top, bottom, step):
            self.draw.line((px, y, px, min(y + (5 if dashed else step), bottom)), fill=fill, width=2)
        if label:  # right of the line, or left of it when it would leave the plot area
            fits = px + 4 + text_size(self.draw, label, font())[0] <= self.area[2]
            draw_text(
                self.draw, (px + 4 if fits else px - 4, top + 4), label, font(), "lt" if fits else "rt", fill=fill
            )

    def error_bar(self, x_px: float, low: float, high: float, half_width: float = 4) -> None:
        if not (math.isfinite(low) and math.isfinite(high)):
            return
        y_low, y_high = self.y_px(self.clamp_y(low)), self.y_px(self.clamp_y(high))
        self.draw.line((x_px, y_low, x_px, y_high), fill=BLACK, width=1)
        for y in (y_low, y_high):
            self.draw.line((x_px - half_width, y, x_px + half_width, y), fill=BLACK, width=1)


# ---- the charts, re-exported (imported on first use: plot_charts itself imports this module) ----
if TYPE_CHECKING:
    from theworld.plot_charts import BarSeries, bar_chart, histogram, line_plot, scatter_plot


def __getattr__(name: str) -> Any:
    if name in _CHARTS:
        from theworld import plot_charts

        return getattr(plot_charts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLACK",
    "FONT_SIZE",
    "GRID",
    "PALETTE",
    "TITLE_SIZE",
    "Axes",
    "BarSeries",
    "Box",
    "Color",
    "bar_chart",
    "color",
    "draw_rotated_text",
    "draw_text",
    "font",
    "format_tick",
    "histogram",
    "line_plot",
    "new_figure",
    "nice_ticks",
    "padded_range",
    "panel_boxes",
    "scatter_plot",
    "text_size",
]
