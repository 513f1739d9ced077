"""The report's hand-written SVG charts: the plotted values are in them, text is escaped, ids are unique."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from evalkit.report import plots
from evalkit.scoring.metrics import ConfusionMatrix

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str | None) -> Any:
    assert svg is not None
    return ET.fromstring(svg)


def _marks(root: Any, cls: str) -> list[Any]:
    return [e for e in root.iter() if cls in (e.get("class") or "").split()]


def _texts(root: Any) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def _points(n: int, **overrides: Any) -> list[plots.ConfigurationPoint]:
    base = {"interval": None, "go": False, "verdict": "NO-GO", "recommended": False}
    return [plots.ConfigurationPoint(**{**base, "name": f"config {i}", "cost_per_1k": 0.2 * 3 ** i,
                                        "quality": 0.6 + 0.05 * i, **overrides}) for i in range(n)]


def test_configurations_plot_has_every_point_interval_and_a_log_axis_for_wide_costs() -> None:
    points = _points(4, interval=(0.5, 0.9))
    points[2] = plots.ConfigurationPoint(name="best <b>$5</b>", cost_per_1k=points[2].cost_per_1k,
                                         quality=0.7, interval=(0.65, 0.75), go=True, verdict="GO",
                                         recommended=True)
    root = _parse(plots.configurations_svg(points, reference_quality=0.8, reference_cost=12.0))
    marks = _marks(root, "configuration")
    assert [float(m.get("data-x")) for m in marks] == [p.cost_per_1k for p in points]
    assert [float(m.get("data-y")) for m in marks] == [100 * p.quality for p in points]
    assert marks[2].tag == f"{SVG}polygon" and marks[2].get("fill") == plots.GREEN  # the star, GO colour
    assert len(_marks(root, "interval")) == 4 and _marks(root, "reference")
    texts = _texts(root)
    assert "best <b>$5</b>" in texts  # parsed back as text: it was escaped, not markup
    assert "always the reference" in texts
    ticks = [t for t in texts if t.startswith("$")]
    assert {"$1.00", "$10.00"} <= set(ticks)  # costs span 0.2–12: decades on a log axis
    # Log axis: distance is the log of the cost ratio (0.2 -> 0.6 is x3, 0.6 -> 5.4 is x9: twice as far).
    x0, x1, x3 = (float(marks[i].get("cx")) for i in (0, 1, 3))
    assert abs((x3 - x1) - 2 * (x1 - x0)) < 0.05


def test_confusion_matrix_cells_and_shading_follow_the_rows() -> None:
    confusion = ConfusionMatrix(labels=["a", "b"], columns=["a", "b", "invalid"],
                                matrix=[[9, 1, 0], [0, 0, 0]], truth="gold")
    root = _parse(plots.confusion_matrix_svg(confusion))
    cells = _marks(root, "cell")
    assert [int(c.get("data-count")) for c in cells] == [9, 1, 0, 0, 0, 0]
    assert cells[0].get("fill") != cells[1].get("fill")  # 90% of the row is darker than 10%
    assert cells[3].get("fill") == plots._blues(0.0)  # an empty row is drawn as zero shares
    assert "true label (gold)" in _texts(root) and "candidate's answer" in _texts(root)


def test_interval_plot_rows_margin_and_missing_intervals() -> None:
    entries = [plots.IntervalEntry("all samples", 0.02, -0.01, 0.05, "INCONCLUSIVE"),
               plots.IntervalEntry("label: x", None, None, None, "INSUFFICIENT-DATA"),
               plots.IntervalEntry("label: y", 0.10, 0.07, 0.13, "NO-GO")]
    root = _parse(plots.loss_intervals_svg(entries, 0.05))
    rows = _marks(root, "row")
    assert [r.get("data-name") for r in rows] == ["all samples", "label: y"]
    assert [float(p.get("data-loss")) for p in _marks(root, "point")] == [2.0, 10.0]
    assert _marks(root, "margin") and "margin 5" in _texts(root)
    assert plots.loss_intervals_svg(entries[1:2], 0.05) is None


def test_ids_are_prefixed_per_plot_and_unique() -> None:
    drawn = [plots.loss_intervals_svg([plots.IntervalEntry("all", 0.0, -0.1, 0.1, "GO")], None),
             plots.configurations_svg(_points(2), reference_quality=None, reference_cost=None)]
    ids = [e.get("id") for svg in drawn for e in _parse(svg).iter() if e.get("id")]
    assert len(ids) == len(set(ids)) and all(i.startswith("plot-") for i in ids)


def test_report_template_bytecode_is_cached_per_user(tmp_path: Path) -> None:
    """Compiling the report template cost 0.15 s a run: its bytecode is kept in jinja's per-user cache
    folder (mode 0700) and loaded from there by the next process."""
    script = ("import time\nfrom evalkit.report.html import _environment\n"
              "start = time.perf_counter()\n_environment().get_template('report.html.j2')\n"
              "print(time.perf_counter() - start)\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-c", script]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    (folder,) = tmp_path.glob("_jinja2-cache-*")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (cached,) = folder.glob("*.cache")
    written = cached.stat().st_mtime_ns
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert cached.stat().st_mtime_ns == written  # read, not compiled and written again
    assert float(second.stdout) < float(first.stdout)
