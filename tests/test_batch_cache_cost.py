"""Best-effort prompt-cache hits inside batches reach the dollars: the estimate assumes the expected hit
rate (the simulator's configured one, or a conservative 30% for the real API — the low end of the
documented 30–98%), and the report shows the assumption beside what the run's batches got."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.cost.estimate import ASSUMED_BATCH_CACHE_HIT_RATE, estimate_cost
from evalkit.providers.response_cache import ResponseCache
from tests.conftest import prepared_task
from tests.test_batches import configure, summary


def _estimate(project: Path, tmp_path: Path, *, batch: bool, rate: float | None) -> float:
    settings = load_settings(project)
    prepared = prepared_task(project / "tasks" / "triage.yaml", sample_size=60, settings=settings,
                             mode="batch" if batch else "realtime")
    with ResponseCache(tmp_path / "cache", "off") as cache:
        estimate = estimate_cost(prepared.requests, cache, "nowhere", settings.pricing, prepared.cache_plans,
                                 batch=batch, batch_cache_hit_rate=rate)
    if batch:
        expected = ASSUMED_BATCH_CACHE_HIT_RATE if rate is None else rate
        assert estimate.batch_cache_hit_rate == expected
        assert f"assumes {expected:.0%} of the requests after each model's warm-up" in estimate.describe()
    return estimate.expected_usd


def test_the_estimate_prices_batch_cache_hits_as_best_effort(project: Path, tmp_path: Path) -> None:
    ideal = _estimate(project, tmp_path, batch=True, rate=1.0)
    configured = _estimate(project, tmp_path, batch=True, rate=0.7)
    real_api = _estimate(project, tmp_path, batch=True, rate=None)
    assert ideal < configured < real_api  # fewer hits, more cache writes at 2x: dearer
    realtime = _estimate(project, tmp_path, batch=False, rate=0.0)  # real time reads after the first write
    assert realtime > ideal  # only the batch discount separates them


@pytest.mark.e2e
def test_batch_cache_hit_rate_reaches_the_estimate_and_the_report(project: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5, batch_cache_hit_rate=0.5)
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-n", "60",
                                       "--run-id", "half"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "assumes 50% of the requests after each model's warm-up read the cached prefix" in result.output
    report = summary(project, "half")
    assert report["estimate"]["batch_cache_hit_rate"] == 0.5 and report["estimate"]["batch"] is True
    for role in ("candidate", "reference"):
        caching = report["caching"][role]
        reads = caching["requests_with_cache_read"]
        assert 15 <= reads <= 45, reads  # ~50% of the 59 after the warm-up, not all 59
        assert caching["requests_with_cache_write"] == 60 - reads  # every miss wrote the prefix again
        assert 0.3 <= caching["hit_rate"] <= 0.7
    # The estimate, made before anything was sent, is not optimistic about what the batches were billed.
    billed, estimated = report["cost_usd"]["this_run"], report["estimate"]["expected_usd"]
    assert billed <= estimated <= 2 * billed, (estimated, billed)
    assert report["projection"]["batch_cache_hit_rate"] == 0.5
    html = (project / "reports" / "triage" / "half" / "report.html").read_text()
    assert 'id="estimate-batch-hit-rate">50%' in html or 'id="estimate-batch-hit-rate">50.0%' in html
    assert "best-effort" in html
