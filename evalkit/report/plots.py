"""The report's plots as small, deterministic, hand-written inline SVG (no plotting library).

matplotlib took a quarter of a cached 500-sample re-run (its import, figure set-up and SVG writer) for four
charts of at most a few hundred marks; these are written directly instead. Each chart is one ``<svg>``
element sized by its ``viewBox`` (CSS caps its width), with a ``<title>``/``<desc>`` for screen readers,
a ``<title>`` on every plotted mark giving its values (a tooltip), axes with ticks and labels, a legend
where one is needed, and ids prefixed per plot so several can share a page.

All text is XML-escaped here (data text such as label names is untrusted); nothing is read as markup.
The SVG user unit is the point (1/72 inch) the old figures were laid out in, so sizes and fonts carry over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from evalkit.routing.analysis import CalibrationReport, RoutingAnalysis
from evalkit.scoring.metrics import ConfusionMatrix

# A small, neutral palette (colour-blind safe for the pairs that matter).
INK = "#1d2433"
MUTED = "#5b6475"
GRID = "#e3e6ec"
BLUE = "#2f5fb3"
LIGHT_BLUE = "#9db7e6"
GREEN = "#17803d"
RED = "#b42318"
AMBER = "#b25e09"
GREY = "#8a93a3"
VERDICT_COLOURS = {"GO": GREEN, "NO-GO": RED, "INCONCLUSIVE": AMBER, "INSUFFICIENT-DATA": GREY}

_PT = 72  # user units per inch: the figure sizes below are in inches, as they were
_FONT = 9.0
_SMALL = 7.5
#: matplotlib's "Blues" colour map at its nine anchor colours (the confusion matrix's shading).
_BLUES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")


def _plain(text: Any, limit: int = 40) -> str:
    """Data text as a bounded label (escaped where it is written)."""
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def _x(text: Any) -> str:
    """XML-escaped text or attribute value."""
    return escape(str(text), quote=True)


def _f(value: float) -> str:
    """A coordinate: two decimals, no trailing zeros (small, byte-stable output)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text_width(text: str, size: float) -> float:
    """Rough rendered width of ``text`` in a sans-serif font (for margins, not for exact layout)."""
    return 0.56 * size * len(text)


def _blues(share: float) -> str:
    """The colour of a share in [0, 1] on the Blues scale (linear between anchors)."""
    share = min(1.0, max(0.0, share))
    position = share * (len(_BLUES) - 1)
    low = min(int(position), len(_BLUES) - 2)
    fraction = position - low
    a, b = _BLUES[low], _BLUES[low + 1]
    channels = [round(int(a[i:i + 2], 16) + (int(b[i:i + 2], 16) - int(a[i:i + 2], 16)) * fraction)
                for i in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in channels)


# -- scales and ticks ---------------------------------------------------------------------------------
def _nice_step(span: float, count: int = 5) -> float:
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power * 1.0000001:
            return factor * power
    return 10 * power


@dataclass
class _Scale:
    """Data interval ``[lo, hi]`` onto the pixel interval ``[start, end]`` (linear, or log10)."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def _t(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        lo, hi = self._t(self.lo), self._t(self.hi)
        return self.start + (self._t(value) - lo) / (hi - lo) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            ticks = []
            for power in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1):
                for factor in (1, 2, 5):
                    value = factor * 10.0 ** power
                    if self.lo <= value <= self.hi:
                        ticks.append(value)
            return ticks
        step = _nice_step(self.hi - self.lo, 7)
        first = math.ceil(self.lo / step - 1e-9)
        ticks = []
        index = first
        while index * step <= self.hi + 1e-9 * step:
            ticks.append(round(index * step, 12))
            index += 1
        return ticks

    def affine(self) -> tuple[float, float]:
        """``(a, b)`` with pixel = a + b · value (linear scales only)."""
        b = (self.end - self.start) / (self.hi - self.lo)
        return self.start - self.lo * b, b


def _domain(values: Iterable[float], margin: float, *, log: bool = False,
            include: Iterable[float] = ()) -> tuple[float, float]:
    """The data range padded by ``margin`` of its span on each side (as matplotlib's ``margins``)."""
    data = [v for v in [*values, *include] if math.isfinite(v) and (v > 0 or not log)]
    if not data:
        return (0.1, 10.0) if log else (0.0, 1.0)
    lo, hi = min(data), max(data)
    if log:
        lo_t, hi_t = math.log10(lo), math.log10(hi)
        pad = (hi_t - lo_t) * margin or 0.1
        return 10 ** (lo_t - pad), 10 ** (hi_t + pad)
    pad = (hi - lo) * margin
    if pad == 0:
        pad = abs(lo) * 0.05 or 0.05
    return lo - pad, hi + pad


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step > 0 and round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if text.strip("-0.") == "" else text  # never "-0"


def _usd_tick(value: float) -> str:
    return f"${value:,.2f}"


# -- the SVG document -----------------------------------------------------------------------------------
class _Svg:
    """Collects the elements of one chart and writes the ``<svg>`` element."""

    def __init__(self, prefix: str, width: float, height: float, title: str, description: str) -> None:
        self.prefix = prefix
        self.width = width * _PT
        self.height = height * _PT
        self.title = title
        self.description = description
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str, width: float = 1.0,
             dash: str | None = None, cls: str | None = None, cap: str | None = None) -> None:
        extra = (f' stroke-dasharray="{dash}"' if dash else "") + (f' class="{cls}"' if cls else "") + (
            f' stroke-linecap="{cap}"' if cap else "")
        self.add(f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{colour}" '
                 f'stroke-width="{_f(width)}"{extra}/>')

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float,
                 dash: str | None = None, cls: str | None = None) -> None:
        coords = " ".join(f"{_f(x)},{_f(y)}" for x, y in points)
        extra = (f' stroke-dasharray="{dash}"' if dash else "") + (f' class="{cls}"' if cls else "")
        self.add(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="{_f(width)}"'
                 f' stroke-linejoin="round"{extra}/>')

    def text(self, x: float, y: float, content: str, *, size: float = _FONT, colour: str = INK,
             anchor: str = "start", baseline: str = "auto", weight: str | None = None,
             rotate: float | None = None, cls: str | None = None) -> None:
        attrs = f'x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" fill="{colour}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if baseline != "auto":
            attrs += f' dominant-baseline="{baseline}"'
        if weight:
            attrs += f' font-weight="{weight}"'
        if rotate is not None:
            attrs += f' transform="rotate({_f(rotate)} {_f(x)} {_f(y)})"'
        if cls:
            attrs += f' class="{cls}"'
        self.add(f"<text {attrs}>{_x(content)}</text>")

    def marker(self, kind: str, x: float, y: float, size: float, fill: str, edge: str | None = None,
               edge_width: float = 0.0, title: str | None = None, cls: str = "point",
               data: dict[str, float] | None = None) -> None:
        """A marker of diameter ``size`` (matplotlib's ``markersize``, in points) centred on (x, y)."""
        r = size / 2
        stroke = f' stroke="{edge}" stroke-width="{_f(edge_width)}"' if edge and edge_width else ""
        attrs = f'class="{cls}" fill="{fill}"{stroke}'
        for key, value in (data or {}).items():
            attrs += f' data-{key}="{value!r}"'
        tip = f"<title>{_x(title)}</title>" if title else ""
        if kind == "circle":
            shape = f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" {attrs}>'
            self.add(f"{shape}{tip}</circle>")
            return
        if kind == "square":
            points = [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]
        elif kind == "diamond":
            points = [(x, y - r * 1.2), (x + r * 0.85, y), (x, y + r * 1.2), (x - r * 0.85, y)]
        else:  # star: five points, the inner radius 0.38 of the outer
            points = []
            for i in range(10):
                radius = r if i % 2 == 0 else r * 0.38
                angle = math.pi / 2 + i * math.pi / 5
                points.append((x + radius * math.cos(angle), y - radius * math.sin(angle)))
        coords = " ".join(f"{_f(px)},{_f(py)}" for px, py in points)
        self.add(f'<polygon points="{coords}" {attrs}>{tip}</polygon>')

    def render(self) -> str:
        p = self.prefix
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_f(self.width)} {_f(self.height)}" '
                f'role="img" aria-labelledby="{p}-title {p}-desc" style="max-width: '
                f'{round(self.width * 4 / 3)}px" font-family="sans-serif" font-size="{_f(_FONT)}">')
        meta = (f'<title id="{p}-title">{_x(self.title)}</title><desc id="{p}-desc">{_x(self.description)}'
                f'</desc><rect width="100%" height="100%" fill="white"/>')
        return "\n".join([head + meta, *self.parts, "</svg>"]) + "\n"


@dataclass
class _Axes:
    """A plot area: its pixel box and the two scales."""

    left: float
    top: float
    right: float
    bottom: float
    x: _Scale
    y: _Scale

    def clip(self, svg: _Svg, name: str) -> str:
        clip_id = f"{svg.prefix}-{name}"
        svg.add(f'<clipPath id="{clip_id}"><rect x="{_f(self.left)}" y="{_f(self.top)}" '
                f'width="{_f(self.right - self.left)}" height="{_f(self.bottom - self.top)}"/></clipPath>')
        return f'clip-path="url(#{clip_id})"'


def _axes_box(svg: _Svg, *, left: float, bottom: float, top: float = 8.0, right: float = 10.0
              ) -> tuple[float, float, float, float]:
    return left, top, svg.width - right, svg.height - bottom


def _draw_axes(svg: _Svg, ax: _Axes, *, xlabel: str, ylabel: str | None, x_format: Callable[[float], str],
               y_format: Callable[[float], str] | None, grid_x: bool = True, grid_y: bool = True,
               y_ticks: Sequence[tuple[float, str]] | None = None) -> None:
    """Grid, left and bottom spines, ticks and axis labels (matplotlib's look, top/right spines off)."""
    x_ticks = [(v, x_format(v)) for v in ax.x.ticks()]
    if y_ticks is None and y_format is not None:
        y_ticks = [(v, y_format(v)) for v in ax.y.ticks()]
    y_ticks = y_ticks or []
    svg.add('<g class="grid">')
    if grid_x:
        for value, _ in x_ticks:
            svg.line(ax.x(value), ax.top, ax.x(value), ax.bottom, GRID, 0.6)
    if grid_y and y_format is not None:
        for value, _ in y_ticks:
            svg.line(ax.left, ax.y(value), ax.right, ax.y(value), GRID, 0.6)
    svg.add("</g>")
    svg.add('<g class="axes">')
    svg.line(ax.left, ax.bottom, ax.right, ax.bottom, GREY, 0.8)
    svg.line(ax.left, ax.top, ax.left, ax.bottom, GREY, 0.8)
    for value, label in x_ticks:
        x = ax.x(value)
        svg.line(x, ax.bottom, x, ax.bottom + 3.5, GREY, 0.8)
        svg.text(x, ax.bottom + 12, label, colour=MUTED, anchor="middle", cls="xtick")
    for value, label in y_ticks:
        y = ax.y(value)
        if y_format is not None:
            svg.line(ax.left - 3.5, y, ax.left, y, GREY, 0.8)
        svg.text(ax.left - 5, y, label, colour=MUTED, anchor="end", baseline="central", cls="ytick")
    svg.text((ax.left + ax.right) / 2, svg.height - 4, xlabel, anchor="middle", cls="xlabel")
    if ylabel:
        svg.text(10, (ax.top + ax.bottom) / 2, ylabel, anchor="middle", baseline="central", rotate=-90,
                 cls="ylabel")
    svg.add("</g>")


@dataclass(frozen=True)
class _LegendItem:
    label: str
    kind: str  # "line", "dotted", "dashed", or a marker kind
    colour: str
    size: float = 5.0
    fill: str | None = None


def _legend(svg: _Svg, ax: _Axes, items: list[_LegendItem], where: str) -> None:
    if not items:
        return
    row = 11.0
    width = 26 + max(_text_width(item.label, 8) for item in items)
    height = row * len(items) + 4
    x0 = ax.right - width - 4 if where.endswith("right") else ax.left + 6
    y0 = ax.bottom - height - 2 if where.startswith("lower") else ax.top + 4
    svg.add('<g class="legend">')
    svg.add(f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(width)}" height="{_f(height)}" fill="white" '
            f'fill-opacity="0.8"/>')
    for index, item in enumerate(items):
        y = y0 + 2 + row * index + row / 2
        if item.kind in ("line", "dotted", "dashed"):
            dash = {"dotted": "1,2", "dashed": "4,2"}.get(item.kind)
            svg.line(x0 + 3, y, x0 + 19, y, item.colour, 1.5, dash=dash)
        else:
            svg.marker(item.kind, x0 + 11, y, min(item.size, 10), item.fill or item.colour, item.colour, 1.0,
                       cls="legend-marker")
        svg.text(x0 + 24, y, item.label, size=8, baseline="central")
    svg.add("</g>")


# -- confusion matrix -------------------------------------------------------------------------------
def confusion_matrix_svg(confusion: ConfusionMatrix | None) -> str | None:
    """Heatmap of the candidate's answers per true label: colour = share of the row, text = count."""
    if confusion is None or not confusion.matrix or not confusion.labels:
        return None
    labels = list(confusion.labels)
    columns = list(confusion.columns or labels)
    matrix = [list(map(int, row)) for row in confusion.matrix]
    truth = "gold" if confusion.truth == "gold" else "reference"
    row_names = [_plain(c, 18) for c in labels]
    column_names = [_plain(c, 18) for c in columns]

    width = min(9.0, 1.6 + 0.72 * len(columns))
    height = min(8.0, 1.3 + 0.42 * len(labels))
    svg = _Svg("plot-confusion", width, height, f"Confusion matrix: true label ({truth}) against the "
               "candidate's answer",
               "Each cell counts the samples with that true label (row) and answer (column); the shading "
               "is the cell's share of its row.")
    left = 22 + max(_text_width(n, _FONT) for n in row_names)
    bottom = 20 + 0.5 * max(_text_width(n, _FONT) for n in column_names) + 8
    x0, y0, x1, y1 = _axes_box(svg, left=left, bottom=bottom, top=4, right=6)
    cell_w = (x1 - x0) / len(columns)
    cell_h = (y1 - y0) / len(labels)
    for i, row in enumerate(matrix):
        total = sum(row)
        for j, count in enumerate(row):
            share = count / total if total > 0 else 0.0
            x, y = x0 + j * cell_w, y0 + i * cell_h
            tip = f"true {labels[i]}, answered {columns[j]}: {count} of {total}"
            svg.add(f'<rect class="cell" x="{_f(x)}" y="{_f(y)}" width="{_f(cell_w)}" height="{_f(cell_h)}" '
                    f'fill="{_blues(share)}" stroke="white" stroke-width="1.5" data-row="{i}" '
                    f'data-column="{j}" data-count="{count}"><title>{_x(tip)}</title></rect>')
            svg.text(x + cell_w / 2, y + cell_h / 2, str(count), size=8, anchor="middle", baseline="central",
                     colour="white" if share > 0.55 else INK, weight="bold" if i == j else None, cls="count")
    for j, name in enumerate(column_names):
        x = x0 + (j + 0.5) * cell_w
        svg.text(x, y1 + 8, name, colour=MUTED, anchor="end", baseline="hanging", rotate=-30, cls="xtick")
    for i, name in enumerate(row_names):
        svg.text(x0 - 4, y0 + (i + 0.5) * cell_h, name, colour=MUTED, anchor="end", baseline="central",
                 cls="ytick")
    svg.text((x0 + x1) / 2, svg.height - 4, "candidate's answer", anchor="middle", cls="xlabel")
    svg.text(10, (y0 + y1) / 2, f"true label ({truth})", anchor="middle", baseline="central", rotate=-90,
             cls="ylabel")
    return svg.render()


# -- routing: cost versus quality ---------------------------------------------------------------------
def cost_quality_svg(routing: RoutingAnalysis | None, *, quality_name: str = "accuracy"
                     ) -> tuple[str, dict[str, float]] | None:
    """The routing sweep as cost per 1,000 requests against routed quality, the chosen threshold marked.

    Returns the SVG and the affine map from data to SVG user units (``x = ax + bx * cost``,
    ``y = ay + by * quality_percent``) so the page's slider can move a marker along the curve.
    """
    if routing is None or not routing.available or not routing.sweep:
        return None
    sweep = sorted(routing.sweep, key=lambda row: row.t)
    chosen = routing.chosen
    default = routing.seed_default
    costs = routing.costs
    pareto = sorted(routing.pareto, key=lambda row: row.cost_per_1k)
    reference_quality = routing.always_reference_accuracy
    candidate_quality = routing.always_candidate_accuracy
    candidate_point = ((costs.always_candidate_per_1k, 100 * candidate_quality)
                       if candidate_quality is not None and costs is not None else None)

    xs = [row.cost_per_1k for row in sweep]
    ys = [100 * row.routed_accuracy for row in sweep]
    extra = [p for p in (candidate_point,
                         (default.cost_per_1k, 100 * default.routed_accuracy) if default else None,
                         (chosen.cost_per_1k, 100 * chosen.routed_accuracy) if chosen else None) if p]
    y_include = [100 * reference_quality] if reference_quality is not None else []
    svg = _Svg("plot-cost-quality", 6.2, 3.6,
               f"Routing: cost per 1,000 requests against routed {quality_name}",
               f"The threshold sweep ({len(sweep)} thresholds) with its Pareto front, always the candidate, "
               "the default and the chosen threshold; the dotted line is always the reference.")
    x_domain = _domain([*xs, *(p[0] for p in extra)], 0.04)
    y_domain = _domain([*ys, *(p[1] for p in extra)], 0.12, include=y_include)
    y_label_w = max(_text_width(_tick_label(v, 1), _FONT) for v in y_domain) + 8
    x0, y0, x1, y1 = _axes_box(svg, left=24 + y_label_w, bottom=30)
    ax = _Axes(x0, y0, x1, y1, _Scale(*x_domain, x0, x1), _Scale(*y_domain, y1, y0))
    step = _nice_step(y_domain[1] - y_domain[0], 7)
    _draw_axes(svg, ax, xlabel="cost per 1,000 requests (USD, real-time rates)",
               ylabel=f"routed {quality_name} (%)", x_format=_usd_tick,
               y_format=lambda v: _tick_label(v, step))
    clip = ax.clip(svg, "area")
    svg.add(f'<g {clip}>')
    if reference_quality is not None:
        y = ax.y(100 * reference_quality)
        svg.line(ax.left, y, ax.right, y, GREY, 1, dash="1,2", cls="reference-line")
        svg.text(ax.left + 3, y - 3, "always reference", size=_SMALL, colour=MUTED)
    svg.polyline([(ax.x(x), ax.y(y)) for x, y in zip(xs, ys, strict=True)], LIGHT_BLUE, 1.5, cls="sweep-line")
    for row, x, y in zip(sweep, xs, ys, strict=True):
        svg.marker("circle", ax.x(x), ax.y(y), 2.5, LIGHT_BLUE, cls="sweep",
                   title=f"t = {row.t:.2f}: {_usd_tick(x)} per 1,000, {y:.1f}%",
                   data={"t": row.t, "x": x, "y": y})
    for point in pareto:
        x, y = point.cost_per_1k, 100 * point.routed_accuracy
        svg.marker("circle", ax.x(x), ax.y(y), 4.5, BLUE, cls="pareto",
                   title=f"Pareto: t = {point.t:.2f}, {_usd_tick(x)}, {y:.1f}%", data={"x": x, "y": y})
    if candidate_point is not None:
        svg.marker("square", ax.x(candidate_point[0]), ax.y(candidate_point[1]), 5, GREY,
                   cls="always-candidate",
                   title=f"always candidate: {_usd_tick(candidate_point[0])}, {candidate_point[1]:.1f}%",
                   data={"x": candidate_point[0], "y": candidate_point[1]})
    if default:
        x, y = default.cost_per_1k, 100 * default.routed_accuracy
        svg.marker("diamond", ax.x(x), ax.y(y), 5.5, AMBER, cls="default",
                   title=f"default t = {default.t:.2f}: {_usd_tick(x)}, {y:.1f}%", data={"x": x, "y": y})
    if chosen:
        x, y = chosen.cost_per_1k, 100 * chosen.routed_accuracy
        svg.marker("star", ax.x(x), ax.y(y), 13, GREEN, "white", 0.8, cls="chosen",
                   title=f"chosen t = {chosen.t:.2f}: {_usd_tick(x)}, {y:.1f}%", data={"x": x, "y": y})
    svg.add("</g>")
    items = [_LegendItem("threshold sweep", "line", LIGHT_BLUE)]
    if pareto:
        items.append(_LegendItem("Pareto front", "circle", BLUE, 4.5))
    if candidate_point is not None:
        items.append(_LegendItem("always candidate", "square", GREY, 5))
    if default:
        items.append(_LegendItem(f"default t = {default.t:.2f}", "diamond", AMBER, 5.5))
    if chosen:
        items.append(_LegendItem(f"chosen t = {chosen.t:.2f}", "star", GREEN, 10))
    _legend(svg, ax, items, "lower right")
    ax_x, bx = ax.x.affine()
    ay, by = ax.y.affine()
    mapping = {"ax": ax_x, "bx": bx, "ay": ay, "by": by}
    if not all(math.isfinite(v) for v in mapping.values()):
        mapping.clear()
    return svg.render(), mapping


# -- candidate configurations ------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigurationPoint:
    name: str
    cost_per_1k: float
    quality: float  # 0..1
    interval: tuple[float, float] | None
    go: bool  # family-wise GO
    verdict: str  # alone
    recommended: bool
    routed: bool = False  # a cheap-first variant (hollow marker)


def _point_label(svg: _Svg, x: float, y: float, text: str, *, colour: str, bold: bool = False) -> None:
    """A label right of its point, or left of it where it would run past the chart's right edge."""
    right = x + 6 + _text_width(text, _SMALL) <= svg.width - 2
    svg.text(x + 6 if right else x - 6, y, text, size=_SMALL, colour=colour,
             anchor="start" if right else "end", weight="bold" if bold else None, cls="point-label")


def configurations_svg(points: list[ConfigurationPoint], *, reference_quality: float | None,
                       reference_cost: float | None, quality_name: str = "accuracy") -> str | None:
    """Every configuration (and routed variant) on one plane: cost per 1,000 requests against quality."""
    if not points:
        return None
    costs = [p.cost_per_1k for p in points] + ([reference_cost] if reference_cost else [])
    log = min(costs) > 0 and max(costs) / min(costs) > 8
    ys: list[float] = []
    for point in points:
        ys.append(100 * point.quality)
        if point.interval is not None:
            ys += [100 * point.interval[0], 100 * point.interval[1]]
    if reference_quality is not None:
        ys.append(100 * reference_quality)
    svg = _Svg("plot-configurations", 6.4, 3.8,
               f"Configurations: cost per 1,000 requests against {quality_name}",
               f"{len(points)} configurations with their 95% intervals; filled green is GO after the "
               "family-wise correction, the star the recommendation, hollow diamonds cheap-first routing; "
               "the dotted line and grey square are always the reference.")
    x_domain = _domain(costs, 0.12, log=log)
    y_domain = _domain(ys, 0.15)
    y_label_w = max(_text_width(_tick_label(v, 1), _FONT) for v in y_domain) + 8
    x0, y0, x1, y1 = _axes_box(svg, left=24 + y_label_w, bottom=30)
    ax = _Axes(x0, y0, x1, y1, _Scale(*x_domain, x0, x1, log=log), _Scale(*y_domain, y1, y0))
    step = _nice_step(y_domain[1] - y_domain[0], 7)
    _draw_axes(svg, ax, xlabel="cost per 1,000 requests in production (USD)",
               ylabel=f"{quality_name} (%), 95% interval", x_format=_usd_tick,
               y_format=lambda v: _tick_label(v, step))
    if reference_quality is not None:
        y = ax.y(100 * reference_quality)
        svg.line(ax.left, y, ax.right, y, GREY, 1, dash="1,2", cls="reference-line")
        if reference_cost is not None:
            x = ax.x(reference_cost)
            svg.marker("square", x, y, 6, GREY, cls="reference",
                       title=f"always the reference: {_usd_tick(reference_cost)}, "
                             f"{100 * reference_quality:.1f}%",
                       data={"x": reference_cost, "y": 100 * reference_quality})
            _point_label(svg, x, y + 10, "always the reference", colour=MUTED)
    placed: list[tuple[float, float]] = []
    for point in points:
        colour = GREEN if point.go else VERDICT_COLOURS.get(point.verdict, GREY)
        x, y = ax.x(point.cost_per_1k), 100 * point.quality
        tip = f"{point.name}: {_usd_tick(point.cost_per_1k)} per 1,000, {y:.1f}%"
        if point.interval is not None:
            low, high = ax.y(100 * point.interval[0]), ax.y(100 * point.interval[1])
            svg.add('<g class="interval">')
            svg.line(x, low, x, high, colour, 1)
            svg.line(x - 2.5, low, x + 2.5, low, colour, 1)
            svg.line(x - 2.5, high, x + 2.5, high, colour, 1)
            svg.add("</g>")
            tip += f" [{100 * point.interval[0]:.1f}, {100 * point.interval[1]:.1f}]"
        kind = "star" if point.recommended else ("diamond" if point.routed else "circle")
        svg.marker(kind, x, ax.y(y), 14 if point.recommended else 6, "white" if point.routed else colour,
                   colour, 1.2, title=tip, cls="configuration", data={"x": point.cost_per_1k, "y": y})
        # Labels of nearby points go below one another instead of on top of each other.
        near = sum(1 for cost, quality in placed
                   if abs(math.log(max(cost, 1e-9) / max(point.cost_per_1k, 1e-9))) < 0.15
                   and abs(quality - y) < 4)
        placed.append((point.cost_per_1k, y))
        _point_label(svg, x, ax.y(y) - 4 + 10 * near, _plain(point.name, 28),
                     colour=INK if point.recommended else MUTED, bold=point.recommended)
    return svg.render()


# -- calibration -------------------------------------------------------------------------------------
def reliability_svg(calibration: CalibrationReport | None) -> str | None:
    """Reliability diagram: stated confidence against observed accuracy per bin, with the bin counts."""
    if calibration is None:
        return None
    predicted = calibration.reliability.prob_pred
    observed = calibration.reliability.prob_true
    counts = calibration.reliability.counts or [1] * len(predicted)
    if not predicted or len(predicted) != len(observed):
        return None
    svg = _Svg("plot-reliability", 4.4, 4.0,
               "Reliability diagram: stated confidence against observed accuracy",
               f"{len(predicted)} confidence bins; marker area is the number of samples in the bin, shown "
               "again as bars below; the dashed diagonal is perfect calibration.")
    left, right = 50.0, svg.width - 10
    top_axes = _Axes(left, 8, right, 8 + (svg.height - 8 - 34 - 12) * 0.75,
                     _Scale(0, 1.02, left, right), _Scale(0, 1.02, 0, 0))
    top_axes.y = _Scale(0, 1.02, top_axes.bottom, top_axes.top)
    biggest_count = max(max(counts), 1)
    bottom_top = top_axes.bottom + 12
    bottom_axes = _Axes(left, bottom_top, right, svg.height - 34, _Scale(0, 1.02, left, right),
                        _Scale(0, biggest_count * 1.05, svg.height - 34, bottom_top))

    def share(v: float) -> str:
        return _tick_label(v, 0.2)

    svg.add('<g class="panel calibration">')
    ticks = [(v, share(v)) for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    svg.add('<g class="grid">')
    for value, _ in ticks:
        svg.line(top_axes.x(value), top_axes.top, top_axes.x(value), top_axes.bottom, GRID, 0.6)
        svg.line(left, top_axes.y(value), right, top_axes.y(value), GRID, 0.6)
    svg.add("</g>")
    svg.line(left, top_axes.bottom, right, top_axes.bottom, GREY, 0.8)
    svg.line(left, top_axes.top, left, top_axes.bottom, GREY, 0.8)
    for value, label in ticks:
        svg.line(left - 3.5, top_axes.y(value), left, top_axes.y(value), GREY, 0.8)
        svg.text(left - 5, top_axes.y(value), label, colour=MUTED, anchor="end", baseline="central",
                 cls="ytick")
    svg.text(10, (top_axes.top + top_axes.bottom) / 2, "observed accuracy", anchor="middle",
             baseline="central", rotate=-90, cls="ylabel")
    svg.line(top_axes.x(0), top_axes.y(0), top_axes.x(1), top_axes.y(1), GREY, 1, dash="4,2", cls="diagonal")
    svg.polyline([(top_axes.x(p), top_axes.y(o)) for p, o in zip(predicted, observed, strict=True)], BLUE,
                 1.5)
    for p, o, count in zip(predicted, observed, counts, strict=True):
        area = 18 + 140 * count / biggest_count  # matplotlib scatter size: marker area in points²
        svg.marker("circle", top_axes.x(p), top_axes.y(o), math.sqrt(area), BLUE, "white", 0.8, cls="bin",
                   title=f"stated {p:.3f}, observed {o:.3f}, {count} samples",
                   data={"x": p, "y": o, "count": count})
    _legend(svg, top_axes, [_LegendItem("perfectly calibrated", "dashed", GREY),
                            _LegendItem("candidate (marker area = samples)", "circle", BLUE, 6)],
            "upper left")
    svg.add("</g>")
    svg.add('<g class="panel counts">')
    bar_w = bottom_axes.x(0.045) - bottom_axes.x(0)
    count_step = _nice_step(biggest_count * 1.05, 2)
    count_ticks = [v for v in bottom_axes.y.ticks() if v % count_step == 0] if count_step >= 1 else []
    svg.line(left, bottom_axes.bottom, right, bottom_axes.bottom, GREY, 0.8)
    svg.line(left, bottom_axes.top, left, bottom_axes.bottom, GREY, 0.8)
    for value in count_ticks or [0.0, float(biggest_count)]:
        y = bottom_axes.y(value)
        svg.line(left - 3.5, y, left, y, GREY, 0.8)
        svg.text(left - 5, y, f"{value:g}", colour=MUTED, anchor="end", baseline="central", cls="ytick")
    for p, count in zip(predicted, counts, strict=True):
        x = bottom_axes.x(p) - bar_w / 2
        y = bottom_axes.y(count)
        svg.add(f'<rect class="bar" x="{_f(x)}" y="{_f(y)}" width="{_f(bar_w)}" '
                f'height="{_f(bottom_axes.bottom - y)}" fill="{LIGHT_BLUE}" data-x="{p!r}" '
                f'data-count="{count}">'
                f"<title>{count} samples at stated {p:.3f}</title></rect>")
    for value, label in ticks:
        x = bottom_axes.x(value)
        svg.line(x, bottom_axes.bottom, x, bottom_axes.bottom + 3.5, GREY, 0.8)
        svg.text(x, bottom_axes.bottom + 12, label, colour=MUTED, anchor="middle", cls="xtick")
    svg.text(10, (bottom_axes.top + bottom_axes.bottom) / 2, "samples", anchor="middle", baseline="central",
             rotate=-90, cls="ylabel")
    svg.text((left + right) / 2, svg.height - 4, "stated confidence (bin mean)", anchor="middle",
             cls="xlabel")
    svg.add("</g>")
    return svg.render()


# -- decision intervals -------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntervalEntry:
    """One row of the forest plot: a quality loss (fraction) and its interval, with the verdict."""

    name: str
    loss: float | None
    low: float | None
    high: float | None
    verdict: str


def loss_intervals_svg(entries: list[IntervalEntry], margin: float | None) -> str | None:
    """Forest plot of quality loss (points) with its interval, overall and per group, against the margin.

    Rows without an interval are left out.
    """
    rows = [e for e in entries if e.low is not None and e.high is not None and e.loss is not None]
    if not rows:
        return None
    names = [_plain(e.name, 34) for e in rows]
    height = min(9.0, 0.9 + 0.26 * len(rows))
    svg = _Svg("plot-intervals", 6.2, height, "Quality loss against the reference, with intervals",
               f"{len(rows)} rows (all samples, then each group): the point is the loss in percentage "
               "points, the bar its interval, coloured by verdict; the dashed red line is the margin, the "
               "grey line zero.")
    values = [100 * v for e in rows for v in (e.low, e.high, e.loss) if v is not None]
    x_domain = _domain(values, 0.05, include=[0.0] + ([100 * margin] if margin is not None else []))
    x0, y0, x1, y1 = _axes_box(svg, left=10 + max(_text_width(n, _FONT) for n in names), bottom=30, top=6)
    ax = _Axes(x0, y0, x1, y1, _Scale(*x_domain, x0, x1), _Scale(-0.7, len(rows) - 0.5, y0, y1))
    step = _nice_step(x_domain[1] - x_domain[0], 7)
    _draw_axes(svg, ax, xlabel="quality loss vs reference (points; right = candidate worse)", ylabel=None,
               x_format=lambda v: _tick_label(v, step), y_format=None, grid_y=False,
               y_ticks=list(zip(range(len(rows)), names, strict=True)))
    svg.line(ax.x(0), ax.top, ax.x(0), ax.bottom, GREY, 0.8, cls="zero")
    if margin is not None:
        x = ax.x(100 * margin)
        svg.line(x, ax.top, x, ax.bottom, RED, 1, dash="4,2", cls="margin")
        svg.text(x + 3, ax.top + 2, f"margin {100 * margin:g}", size=_SMALL, colour=RED, baseline="hanging")
    for index, entry in enumerate(rows):
        colour = VERDICT_COLOURS.get(entry.verdict, GREY)
        low, high, loss = 100 * entry.low, 100 * entry.high, 100 * entry.loss  # type: ignore[operator]
        y = ax.y(index)
        svg.add(f'<g class="row" data-name="{_x(entry.name)}" data-verdict="{_x(entry.verdict)}">')
        svg.line(ax.x(low), y, ax.x(high), y, colour, 2.2, cap="butt", cls="interval")
        svg.marker("circle", ax.x(loss), y, 5, colour,
                   title=f"{entry.name}: loss {loss:.1f} points, interval [{low:.1f}, {high:.1f}], "
                         f"{entry.verdict}", data={"loss": loss, "low": low, "high": high})
        svg.add("</g>")
    return svg.render()
