"""`genbench eval`: score a run's samples with a stated protocol, beside the real-data floor.

Every evaluation writes ``<run>/eval/<name>.json`` holding the scores and the whole protocol:
extractor and weights hash, reference set/split/count/fingerprint, number generated, seeds,
solver and NFE, EMA or raw weights, checkpoint step, images seen, training time, versions and
device. The floor is the same metrics between real held-out data and the reference set.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from genbench import dist
from genbench.errors import GenbenchError
from genbench.files import environment, read_json, write_json
from genbench.limits import check_sample_count, check_sample_memory
from genbench.metrics.extractors import STACKED
from genbench.metrics.protocol import EXTRACTOR_METRICS, FID_REFERENCE_N, ImageProtocol, PointProtocol
from genbench.run import load_run
from genbench.sampling import (
    DOPRI5_TOL,
    check_seeds,
    generate_sharded,
    options_tag,
    resolve_batch_size,
    resolve_solver,
    solver_options,
)
from genbench.solvers import allowed_nfe

IMAGE_METRICS = ("fid", "kid", "is", "prdc", "modes", "speed")
# what a reused evaluation must hold (format_record and nfe_sweep read these)
RECORD_KEYS = {"run": str, "checkpoint": dict, "weights": str, "sampling": dict, "metrics": dict, "warnings": list}
EVAL_FIX = "delete the damaged file: the evaluation is then made again (or add --overwrite)"


def read_eval_record(path: Path) -> dict:
    """An existing evaluation JSON, refused in one line (naming the file) if damaged or foreign."""
    record = read_json(path, EVAL_FIX, "evaluation")
    bad = [k for k, kind in RECORD_KEYS.items() if not isinstance(record.get(k), kind)]
    sampling = record.get("sampling") if isinstance(record.get("sampling"), dict) else {}
    bad += [f"sampling.{k}" for k in ("n", "nfe", "images_per_s", "solver") if k not in sampling]
    checkpoint = record.get("checkpoint") if isinstance(record.get("checkpoint"), dict) else {}
    bad += ["floor"] * ("floor" not in record) + ["checkpoint.step"] * ("step" not in checkpoint)
    if bad or "genbench_eval" not in record:
        raise GenbenchError(f"evaluation {path} is damaged or not a genbench evaluation (missing or wrong: "
                            f"{', '.join(bad) or 'genbench_eval'})", EVAL_FIX)
    return record
POINT_METRICS = ("modes", "prdc", "speed")


def parse_metrics(text: str | None, data_kind: str, stacked: bool) -> list[str]:
    valid = IMAGE_METRICS if data_kind == "image" else POINT_METRICS
    if text is None:
        default = ["fid", "kid", "is", "prdc"] + (["modes"] if stacked else []) if data_kind == "image" \
            else ["modes", "prdc"]
        return default
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    if not chosen:
        raise GenbenchError(f"--metrics {text!r} names no metric", f"give a comma list from {', '.join(valid)}, "
                            "or leave --metrics out for the default")
    bad = [m for m in chosen if m not in valid]
    if bad:
        raise GenbenchError(f"unknown or inapplicable metric(s) {bad} for {data_kind} data",
                            f"choose from {', '.join(valid)}")
    if "modes" in chosen and data_kind == "image" and not stacked:
        raise GenbenchError("the 'modes' metric needs the 2-D sets or stacked Fashion-MNIST",
                            "drop modes from --metrics, or train on data.name=stacked_fashion_mnist")
    return chosen


def _out_path(run_dir: Path, step: int, solver: str, nfe_tag: str, n: int, seed: int, raw: bool,
              extractor: str) -> Path:
    name = f"eval-step{step}-{solver}{nfe_tag}-n{n}-seed{seed}-{extractor}" + ("-raw" if raw else "")
    return run_dir / "eval" / f"{name}.json"


def evaluate_run(run_dir: Path, checkpoint: int | None = None, metrics: str | None = None, n: int = 10_000,
                 solver: str | None = None, nfe: int | None = None, use_ema: bool = True,
                 batch_size: int | None = None, seed: int = 0, extractor_kind: str | None = None,
                 inception_weights: str | None = None, ref_split: str = "train", floor: bool = True,
                 device: str = "auto", overwrite: bool = False, progress: bool = True,
                 tol: float | None = None, reuse: bool = False, clip: str | None = None) -> tuple[Path, dict]:
    """Sample the run and score it (:mod:`genbench.metrics.protocol`); returns the JSON's path and record.

    An evaluation whose file already exists is refused, unless ``overwrite`` (evaluate again) or
    ``reuse`` (return the existing record instead). Under torchrun all ranks sample and rank 0
    alone scores, writes and returns the record; the other ranks get ``(path, {})``.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    loaded = load_run(run_dir, checkpoint, device)
    cfg = loaded.cfg
    stacked = cfg.data.name in STACKED
    chosen = parse_metrics(metrics, loaded.data_kind, stacked)
    if n < 2:
        raise GenbenchError(f"-n must be at least 2 (got {n})", "use e.g. -n 10000")
    check_sample_count(n)
    check_seeds(seed, n)
    # images: Inception's 2048 features and 1008 logits per sample, in float32 (12 KiB)
    check_sample_memory(n, loaded.data_shape, per_sample_extra=12 * 1024 if loaded.data_kind == "image" else 0)
    solver, nfe_req = resolve_solver(cfg, solver, nfe)
    opts = solver_options(solver, tol, cfg.sample.clip if clip is None else clip, loaded.data_kind)
    batch_size = resolve_batch_size(batch_size, loaded.device)   # recorded as used

    # everything that can fail cheaply (the extractor's weights, say) fails before sampling
    protocol: ImageProtocol | PointProtocol | None = None
    if loaded.data_kind == "points":
        protocol = PointProtocol(cfg.data, ref_n=min(n, cfg.data.n_points))
    elif set(chosen) & set(EXTRACTOR_METRICS):
        protocol = ImageProtocol.for_data(cfg.data, loaded.device, extractor_kind, inception_weights,
                                          ref_split=ref_split, ref_n=FID_REFERENCE_N if ref_split == "train" else None)
    solver_name = solver or "generator"
    nfe_tag = str(nfe_req or "") + options_tag(opts)
    out = _out_path(run_dir, loaded.step, solver_name, nfe_tag, n, seed, not use_ema,
                    protocol.tag if protocol else "no-extractor")   # images scored for speed only
    # rank 0's file system decides, so that all ranks stop, or go on to sample, together
    if dist.broadcast_object(out.exists()) and not overwrite:
        if reuse:
            return out, read_eval_record(out) if dist.is_main() else {}
        raise GenbenchError(f"{out} already exists", "add --overwrite, or change -n/--seed/--solver")

    info = read_json(run_dir / "run.json", RUN_JSON_FIX) if (run_dir / "run.json").exists() else {}
    nets = loaded.sampling_nets(use_ema)
    t0 = time.perf_counter()
    # under torchrun the seeds are shared out and the samples gathered: rank 0 alone scores
    x, nfe = generate_sharded(loaded.method, nets, loaded.latent_shape, list(range(seed, seed + n)),
                              loaded.device, batch_size, solver, nfe_req, **opts)
    sample_seconds = time.perf_counter() - t0
    if x is None:
        return out, {}
    t_scores = time.perf_counter()
    warnings: list[str] = []
    scores: dict = {}
    floor_scores: dict | None = None
    reference: dict = {}
    if protocol is not None:
        scores = protocol.scores(chosen, x)
        reference = protocol.reference_info
        if floor:
            floor_scores = protocol.floor(chosen, n)
    if n < 10_000 and "fid" in chosen:
        warnings.append(f"FID from {n} < 10k samples is biased upwards and not comparable to 10k/50k numbers")
    score_seconds = time.perf_counter() - t_scores
    speed = None
    if "speed" in chosen:
        from genbench.metrics.speed import measure_speed

        speed = measure_speed(loaded.method, nets, loaded.latent_shape, loaded.device, solver, nfe_req)
    record = {
        "genbench_eval": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": cfg.name, "method": cfg.method.kind, "run_dir": str(run_dir),
        "checkpoint": {"step": loaded.step, "images_seen": loaded.images_seen,
                       "train_seconds": info.get("train_seconds")},
        "weights": "ema" if use_ema and loaded.ema is not None else "raw",
        "sampling": {"solver": solver_name, "nfe": nfe, "n": n, "options": opts, "seeds": [seed, seed + n - 1],
                     "batch_size": batch_size, "seconds": sample_seconds, "images_per_s": n / sample_seconds},
        "extractor": protocol.extractor_info if protocol else None, "reference": reference, "metrics": scores,
        "floor": floor_scores, "speed": speed, "warnings": warnings,
        "timing": {"sampling_s": sample_seconds, "scoring_s": score_seconds,
                   "total_s": time.perf_counter() - t_start}, "params": info.get("params"), "environment": environment(),
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, record)
    except OSError as err:
        raise GenbenchError(f"cannot write {out}: {err.strerror}", "make the run directory writable") from None
    return out, record


def format_record(record: dict) -> str:
    """A few human-readable lines for the terminal."""
    def fmt(d: dict | None) -> str:
        if not d:
            return "-"
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items()
                         if not k.endswith("_std") and k not in ("kid_subset_size",))

    s = record["sampling"]
    lines = [f"{record['run']} step {record['checkpoint']['step']} ({record['weights']}), {s['n']} samples, "
             f"{s['solver']} NFE {s['nfe']}, {s['images_per_s']:.1f} img/s sampling",
             f"  model: {fmt(record['metrics'])}",
             f"  floor: {fmt(record['floor'])}"]
    if record.get("speed"):
        sp = record["speed"]
        lines.append(f"  speed: latency {sp['latency_s'] * 1000:.1f} ms/image (batch 1), {sp['images_per_s']:.1f} "
                     f"img/s at batch {sp['best_batch_size']}, NFE {sp['nfe']}, {sp['device']}")
    lines += [f"  warning: {w}" for w in record["warnings"]]
    return "\n".join(lines)


RUN_JSON_FIX = ("restore it from a copy, or delete it: run.json only records the run's provenance and "
                "status, the checkpoints are intact")
SWEEP_FIX = "delete the damaged file: the sweep's points are reused from eval/*.json and the curve written again"


def _read_sweep(path: Path) -> dict:
    """An existing NFE-sweep JSON, refused in one line (naming the file) if damaged."""
    record = read_json(path, SWEEP_FIX, "NFE sweep")
    curves = record.get("curves")
    if not (isinstance(curves, dict) and all(isinstance(v, list) and all(isinstance(p, dict) and "nfe" in p for p in v)
                                             for v in curves.values())):
        raise GenbenchError(f"NFE sweep {path} is damaged: no 'curves' of points with an 'nfe'", SWEEP_FIX)
    return record


SWEEP_NFE = (1, 2, 4, 8, 10, 16, 20, 32, 50, 100, 250, 1000)


def nfe_sweep(run_dir: Path, solvers: list[str], nfes: tuple[int, ...] = SWEEP_NFE, n: int = 2000,
              seed: int = 0, metrics: str = "fid,kid", tol: float | None = None, **kwargs) -> tuple[Path, dict]:
    """FID (and KID) against NFE for each solver, at the counts each solver can make exactly.

    Each point is an ordinary evaluation (its own JSON with the protocol, reused if present); the
    curve is written to ``<run>/eval/sweep-n<N>-seed<S>.json``. dopri5 contributes one point at
    the NFE its tolerance ``tol`` (rtol = atol; default 1e-5) leads to, under the key ``dopri5``, or
    ``dopri5-tol<tol>`` for another tolerance.

    Under torchrun every point is sampled by all ranks (seeds shared out) and scored by rank 0,
    which alone writes and returns the curve; the other ranks get ``(path, {})``.
    """
    run_dir = Path(run_dir)
    if not nfes or any(k < 1 for k in nfes):
        raise GenbenchError(f"NFE counts must each be at least 1 (got {list(nfes)})", "e.g. --nfe-list 2,4,8,16")
    curves: dict[str, list[dict]] = {}
    for solver in solvers:
        points, clip = [], None
        counts = [None] if solver == "dopri5" else [k for k in nfes if allowed_nfe(solver, k)]
        for nfe in counts:
            _, rec = evaluate_run(run_dir, metrics=metrics, n=n, seed=seed, solver=solver, nfe=nfe, floor=False,
                                  tol=tol if solver == "dopri5" else None, reuse=True, **kwargs)
            if not rec:   # a rank other than 0: it only sampled
                continue
            clip = (rec["sampling"].get("options") or {}).get("clip")   # the run's sample.clip, or --clip
            scores = {k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))}
            points.append({"nfe": rec["sampling"]["nfe"], **scores, "images_per_s": rec["sampling"]["images_per_s"],
                           **({"tol": tol or DOPRI5_TOL} if solver == "dopri5" else {})})
        curves[solver + (f"-tol{tol:g}" if solver == "dopri5" and tol else "")
               + (f"-clip{clip}" if clip not in (None, "none") else "")] = points
    out = run_dir / "eval" / f"sweep-n{n}-seed{seed}.json"
    if not dist.is_main():
        return out, {}
    merged = _read_sweep(out)["curves"] if out.exists() else {}
    for key, points in curves.items():  # a later sweep adds NFE counts to a curve, replacing equal ones
        by_nfe = {p["nfe"]: p for p in merged.get(key, [])} | {p["nfe"]: p for p in points}
        merged[key] = [by_nfe[k] for k in sorted(by_nfe)]
    record = {"genbench_sweep": 1, "n": n, "seed": seed, "metrics": metrics, "curves": merged}
    write_json(out, record)
    return out, record
