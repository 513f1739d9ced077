"""Early stopping: samples used by --sequential (looks every 100, O'Brien–Fleming) vs a fixed 500,
on seeded scenarios, by simulating the paired outcomes and applying evalkit's own decision functions.
    python bench/early_stopping.py [--trials 2000]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _common import REPO, table

sys.path.insert(0, str(REPO))


def main() -> None:
    from scipy import stats

    from evalkit.stats.decision import tango_statistic
    from evalkit.stats.sequential import group_sequential_bounds, looks_every

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_max, margin, alpha = 500, 0.05, 0.05
    looks = looks_every(n_max, 100)
    bounds = group_sequential_bounds([n / n_max for n in looks], alpha)
    z = stats.norm.ppf(1 - alpha)
    scenarios = [("clear GO (gap 0)", 0.02, 0.02), ("GO side (gap 1%)", 0.03, 0.02),
                 ("borderline (gap 4%)", 0.06, 0.02),
                 ("at the margin (gap 5%)", 0.07, 0.02), ("NO-GO side (gap 9%)", 0.11, 0.02),
                 ("clear NO-GO (gap 15%)", 0.17, 0.02)]
    rows = []
    for name, pb, pc in scenarios:
        used, go, nogo, fixed_go, fixed_nogo = [], 0, 0, 0, 0
        for _ in range(args.trials):
            # 0: only the reference right, 1: only the candidate right
            cells = rng.choice(3, size=n_max, p=[pb, pc, 1 - pb - pc])
            b_cum, c_cum = np.cumsum(cells == 0), np.cumsum(cells == 1)
            verdict, stop = "INCONCLUSIVE", n_max
            for n_k, c_k in zip(looks, bounds, strict=True):
                t = tango_statistic(b_cum[n_k - 1], c_cum[n_k - 1], n_k, margin)
                if t <= -c_k or t >= c_k:
                    verdict, stop = ("GO" if t <= -c_k else "NO-GO"), n_k
                    break
            used.append(stop)
            go += verdict == "GO"
            nogo += verdict == "NO-GO"
            t = tango_statistic(b_cum[-1], c_cum[-1], n_max, margin)
            fixed_go += t <= -z
            fixed_nogo += t >= z
        rows.append([name, f"{fixed_go / args.trials:.3f}/{fixed_nogo / args.trials:.3f}/500",
                     f"{go / args.trials:.3f}/{nogo / args.trials:.3f}/{np.mean(used):.0f}",
                     f"{1 - np.mean(used) / n_max:.0%}"])
    print(table(["scenario (gold mode, P(cand-only right)=0.02)", "fixed 500: P(GO)/P(NO-GO)/N",
                 "sequential: P(GO)/P(NO-GO)/E[N]", "samples saved"], rows))
    print(f"{args.trials} seeded trials each; looks at {looks}, boundaries {[round(b, 3) for b in bounds]}")


if __name__ == "__main__":
    main()
