"""Dollars: what the default batch run was billed, against the theoretical minimum for the same tokens
(batch discount + the static prefix written once per model with a 1 h cache, read everywhere else) and
against a naive real-time run without prompt caching. Target: ≤ 1.05× the minimum.
    python bench/dollars.py [--samples 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import REPO, evalkit, make_project, table

sys.path.insert(0, str(REPO))


def main() -> None:
    from evalkit.config import load_settings
    from evalkit.record.files import read_record, read_rows

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p", settings={"batch_delay_s": "0.2", "poll_initial_s": "0.2"})
        evalkit(project, "run", "tasks/triage.yaml", "-q", "-n", str(args.samples), "--run-id", "d")
        pricing = load_settings(project).pricing
        rows = read_rows(project / "reports/triage/d")
        billed = read_record(project / "reports/triage/d").cost_usd.answers
    minimum = naive = 0.0
    for role in ("candidate", "reference"):
        sides = [row.candidate if role == "candidate" else row.reference for row in rows]
        sides = [side for side in sides if side.usage.output_tokens]
        model = sides[0].model
        rates = pricing.price_for(model)
        prefix = max(s.usage.cache_read_input_tokens + s.usage.cache_creation_input_tokens for s in sides)
        total_in = sum(s.usage.input_tokens + s.usage.cache_read_input_tokens
                       + s.usage.cache_creation_input_tokens for s in sides)
        out = sum(s.usage.output_tokens for s in sides)
        best = (prefix * rates.cache_write_1h + (len(sides) - 1) * prefix * rates.cache_read
                + (total_in - len(sides) * prefix) * rates.input + out * rates.output) / 1e6
        minimum += best * pricing.batch_discount
        naive += (total_in * rates.input + out * rates.output) / 1e6
    print(table(["run", "USD", "× minimum"], [
        ["theoretical minimum (batch + 1 h cached prefix)", f"{minimum:.4f}", "1.00"],
        ["evalkit default (batch, warm-up, caching)", f"{billed:.4f}", f"{billed / minimum:.3f}"],
        ["naive real time, no prompt caching", f"{naive:.4f}", f"{naive / minimum:.2f}"],
    ]))
    print(f"{args.samples} samples × 2 models, simulated token counts, prices as of {pricing.as_of}")


if __name__ == "__main__":
    main()
