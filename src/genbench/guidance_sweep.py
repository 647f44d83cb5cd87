"""`genbench eval RUN --guidance-sweep W1,W2,...`: a conditional model's scores against the guidance scale.

Each point is an ordinary evaluation (its own JSON, reused if present) at scale w, with labels balanced over
the trained classes by seed; the curve goes to ``<run>/eval/guidance-n<N>-seed<S>-<solver><nfe>.json`` with the
best w for each metric. FID and an IS-style score need not agree on the best w (Ho & Salimans 2022, Table 1:
on CIFAR-10 FID is best at a small scale, IS at a larger one), which is the point of sweeping.
"""

from __future__ import annotations

import math
from pathlib import Path

from genbench import dist
from genbench.errors import GenbenchError
from genbench.files import read_json, write_json

# the scores a sweep reports, and whether lower is better
SWEPT = {"fid": True, "kid": True, "class_fid": True, "is": False, "precision": False, "recall": False,
         "density": False, "coverage": False, "consistency": False}
SWEEP_FIX = "delete the damaged guidance-sweep JSON, or rerun with --overwrite"


def parse_scales(text: str) -> list[float]:
    try:
        scales = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise GenbenchError(f"--guidance-sweep {text!r} is not a comma list of numbers",
                            "e.g. --guidance-sweep 1,1.5,2,3,5") from None
    if not scales or any(not math.isfinite(w) or w < 0 for w in scales) or len(set(scales)) != len(scales):
        raise GenbenchError(f"--guidance-sweep {text}: scales must be distinct finite numbers >= 0",
                            "e.g. --guidance-sweep 1,1.5,2,3,5 (1 = the conditional model)")
    return sorted(scales)


def point_scores(record: dict) -> dict:
    """The swept scores of one evaluation record (nested class scores included, e.g. consistency)."""
    metrics = record.get("metrics") or {}
    out = {k: v for k, v in metrics.items() if k in SWEPT and isinstance(v, (int, float))}
    for value in metrics.values():
        if isinstance(value, dict):
            out.update({k: v for k, v in value.items() if k in SWEPT and k not in out and isinstance(v, (int, float))})
    return out


def best_scales(points: list[dict]) -> dict:
    """For each swept score present, the scale w that gives its best value."""
    best = {}
    for key, lower in SWEPT.items():
        have = [p for p in points if isinstance(p.get(key), (int, float)) and math.isfinite(p[key])]
        if have:
            pick = min(have, key=lambda p: p[key]) if lower else max(have, key=lambda p: p[key])
            best[key] = {"w": pick["w"], "value": pick[key]}
    return best


def guidance_sweep(run_dir: Path, scales: list[float], n: int = 2000, seed: int = 0,
                   metrics: str = "fid,is,prdc,classes", solver: str | None = None, nfe: int | None = None,
                   guidance_interval: str | None = None, **kwargs) -> tuple[Path, dict]:
    """Evaluate ``run_dir`` at every scale of ``scales`` and write the curve (rank 0 returns it)."""
    from genbench.evaluate import evaluate_run

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise GenbenchError(f"{run_dir} is not a genbench run: --guidance-sweep needs a conditional run",
                            "give a run directory trained with conditional=true")
    points = []
    record0: dict = {}
    for w in scales:
        _, rec = evaluate_run(run_dir, metrics=metrics, n=n, seed=seed, solver=solver, nfe=nfe, floor=False,
                              reuse=True, guidance=w, guidance_interval=guidance_interval, **kwargs)
        if not rec:   # a rank other than 0: it only sampled
            continue
        record0 = record0 or rec
        points.append({"w": w, "nfe": rec["sampling"]["nfe"], **point_scores(rec),
                       "images_per_s": rec["sampling"]["images_per_s"]})
    tag = f"{record0.get('sampling', {}).get('solver', 'default')}" if record0 else "default"
    interval = f"-wi{guidance_interval.replace(',', '_')}" if guidance_interval else ""
    out = run_dir / "eval" / f"guidance-n{n}-seed{seed}-{tag}{nfe or ''}{interval}.json"
    if not dist.is_main():
        return out, {}
    if out.exists():
        old = read_json(out, SWEEP_FIX, "guidance sweep")
        if not isinstance(old.get("points"), list):
            raise GenbenchError(f"guidance sweep {out} is damaged: no 'points'", SWEEP_FIX)
        by_w = {p["w"]: p for p in old["points"] if isinstance(p, dict) and "w" in p} | {p["w"]: p for p in points}
        points = [by_w[w] for w in sorted(by_w)]
    record = {"genbench_guidance_sweep": 1, "run": run_dir.name, "n": n, "seed": seed, "metrics": metrics,
              "solver": tag, "nfe_requested": nfe, "interval_sigma": guidance_interval,
              "convention": "D_u + w (D_c - D_u); w = 1 conditional, w = 0 unconditional",
              "points": points, "best": best_scales(points)}
    write_json(out, record)
    return out, record
