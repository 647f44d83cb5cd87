"""Print the FID-vs-NFE tables of `genbench eval RUN --nfe-sweep` results as Markdown.

Usage: .venv/bin/python benchmarks/sweep_table.py RUN [RUN ...]   (reads RUN/eval/sweep-*.json)

For each run and sample count n: one row per solver, one column per NFE (FID; KID below it in
the JSON), then the dopri5 reference(s) at that n, and each solver's FID at 10 and 20 NFE as a
ratio of the tightest-tolerance dopri5 FID (the issue's targets: <= 1.25 at 10 NFE, <= 1.05 at 20
NFE for diffusion; <= 1.25 at 10 NFE for flow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def reference(curves: dict) -> tuple[str, dict] | None:
    """The dopri5 curve with the tightest tolerance, and its one point."""
    refs = [(p.get("tol", 1e-5), key, p) for key, pts in curves.items() if key.startswith("dopri5") for p in pts]
    if not refs:
        return None
    _, key, point = min(refs, key=lambda r: r[0])
    return key, point


def table(run: str, path: Path) -> None:
    rec = json.loads(path.read_text())
    curves = {k: v for k, v in rec["curves"].items() if v}
    fixed = {k: {p["nfe"]: p for p in v} for k, v in curves.items() if not k.startswith("dopri5")}
    nfes = sorted({n for pts in fixed.values() for n in pts})
    print(f"\n**{Path(run).name}**, n = {rec['n']} (seeds {rec['seed']}..{rec['seed'] + rec['n'] - 1}), "
          f"FID by NFE\n")
    if fixed:
        print("| solver | " + " | ".join(str(n) for n in nfes) + " |")
        print("|---|" + "---|" * len(nfes))
        for solver, pts in fixed.items():
            print(f"| {solver} | " + " | ".join(f"{pts[n]['fid']:.2f}" if n in pts else "" for n in nfes) + " |")
    for key, pts in curves.items():
        if key.startswith("dopri5"):
            for p in pts:
                print(f"\n{key} (rtol = atol = {p.get('tol', 1e-5):g}): FID {p['fid']:.2f} at {p['nfe']} NFE "
                      f"(per batch of 256), KID {p.get('kid', float('nan')):.4f}")
    ref = reference(curves)
    if ref and fixed:
        key, point = ref
        rows = [(s, n, pts[n]["fid"] / point["fid"]) for s, pts in fixed.items() for n in (10, 20) if n in pts]
        if rows:
            print(f"\nFID / {key} FID: " + "; ".join(f"{s} @ {n}: {r:.3f}" for s, n, r in rows))


def main(runs: list[str]) -> None:
    for run in runs:
        paths = sorted(Path(run, "eval").glob("sweep-n*-seed*.json"),
                       key=lambda p: -int(p.name.split("-n")[1].split("-")[0]))
        for path in paths:
            table(run, path)


if __name__ == "__main__":
    main(sys.argv[1:])
