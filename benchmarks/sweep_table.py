"""Print the FID-vs-NFE table of `genbench eval RUN --nfe-sweep` results as Markdown.

Usage: .venv/bin/python benchmarks/sweep_table.py RUN [RUN ...]   (reads RUN/eval/sweep-*.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(runs: list[str]) -> None:
    for run in runs:
        for path in sorted(Path(run, "eval").glob("sweep-*.json")):
            rec = json.loads(path.read_text())
            curves = rec["curves"]
            ref = next((p["fid"] for p in curves.get("dopri5", [])), None)
            print(f"\n**{Path(run).name}** ({path.name}: n={rec['n']}, seeds {rec['seed']}..{rec['seed'] + rec['n'] - 1})\n")
            print("| solver | NFE | FID | FID / dopri5 FID | images/s |")
            print("|---|---|---|---|---|")
            for solver, points in curves.items():
                for p in points:
                    ratio = f"{p['fid'] / ref:.3f}" if ref else "-"
                    print(f"| {solver} | {p['nfe']} | {p['fid']:.3f} | {ratio} | {p['images_per_s']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
