"""report.html: self-contained, readable, interactive, and inert against untrusted text.

The browser tests drive Debian's headless Chromium through chromedriver (selenium, offline). They never
skip: without the browser they fail and say how to install it (.ci/run installs it on CI).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow
from evalkit.report.html import render_html as _render_html
from evalkit.report.html import script_json


def render_html(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The page for a (possibly edited) summary.json and results.jsonl, validated as the typed record."""
    return _render_html(RunRecord.model_validate(summary), [SampleRow.model_validate(row) for row in rows])

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_OUTPUT = "</script><img src=x onerror=alert(1)>"
NO_ROUTING = "only 12 samples have both answers; routing needs at least 20"
ROW_TEXTS = "return Array.from(document.querySelectorAll('#sample-rows tr')).map(r => r.textContent)"

# Runs before any script of the page: records dialogs, errors and CSP violations instead of showing them.
INSTRUMENT = """
window.__evalkit = {dialogs: [], errors: []};
["alert", "confirm", "prompt", "print"].forEach(function (name) {
  window[name] = function (message) {
    window.__evalkit.dialogs.push(name + ": " + String(message));
    return null;
  };
});
window.addEventListener("error", function (e) { window.__evalkit.errors.push("error: " + e.message); }, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__evalkit.errors.push("rejection: " + e.reason);
});
document.addEventListener("securitypolicyviolation", function (e) {
  window.__evalkit.errors.push("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
});
var consoleError = console.error;
console.error = function () {
  window.__evalkit.errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
  return consoleError.apply(console, arguments);
};
"""


# -- data -------------------------------------------------------------------------------------------
class Run:
    """One real `evalkit run` of the triage demo on the simulator (60 samples, real time)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.html_path = folder / "report.html"
        self.html = self.html_path.read_text(encoding="utf-8")
        self.summary: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
        self.rows: list[dict[str, Any]] = [json.loads(line) for line in lines]

    def copies(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return copy.deepcopy(self.summary), copy.deepcopy(self.rows)


_RUNS: dict[str, Run] = {}


@pytest.fixture
def run(project: Path) -> Run:
    """The demo run, made once per session by the CLI in an isolated project copy.

    The first test that asks for it runs ``evalkit run`` in its ``project``; later tests reuse that
    folder (tests only read it, and change deep copies of its summary and rows).
    """
    if "triage" not in _RUNS:
        result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "--mode",
                                           "realtime", "-n", "60", "--run-id", "report-test"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        _RUNS["triage"] = Run(project / "reports" / "triage" / "report-test")
    return _RUNS["triage"]


# -- the browser ------------------------------------------------------------------------------------
def _which(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if os.path.exists(os.environ[env]) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, path: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(path.resolve().as_uri())
        # get() can return while the page still reads "loading" on a busy machine (seen once in a CI run
        # at 2 cores, full suite in parallel): wait for the load, and fail if it never completes.
        WebDriverWait(self.driver, 30).until(
            lambda driver: driver.execute_script("return document.readyState") == "complete")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def problems(self) -> list[str]:
        """Script errors, console errors and CSP violations on the current page, plus browser SEVERE logs."""
        recorded = self.js("return window.__evalkit ? window.__evalkit.errors : ['instrumentation missing']")
        logs = self.driver.get_log("browser")
        severe = [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]
        return list(recorded) + severe

    def dialogs(self) -> list[str]:
        return list(self.js("return window.__evalkit.dialogs"))

    def text(self, element_id: str) -> str:
        return self.js("return document.getElementById(arguments[0]).textContent", element_id)

    def screenshot(self, path: Path) -> Path:
        """A full-page PNG (the whole report, not just the viewport)."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Page]:
    chromium = _which("EVALKIT_CHROMIUM", "chromium", "chromium-browser")
    chromedriver = _which("EVALKIT_CHROMEDRIVER", "chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("the report's browser tests need Debian's headless Chromium and its driver, and found "
                    f"chromium={chromium!r}, chromedriver={chromedriver!r}. Install them with "
                    "`apt-get install -y chromium chromium-driver` (.ci/run does this on CI), or point "
                    "EVALKIT_CHROMIUM / EVALKIT_CHROMEDRIVER at them.", pytrace=False)
    try:
        from selenium import webdriver  # noqa: PLC0415
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    except ImportError as error:  # pragma: no cover - the test extra installs it
        pytest.fail(f"selenium is missing ({error}): pip install -e '.[test]'", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INSTRUMENT})
        yield Page(driver)
    finally:
        driver.quit()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- helpers ----------------------------------------------------------------------------------------
def _without_data_block(html: str) -> str:
    return re.sub(r'<script type="application/json" id="evalkit-data">.*?</script>', "", html, flags=re.S)


def _embedded_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="evalkit-data">(.*?)</script>', html, flags=re.S)
    assert match
    return json.loads(match.group(1))


def _group(decision: dict[str, Any]) -> dict[str, Any]:
    """A group entry of summary.json around one decision (family verdict = the decision's own)."""
    return {"n": decision["n"], "verdict": decision["verdict"], "exploratory_verdict": decision["verdict"],
            "p_go_adjusted": 0.5, "p_nogo_adjusted": 0.01, "decision": decision, "note": "edited in a test"}


def _text_task(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Turn a classification run into what a free-text task (no gold, no confidence) records."""
    metrics = summary["metrics"]
    summary["metrics"] = {
        "agreement": metrics["agreement"],
        "exact_match": {"candidate_vs_reference": 0.41, "n": len(rows)},
        "token_f1": {"candidate_vs_reference": 0.82, "n": len(rows)},
        "rouge_l": {"candidate_vs_reference": 0.79, "n": len(rows)},
    }
    summary["scoring_mode"] = "reference"
    routing = summary["routing"]
    routing.update(chosen=None, calibration=None, mode="reference",
                   guarantee="no threshold can be certified with 60 samples at a 1-point target")
    summary["group_decisions"] = {"label": {f"summary {i}": _group(summary["decision"]) for i in range(40)}}
    for index, row in enumerate(rows):
        row["gold"] = None
        for role in ("candidate", "reference"):
            answer = row[role]["answer"]
            answer.update(label=None, confidence=None, escalate=None,
                          fields={"text": f"{role} summary number {index}: {row['text'][:40]}"})
            row[role]["output"] = answer["fields"]["text"]
        row["scores"] = {"agree": index % 3 != 0, "candidate_correct": None, "reference_correct": None,
                         "metric_values": {"cand_vs_ref": 0.5}, "threshold": 0.5, "judge": None}


# -- tests: in the browser --------------------------------------------------------------------------
@pytest.mark.e2e
def test_report_in_headless_browser_slider_and_screenshot(run: Run, browser: Page, tmp_path: Path) -> None:
    browser.open(run.html_path)
    assert browser.problems() == []
    assert browser.dialogs() == []
    summary = run.summary
    assert browser.text("verdict") == summary["decision"]["verdict"]
    assert browser.js("return !!document.getElementById('simulated-banner')") is True

    # The threshold slider: keyboard moves it to either end; the numbers follow the embedded sweep.
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

    sweep = sorted(summary["routing"]["sweep"], key=lambda row: row["t"])
    slider = browser.driver.find_element(By.ID, "threshold")
    ids = ("out-t", "out-escalation", "out-quality", "out-cost")
    before = [browser.text(i) for i in ids]
    marker = "return document.querySelector('#plot-cost-quality svg .slider-marker').getAttribute('cx')"
    marker_before = browser.js(marker)
    seen = []
    for key, row in ((Keys.HOME, sweep[0]), (Keys.END, sweep[-1])):
        slider.send_keys(key)
        now = [browser.text(i) for i in ids]
        assert now[0] == f"{row['t']:.2f}"
        assert now[1] == f"{100 * row['escalation_rate']:.1f}%"
        assert now[2] == f"{100 * row['routed_accuracy']:.1f}%"
        assert now[3].startswith("$")
        seen.append(now)
    assert any(now != before for now in seen), "moving the slider changed nothing"
    assert seen[0] != seen[1]
    assert browser.js(marker) != marker_before or seen[1] == before
    slider.send_keys(Keys.ARROW_LEFT)
    assert browser.text("out-t") == f"{sweep[-2]['t']:.2f}"

    # The sample browser: starts on disagreements; search finds one sample by id among all samples.
    flagged = [r for r in run.rows if False in (r["scores"]["agree"], r["scores"]["candidate_correct"])]
    shown = browser.js("return document.querySelectorAll('#sample-rows tr').length")
    assert shown == min(25, len(flagged)) and shown > 0
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415

    Select(browser.driver.find_element(By.ID, "sample-filter")).select_by_value("all")
    target = run.rows[-1]
    browser.driver.find_element(By.ID, "sample-search").send_keys(target["id"])
    rows = browser.js(ROW_TEXTS)
    assert len(rows) == 1 and target["text"][:30] in rows[0]
    assert browser.problems() == []

    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.exists() and shot.stat().st_size > 50_000
    width, height = _png_size(shot)
    assert width >= 1000 and height > 2000  # the whole report, not a blank viewport


@pytest.mark.e2e
def test_untrusted_text_is_escaped_and_inert(run: Run, browser: Page, tmp_path: Path) -> None:
    summary, rows = run.copies()
    first, second = rows[0], rows[1]
    first["text"] = XSS_SCRIPT
    first["candidate"]["output"] = XSS_OUTPUT
    first["scores"]["agree"] = False
    second["gold"] = "<b onmouseover=alert(2)>gold</b>"
    second["candidate"]["answer"].update(outcome="invalid", label=None, reason="<svg onload=alert(3)>")
    second["scores"]["agree"] = False
    summary["provenance"]["task"]["name"] = "</title><script>alert(4)</script>"
    summary["dataset"]["notes"] = ["<script>alert(5)</script> & more"]
    summary["group_decisions"]["channel"]["<img src=x onerror=alert(6)>"] = _group(summary["decision"])
    labels = summary["metrics"]["confusion_matrix"]["labels"]
    labels[0] = "<script>alert(7)</script>"
    labels[1] = "costs $5 and $10"  # a "$" pair is plain text in the plots (it was mathtext under matplotlib)

    html = render_html(summary, rows)
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")

    # In the source: escaped everywhere, and the only scripts are the report's two.
    assert len(re.findall(r"<script\b", html, flags=re.I)) == 2
    for raw in ("<script>alert", "<img src=x", "<svg onload", "<b onmouseover", "</title><script>"):
        assert raw not in html
    assert "&lt;script&gt;alert(5)&lt;/script&gt; &amp; more" in html
    assert "&lt;img src=x onerror=alert(6)&gt;" in html
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in html  # in the JSON block
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in html
    data = _embedded_data(html)
    assert any(s["text"] == XSS_SCRIPT and s["candidate"]["output"] == XSS_OUTPUT for s in data["samples"])

    # In the browser: nothing ran, nothing was injected, and the text reads as text.
    browser.open(path)
    assert browser.dialogs() == []
    assert browser.problems() == []
    assert browser.js("return document.scripts.length") == 2
    assert browser.js("return document.querySelectorAll('img, iframe, object, embed').length") == 0
    assert browser.js("return document.querySelectorAll('[onerror], [onload], [onmouseover]').length") == 0
    assert browser.js("return document.title").startswith("</title><script>alert(4)</script>")
    from selenium.common.exceptions import NoAlertPresentException  # noqa: PLC0415

    with pytest.raises(NoAlertPresentException):
        browser.driver.switch_to.alert.text  # noqa: B018 - raises when no dialog is open
    cells = browser.js("""
        var rows = Array.from(document.querySelectorAll('#sample-rows tr'));
        return rows.map(function (r) { return [r.textContent, Array.from(r.querySelectorAll('pre'))
          .map(function (p) { return p.textContent; })]; });""")
    texts = [text for text, _ in cells]
    outputs = [output for _, pres in cells for output in pres]
    assert any(XSS_SCRIPT in text for text in texts)
    assert XSS_OUTPUT in outputs
    assert any("<svg onload=alert(3)>" in text for text in texts)
    top = browser.js("return document.getElementById('decision').textContent")
    assert top.count("<script>alert(5)</script>") == 1


@pytest.mark.e2e
def test_degraded_and_text_reports_work_in_the_browser(run: Run, browser: Page, tmp_path: Path) -> None:
    summary, rows = run.copies()
    summary["routing"] = {"available": False, "why": NO_ROUTING}
    summary["projection"] = {"available": False, "why": "no answered requests to measure"}
    bare = tmp_path / "bare.html"
    bare.write_text(render_html(summary, rows), encoding="utf-8")
    browser.open(bare)
    assert browser.problems() == [] and browser.dialogs() == []
    assert browser.js("return document.querySelectorAll('#sample-rows tr').length") > 0

    summary, rows = run.copies()
    _text_task(summary, rows)
    text = tmp_path / "text.html"
    text.write_text(render_html(summary, rows), encoding="utf-8")
    browser.open(text)
    assert browser.problems() == [] and browser.dialogs() == []
    shown = browser.js(ROW_TEXTS)
    assert len(shown) == min(25, sum(1 for r in rows if r["scores"]["agree"] is False))
    assert "candidate summary number" in shown[0]


# -- tests: the HTML itself -------------------------------------------------------------------------
@pytest.mark.e2e
def test_report_is_self_contained(run: Run) -> None:
    html = run.html
    assert not re.search(r"<link\b", html, flags=re.I)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, flags=re.I)
    assert not re.search(r"<(img|iframe|object|embed|audio|video|source)\b", html, flags=re.I)
    assert not re.search(r"\b(?:src|href|action|poster|data)\s*=\s*[\"']?\s*(?:https?:)?//", html, flags=re.I)
    assert not re.search(r"url\(\s*[\"']?\s*(?:https?:)?//", html, flags=re.I)
    assert "@import" not in html
    # Outside the embedded data (dataset text may mention URLs), the only URLs are XML namespace names.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", _without_data_block(html)))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls

    # A strict Content-Security-Policy: no network, and only the report's own script may run.
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp and "default-src 'none'" in csp.group(1)
    assert "unsafe-inline" not in csp.group(1).split("style-src")[0]  # scripts: only the hashed one
    script = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert len(script) == 1
    digest = base64.b64encode(hashlib.sha256(script[0].encode("utf-8")).digest()).decode()
    assert f"'sha256-{digest}'" in csp.group(1)

    # Every section is there, with its inline SVG plots.
    for section in ("decision", "groups", "quality", "samples", "routing", "cost", "run"):
        assert f'<section id="{section}"' in html
    for plot in ("plot-intervals", "plot-confusion", "plot-cost-quality", "plot-reliability"):
        assert re.search(rf'<figure class="plot" id="{plot}"[^>]*>\s*<svg\b', html), plot
    summary = run.summary
    provenance = summary["provenance"]
    assert summary["dataset"]["hash"] in html and provenance["prompt"]["system_hash"] in html
    assert provenance["pricing"]["as_of"] in html and provenance["evalkit_version"] in html
    assert 'id="projection-table"' in html and html.count("<tr class=\"hl\"><td>routed") == 4

    # Deterministic: the same run renders byte for byte the same page.
    assert render_html(*run.copies()) == render_html(*run.copies())
    assert render_html(*run.copies()) == html


@pytest.mark.e2e
def test_simulated_banner_shows_iff_simulated(run: Run) -> None:
    assert 'id="simulated-banner"' in run.html and "(SIMULATED)" in run.html
    summary, rows = run.copies()
    summary["provenance"]["simulated"] = False
    summary["provenance"]["backend"] = {"kind": "api", "endpoint": "api", "description": "the Anthropic API"}
    html = render_html(summary, rows)
    assert 'id="simulated-banner"' not in html
    assert "SIMULATED" not in html and "SIMULATOR" not in html


@pytest.mark.e2e
def test_sections_degrade_without_routing_projection_or_groups(run: Run) -> None:
    summary, rows = run.copies()
    summary["routing"] = {"available": False, "why": NO_ROUTING}
    summary["projection"] = {"available": False, "why": "no answered requests to measure"}
    html = render_html(summary, rows)
    assert "Routing analysis not available: only 12 samples" in html
    assert "Production projection not available: no answered requests to measure" in html
    assert 'id="threshold"' not in html and 'id="plot-cost-quality"' not in html
    assert 'id="plot-reliability"' not in html and 'id="projection-table"' not in html
    assert 'id="plot-confusion"' in html and 'id="usage-table"' in html
    assert _embedded_data(html)["sweep"] == []

    # Empty sections and an undecided run.
    summary.update(group_decisions={}, reference_noise=None, sequential=None, caching={}, lint=[])
    summary["decision"] = {"verdict": "INSUFFICIENT-DATA", "mode": "gold", "rule": "none", "margin": 0.05,
                           "alpha": 0.05, "n": 0, "loss": None, "loss_interval": None,
                           "point_verdict": "INSUFFICIENT-DATA", "details": {},
                           "reason": "no sample was answered by both models"}
    html = render_html(summary, rows)
    assert "INSUFFICIENT-DATA" in html and "No per-group decisions" in html
    assert 'id="plot-intervals"' not in html

    # Routing without a certified threshold or a calibration analysis.
    summary, rows = run.copies()
    summary["routing"].update(chosen=None, calibration=None)
    html = render_html(summary, rows)
    assert "No threshold chosen." in html and 'id="threshold"' in html
    assert 'id="plot-reliability"' not in html and "No calibration analysis" in html
    default_t = summary["routing"]["seed_default"]["t"]
    assert f'<output id="out-t" for="threshold">{default_t:.2f}</output>' in html


@pytest.mark.e2e
def test_report_without_gold_labels(run: Run) -> None:
    summary, rows = run.copies()
    metrics = summary["metrics"]
    summary["scoring_mode"] = "reference"
    metrics["accuracy"] = None
    for name in ("macro_f1", "kappa"):
        metrics[name] = {"candidate_vs_reference": metrics[name]["candidate_vs_reference"]}
    metrics["confusion_matrix"]["truth"] = "reference"
    for entry in metrics["per_label"].values():
        del entry["candidate_accuracy"], entry["reference_accuracy"]
    for row in rows:
        row["gold"] = None
        row["scores"].update(candidate_correct=None, reference_correct=None)
    html = render_html(summary, rows)
    assert "<th>gold</th>" not in html and "accuracy vs gold" not in html and "macro-F1 vs gold" not in html
    assert "agreement with the reference" in html and "reference&#39;s label" in html
    assert 'id="plot-confusion"' in html and "true label (reference)" in html
    assert _embedded_data(html)["gold"] is False


@pytest.mark.e2e
def test_sequential_noise_and_group_nogo_are_shown_on_top(run: Run) -> None:
    summary, rows = run.copies()
    summary["sequential"] = {
        "looks": [20, 40, 60], "boundaries": [3.7, 2.5, 2.0], "stopped_at": 40, "n_max": 60,
        "samples_saved": 20, "cost_saved_usd": 0.0123,
        "history": [{"n": 20, "boundary": 3.7, "verdict": "INCONCLUSIVE", "statistic": 1.1},
                    {"n": 40, "boundary": 2.5, "verdict": "NO-GO", "statistic": 2.9}]}
    summary["decision_fixed_sample"] = copy.deepcopy(summary["decision"])
    summary["reference_noise"] = {"n": 30, "self_agreement": 0.9, "interval": [0.74, 0.97],
                                  "margin_meaningful": False, "note": "..."}
    group = copy.deepcopy(summary["decision"])
    group.update(verdict="NO-GO", loss=0.3, loss_interval=[0.2, 0.4], n=17)
    summary["group_decisions"]["channel"]["email"] = _group(group)
    html = render_html(summary, rows)
    top = " ".join(html[html.index('<section id="decision"'):html.index('<section id="groups"')].split())
    assert 'id="group-nogo"' in top
    assert "<strong>channel = email</strong>: loss 30.0 points, interval [20.0, 40.0]" in top
    assert 'id="sequential-note"' in top and "stopped at n = 40 of 60 (look 2 of 3)" in top
    assert 'id="reference-noise"' in top and "90.0% of 30 repeated samples (95% CI 74.0–97.0%)" in top
    assert "no candidate can be shown to be within it" in top
    assert "Point-estimate rule" in top and summary["decision"]["rule"] in top


@pytest.mark.e2e
def test_text_task_report_has_no_label_sections(run: Run) -> None:
    summary, rows = run.copies()
    _text_task(summary, rows)
    html = render_html(summary, rows)
    assert 'id="plot-confusion"' not in html and 'id="per-label-table"' not in html
    assert 'id="sample-label"' not in html and "<th>gold</th>" not in html
    assert "mean token F1 vs the reference" in html and "mean ROUGE-L vs the reference" in html
    assert "By label: 40 groups" in html
    data = _embedded_data(html)
    assert data["gold"] is False and data["labels"] == []
    assert data["samples"][0]["candidate"]["answer"].startswith("candidate summary number")


def test_script_json_cannot_break_out_of_its_block() -> None:
    value = {"text": "</script><!-- <script> & \u2028\u2029 '\"", "n": float("nan"), "ok": [1.5, None]}
    text = str(script_json(value))
    for char in "<>&\u2028\u2029":
        assert char not in text
    assert json.loads(text) == {"text": value["text"], "n": None, "ok": [1.5, None]}


def _many_labels_project(root: Path, labels: int = 77, rows: int = 600) -> Path:
    """A banking77-sized task whose answers both come from logs (nothing is called)."""
    import random

    rng = random.Random(1)
    names = [f"intent_{i:02d}_{word}" for i, word in
             enumerate(["card_arrival", "card_linking", "exchange_rate", "top_up_failed"] * 20)][:labels]
    data = [{"id": f"b{i:04d}", "label": names[i % labels],
             "text": f"A question about {names[i % labels].replace('_', ' ')}. " * rng.randint(1, 5)}
            for i in range(rows)]
    root.mkdir(parents=True)
    (root / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in data))

    def log(right: float) -> str:
        return "".join(json.dumps({"id": row["id"], "output": json.dumps({
            "label": row["label"] if rng.random() < right else names[rng.randrange(labels)],
            "confidence": round(rng.random(), 2), "escalate": False})}) + "\n" for row in data)

    (root / "cand.jsonl").write_text(log(0.7))
    (root / "ref.jsonl").write_text(log(0.85))
    listed = "\n".join(f"    {name}: about {name}" for name in names)
    (root / "task.yaml").write_text(
        "name: banking\ndataset: {path: data.jsonl, label_column: label}\nsample: {size: 500}\n"
        'prompt:\n  system: "Pick the intent."\n  user: "{{ text }}"\n'
        f"output:\n  labels:\n{listed}\n"
        "models:\n  candidate: claude-haiku-5-5\n  reference: claude-sonnet-5-5\n"
        "  candidate_log: cand.jsonl\n  reference_log: ref.jsonl\n")
    return root / "task.yaml"


@pytest.mark.e2e
def test_a_77_label_report_stays_small_and_unclipped(browser: Page, tmp_path: Path) -> None:
    task = _many_labels_project(tmp_path / "banking")
    result = CliRunner().invoke(main, ["run", str(task), "-q", "--run-id", "many"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = tmp_path / "banking" / "reports" / "banking" / "many" / "report.html"
    html = page.read_text()
    assert page.stat().st_size < 1_500_000  # was 4.3 MB with the full 77 × 78 heatmap
    assert 'id="plot-confusion"' not in html and 'id="confusion-table"' in html
    browser.open(page)
    assert browser.problems() == []
    # No table is cut off: every one fits its section, or sits in a wrapper that scrolls to show it all.
    clipped = browser.js("""
        return Array.from(document.querySelectorAll('section table')).filter(function (table) {
          var section = table.closest('section').getBoundingClientRect();
          var wrap = table.closest('.table-wrap');
          var scrolls = wrap && getComputedStyle(wrap).overflowX === 'auto';
          return table.getBoundingClientRect().right > section.right + 1 && !scrolls;
        }).map(function (table) { return table.id || table.className; });""")
    assert clipped == []
    rows = browser.js("return document.querySelectorAll('#per-label-table tbody tr').length")
    assert rows == 77
    # The confusions table sorts by a clicked column.
    click = "document.querySelector('#confusion-table th:nth-child(1)').click()"
    top = "return document.querySelector('#confusion-table tbody tr td').textContent"
    browser.js(click)
    first = browser.js(top)
    browser.js(click)
    last = browser.js(top)
    assert first <= last and first != last
    shot = browser.screenshot(tmp_path / "many.png")
    assert shot.stat().st_size > 50_000


# -- tests: the plots are plain SVG with the run's numbers in them -----------------------------------
def _svg_of(html: str, plot: str) -> Any:
    """The parsed <svg> element inside the report's figure ``plot``."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    match = re.search(rf'<figure class="plot" id="{plot}"[^>]*>\s*(<svg\b.*?</svg>)', html, flags=re.S)
    assert match, plot
    return ET.fromstring(match.group(1))


def _marks(svg: Any, cls: str) -> list[Any]:
    return [e for e in svg.iter() if cls in (e.get("class") or "").split()]


def _texts(svg: Any) -> list[str]:
    return ["".join(e.itertext()) for e in svg.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.e2e
def test_plots_are_svg_with_the_runs_numbers(run: Run) -> None:
    html, summary = run.html, run.summary
    data = _embedded_data(html)

    # Cost against quality: one mark per swept threshold at the data's position under the page's map.
    svg = _svg_of(html, "plot-cost-quality")
    sweep = sorted(summary["routing"]["sweep"], key=lambda row: row["t"])
    marks = _marks(svg, "sweep")
    assert [float(m.get("data-t")) for m in marks] == [row["t"] for row in sweep]
    plot_map = data["plot_map"]
    for mark, row in zip(marks, sweep, strict=True):
        assert float(mark.get("data-x")) == row["cost_per_1k"]
        assert float(mark.get("data-y")) == 100 * row["routed_accuracy"]
        x = plot_map["ax"] + plot_map["bx"] * row["cost_per_1k"]
        y = plot_map["ay"] + plot_map["by"] * 100 * row["routed_accuracy"]
        assert float(mark.get("cx")) == pytest.approx(x, abs=0.01)
        assert float(mark.get("cy")) == pytest.approx(y, abs=0.01)
    texts = _texts(svg)
    assert "cost per 1,000 requests (USD, real-time rates)" in texts and "threshold sweep" in texts
    chosen = summary["routing"]["chosen"]
    if chosen:
        (star,) = _marks(svg, "chosen")
        assert float(star.get("data-x")) == chosen["cost_per_1k"]
        assert f"chosen t = {chosen['t']:.2f}" in texts
    assert any(t.startswith("$") for t in texts)  # the x axis is in dollars

    # Confusion matrix: every cell's count, in its row and column.
    confusion = summary["metrics"]["confusion_matrix"]
    svg = _svg_of(html, "plot-confusion")
    cells = {(int(c.get("data-row")), int(c.get("data-column"))): int(c.get("data-count"))
             for c in _marks(svg, "cell")}
    matrix = confusion["matrix"]
    assert cells == {(i, j): count for i, row in enumerate(matrix) for j, count in enumerate(row)}
    assert [t for t in _texts(svg) if t in confusion["labels"]] == list(confusion["labels"]) * 2  # both axes

    # Loss intervals: the overall row first, in points, and the margin line labelled.
    svg = _svg_of(html, "plot-intervals")
    decision = summary["decision"]
    first = _marks(svg, "row")[0]
    assert first.get("data-name") == "all samples"
    (point,) = _marks(first, "point")
    assert float(point.get("data-loss")) == 100 * decision["loss"]
    assert float(point.get("data-low")) == 100 * decision["loss_interval"][0]
    assert f"margin {100 * decision['margin']:g}" in _texts(svg)

    # Reliability: one bin mark and one bar per non-empty bin, with its count.
    reliability = summary["routing"]["calibration"]["reliability"]
    svg = _svg_of(html, "plot-reliability")
    bins = _marks(svg, "bin")
    assert [float(b.get("data-x")) for b in bins] == reliability["prob_pred"]
    assert [float(b.get("data-y")) for b in bins] == reliability["prob_true"]
    assert [int(b.get("data-count")) for b in _marks(svg, "bar")] == reliability["counts"]
    assert "stated confidence (bin mean)" in _texts(svg)
    for plot in ("plot-cost-quality", "plot-confusion", "plot-intervals", "plot-reliability"):
        svg = _svg_of(html, plot)
        assert svg.get("role") == "img" and svg.find("{http://www.w3.org/2000/svg}title").text


@pytest.mark.e2e
def test_rendering_a_report_imports_no_plotting_or_statistics_library(run: Run) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    script = ("import sys, pathlib\n"
              "from evalkit.record.model import RunRecord\n"
              "from evalkit.record.rows import SampleRow\n"
              "from evalkit.report.html import render_html\n"
              f"folder = pathlib.Path({str(run.folder)!r})\n"
              "record = RunRecord.model_validate_json((folder / 'summary.json').read_text())\n"
              "rows = [SampleRow.model_validate_json(line)"
              " for line in (folder / 'results.jsonl').read_text().splitlines()]\n"
              "assert render_html(record, rows).count('<svg ') >= 4\n"
              "heavy = ('matplotlib', 'statsmodels', 'scipy.stats', 'sklearn', 'pandas')\n"
              "print(','.join(m for m in heavy if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
