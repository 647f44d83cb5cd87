"""D's overfitting signal over a GAN run: E[sign D(real)] (ADA's r_t, Karras et al. 2020) averaged over 10
logged values around 10% and 50% of the log and over its last 10, and the largest logged ADA p.

Usage: python benchmarks/d_sign_trace.py RUN [RUN ...]   (the runs' metrics.jsonl)
"""

from __future__ import annotations

import sys
from pathlib import Path

from genbench.report.collect import read_log


def trace(run: Path) -> str:
    rows = [r for r in read_log(run / "metrics.jsonl") if "D_sign_real" in r]
    if not rows:
        return f"{run}: no D_sign_real logged"
    n = len(rows)

    def mean(lo: int, hi: int) -> float:
        part = [r["D_sign_real"] for r in rows[max(lo, 0):max(hi, 1)]]
        return sum(part) / len(part)

    p = max((r["ada_p"] for r in rows if "ada_p" in r), default=None)
    return (f"{run}: {n} logs, E[sign D(real)] 10% {mean(n // 10 - 5, n // 10 + 5):.3f} 50% "
            f"{mean(n // 2 - 5, n // 2 + 5):.3f} end {mean(n - 10, n):.3f}"
            + ("" if p is None else f", ADA p largest {p:.3f}"))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        print(trace(Path(arg)))
