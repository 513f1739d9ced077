"""The report's plots: matplotlib figures rendered to small, deterministic, inline-ready SVG strings.

matplotlib is imported lazily (only when a report is written) and never touches pyplot or the global
backend: every figure is a bare ``Figure`` on an Agg canvas, saved as SVG under a local ``rc_context``.
The SVG is made safe to inline several times in one HTML page: the XML prologue, DOCTYPE and metadata
are dropped and every element id is prefixed, so two plots never share an id.

Text that comes from data (label names, segment values) is passed through :func:`_plain` so that a
``$`` is never read as mathtext; matplotlib itself escapes ``<``, ``>`` and ``&`` in SVG text.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.routing.analysis import CalibrationReport, RoutingAnalysis
from evalkit.scoring.metrics import ConfusionMatrix

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

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

_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "evalkit-report",  # clip-path ids are hashes: a fixed salt keeps them stable
    "svg.fonttype": "none",  # real <text> elements: small, selectable, rendered with the page's fonts
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": GREY,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_DPI = 72  # the SVG backend works in points: at 72 dpi, display coordinates are SVG user units


def _plain(text: Any, limit: int = 40) -> str:
    """Data text as a literal matplotlib label: no mathtext, bounded length."""
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("$", r"\$")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _svg(fig: Any, prefix: str) -> str:
    """Save ``fig`` as SVG and return the bare ``<svg>`` element, ids prefixed, scaled by CSS."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=_NO_METADATA, facecolor="white")
    return _inline(buffer.getvalue(), prefix)


def _inline(svg: str, prefix: str) -> str:
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    match = re.match(r'<svg([^>]*?)\swidth="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if match:  # drop the fixed size: the viewBox keeps the aspect ratio, CSS caps the width
        width_px = round(float(match.group(2)) * 4 / 3)
        svg = svg.replace(f' width="{match.group(2)}pt" height="{match.group(3)}pt"',
                          f' role="img" style="max-width: {width_px}px"', 1)
    return svg.strip() + "\n"


def _render(prefix: str, width: float, height: float, draw: Any, after: Any = None) -> str:
    """Draw a figure under the report's style and return its inline SVG; ``after(fig)`` runs once saved."""
    import matplotlib  # noqa: PLC0415

    # Layout hints (e.g. a label too long for constrained layout) are cosmetic: never a run's problem.
    with warnings.catch_warnings(), matplotlib.rc_context(_RC):
        warnings.filterwarnings("ignore", category=UserWarning, module=r"matplotlib\..*")
        fig = _figure(width, height)
        draw(fig)
        svg = _svg(fig, prefix)
        if after is not None:
            after(fig)
        return svg


# -- confusion matrix -------------------------------------------------------------------------------
def confusion_matrix_svg(confusion: ConfusionMatrix | None) -> str | None:
    """Heatmap of the candidate's answers per true label: colour = share of the row, text = count."""
    if confusion is None or not confusion.matrix or not confusion.labels:
        return None
    labels = list(confusion.labels)
    columns = list(confusion.columns or labels)
    matrix = [list(map(int, row)) for row in confusion.matrix]
    truth = "gold" if confusion.truth == "gold" else "reference"

    def draw(fig: Any) -> None:
        import numpy as np  # noqa: PLC0415

        counts = np.array(matrix, dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        ax = fig.add_subplot()
        ax.pcolormesh(shares, cmap="Blues", vmin=0.0, vmax=1.0, edgecolors="white", linewidth=1.5)
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                share = shares[i, j]
                ax.text(j + 0.5, i + 0.5, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share > 0.55 else INK, fontweight="bold" if i == j else "normal")
        ax.set_xticks([j + 0.5 for j in range(len(columns))], [_plain(c, 18) for c in columns],
                      rotation=30, ha="right")
        ax.set_yticks([i + 0.5 for i in range(len(labels))], [_plain(c, 18) for c in labels])
        ax.invert_yaxis()
        ax.set_xlabel("candidate's answer")
        ax.set_ylabel(f"true label ({truth})")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)

    width = min(9.0, 1.6 + 0.72 * len(columns))
    height = min(8.0, 1.3 + 0.42 * len(labels))
    return _render("plot-confusion", width, height, draw)


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
    mapping: dict[str, float] = {}

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        xs = [row.cost_per_1k for row in sweep]
        ys = [100 * row.routed_accuracy for row in sweep]
        ax.plot(xs, ys, color=LIGHT_BLUE, linewidth=1.5, marker="o", markersize=2.5, zorder=2,
                label="threshold sweep")
        pareto = sorted(routing.pareto, key=lambda row: row.cost_per_1k)
        if pareto:
            ax.plot([p.cost_per_1k for p in pareto], [100 * p.routed_accuracy for p in pareto],
                    color=BLUE, linewidth=0, marker="o", markersize=4.5, zorder=3, label="Pareto front")
        reference_quality = routing.always_reference_accuracy
        if reference_quality is not None:
            ax.axhline(100 * reference_quality, color=GREY, linestyle=":", linewidth=1, zorder=1)
            ax.annotate("always reference", (0, 100 * reference_quality), xycoords=("axes fraction", "data"),
                        xytext=(3, 3), textcoords="offset points", ha="left", va="bottom", fontsize=7.5,
                        color=MUTED)
        candidate_quality = routing.always_candidate_accuracy
        if candidate_quality is not None and costs is not None:
            ax.plot([costs.always_candidate_per_1k], [100 * candidate_quality], marker="s", markersize=5,
                    color=GREY, linewidth=0, zorder=3, label="always candidate")
        if default:
            ax.plot([default.cost_per_1k], [100 * default.routed_accuracy], marker="D", markersize=5.5,
                    color=AMBER, linewidth=0, zorder=4, label=f"default t = {default.t:.2f}")
        if chosen:
            ax.plot([chosen.cost_per_1k], [100 * chosen.routed_accuracy], marker="*", markersize=13,
                    color=GREEN, markeredgecolor="white", markeredgewidth=0.8, linewidth=0, zorder=5,
                    label=f"chosen t = {chosen.t:.2f}")
        ax.set_xlabel("cost per 1,000 requests (USD, real-time rates)")
        ax.set_ylabel(f"routed {quality_name} (%)")
        ax.margins(x=0.04, y=0.12)
        ax.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.xaxis.set_major_formatter("${x:,.2f}")
        ax.legend(loc="lower right", ncols=1)

    def after(fig: Any) -> None:
        # The slider's marker lives in SVG user units: the data -> SVG map as laid out in the saved file.
        ax = fig.axes[0]
        (x0, y0), (x1, y1) = ax.transData.transform([(0.0, 0.0), (1.0, 1.0)])
        height = fig.get_size_inches()[1] * _DPI
        mapping.update(ax=float(x0), bx=float(x1 - x0), ay=float(height - y0), by=float(-(y1 - y0)))

    svg = _render("plot-cost-quality", 6.2, 3.6, draw, after)
    if not all(math.isfinite(v) for v in mapping.values()):
        mapping.clear()
    return svg, mapping


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


def configurations_svg(points: list[ConfigurationPoint], *, reference_quality: float | None,
                       reference_cost: float | None, quality_name: str = "accuracy") -> str | None:
    """Every configuration (and routed variant) on one plane: cost per 1,000 requests against quality."""
    if not points:
        return None

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        placed: list[tuple[float, float]] = []
        for point in points:
            colour = GREEN if point.go else VERDICT_COLOURS.get(point.verdict, GREY)
            y = 100 * point.quality
            if point.interval is not None:
                low, high = 100 * point.interval[0], 100 * point.interval[1]
                ax.errorbar([point.cost_per_1k], [y], yerr=[[y - low], [high - y]], color=colour, linewidth=1,
                            capsize=2.5, zorder=2)
            ax.plot([point.cost_per_1k], [y], marker="*" if point.recommended else ("o" if not point.routed
                                                                                    else "D"),
                    markersize=14 if point.recommended else 6, linewidth=0, zorder=4,
                    color=colour if not point.routed else "white", markeredgecolor=colour,
                    markeredgewidth=1.2)
            # Labels of nearby points go below one another instead of on top of each other.
            near = sum(1 for cost, quality in placed
                       if abs(math.log(max(cost, 1e-9) / max(point.cost_per_1k, 1e-9))) < 0.15
                       and abs(quality - y) < 4)
            placed.append((point.cost_per_1k, y))
            ax.annotate(_plain(point.name, 28), (point.cost_per_1k, y), xytext=(6, 4 - 10 * near),
                        textcoords="offset points",
                        fontsize=7.5, color=INK if point.recommended else MUTED,
                        fontweight="bold" if point.recommended else "normal")
        if reference_quality is not None:
            ax.axhline(100 * reference_quality, color=GREY, linestyle=":", linewidth=1, zorder=1)
            if reference_cost is not None:
                ax.plot([reference_cost], [100 * reference_quality], marker="s", markersize=6, color=GREY,
                        linewidth=0, zorder=3)
                ax.annotate("always the reference", (reference_cost, 100 * reference_quality),
                            xytext=(6, -10),
                            textcoords="offset points", fontsize=7.5, color=MUTED)
        costs = [p.cost_per_1k for p in points] + ([reference_cost] if reference_cost else [])
        if min(costs) > 0 and max(costs) / min(costs) > 8:
            ax.set_xscale("log")
        ax.set_xlabel("cost per 1,000 requests in production (USD)")
        ax.set_ylabel(f"{quality_name} (%), 95% interval")
        ax.margins(x=0.12, y=0.15)
        ax.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.xaxis.set_major_formatter("${x:,.2f}")

    return _render("plot-configurations", 6.4, 3.8, draw)


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

    def draw(fig: Any) -> None:
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        top.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="perfectly calibrated")
        biggest = max(max(counts), 1)
        sizes = [18 + 140 * c / biggest for c in counts]
        top.plot(predicted, observed, color=BLUE, linewidth=1.5, zorder=2)
        top.scatter(predicted, observed, s=sizes, color=BLUE, edgecolors="white", linewidths=0.8, zorder=3,
                    label="candidate (marker area = samples)")
        top.set_xlim(0, 1.02)
        top.set_ylim(0, 1.02)
        top.set_ylabel("observed accuracy")
        top.grid(True, color=GRID, linewidth=0.6)
        top.set_axisbelow(True)
        top.legend(loc="upper left")
        bottom.bar(predicted, counts, width=0.045, color=LIGHT_BLUE)
        bottom.set_ylabel("samples")
        bottom.set_xlabel("stated confidence (bin mean)")

    return _render("plot-reliability", 4.4, 4.0, draw)


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

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for index, entry in enumerate(rows):
            colour = VERDICT_COLOURS.get(entry.verdict, GREY)
            ax.plot([100 * entry.low, 100 * entry.high], [index, index], color=colour,  # type: ignore[operator]
                    linewidth=2.2, solid_capstyle="butt")
            ax.plot([100 * entry.loss], [index], marker="o", markersize=5, color=colour, linewidth=0)  # type: ignore[operator]
        ax.axvline(0, color=GREY, linewidth=0.8)
        if margin is not None:
            ax.axvline(100 * margin, color=RED, linestyle="--", linewidth=1)
            ax.annotate(f"margin {100 * margin:g}", (100 * margin, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -2), textcoords="offset points", va="top", fontsize=7.5, color=RED)
        ax.set_yticks(range(len(rows)), [_plain(e.name, 34) for e in rows])
        ax.set_ylim(len(rows) - 0.5, -0.7)
        ax.set_xlabel("quality loss vs reference (points; right = candidate worse)")
        ax.grid(True, axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)

    height = min(9.0, 0.9 + 0.26 * len(rows))
    return _render("plot-intervals", 6.2, height, draw)
