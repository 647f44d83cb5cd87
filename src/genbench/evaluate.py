"""`genbench eval`: score a run's samples with a stated protocol, beside the real-data floor.

Every evaluation writes ``<run>/eval/<name>.json`` holding the scores and the whole protocol:
extractor and weights hash, reference set/split/count/fingerprint, number generated, seeds,
solver and NFE, EMA or raw weights, checkpoint step, images seen, training time, versions and
device. The floor is the same metrics between real held-out data and the reference set.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from genbench.errors import GenbenchError

IMAGE_METRICS = ("fid", "kid", "is", "prdc", "modes", "speed")
POINT_METRICS = ("modes", "prdc", "speed")
FID_REFERENCE_N = 10_000


def parse_metrics(text: str | None, data_kind: str, stacked: bool) -> list[str]:
    valid = IMAGE_METRICS if data_kind == "image" else POINT_METRICS
    if text is None:
        default = ["fid", "kid", "is", "prdc"] + (["modes"] if stacked else []) if data_kind == "image" \
            else ["modes", "prdc"]
        return default
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in chosen if m not in valid]
    if bad:
        raise GenbenchError(f"unknown or inapplicable metric(s) {bad} for {data_kind} data",
                            f"choose from {', '.join(valid)}")
    if "modes" in chosen and data_kind == "image" and not stacked:
        raise GenbenchError("the 'modes' metric needs the 2-D sets or stacked Fashion-MNIST",
                            "drop modes from --metrics, or train on data.name=stacked_fashion_mnist")
    return chosen


def image_scores(metrics: list[str], real: np.ndarray, fake: np.ndarray, fake_logits: np.ndarray | None,
                 kid_subset: int = 1000) -> dict:
    from genbench.metrics.fid import fid_from_features, inception_score, kid
    from genbench.metrics.prdc import prdc

    out: dict = {}
    if "fid" in metrics:
        out["fid"] = fid_from_features(real, fake)
    if "kid" in metrics:
        size = min(kid_subset, len(real), len(fake))
        out["kid"], out["kid_std"] = kid(real, fake, subsets=100, subset_size=size)
        out["kid_subset_size"] = size
    if "is" in metrics and fake_logits is not None:
        out["is"], out["is_std"] = inception_score(fake_logits, splits=10)
    if "prdc" in metrics:
        out.update(prdc(real, fake, k_pr=3, k_dc=5))
    return out


def _out_path(run_dir: Path, step: int, solver: str, nfe_tag: str, n: int, seed: int, raw: bool,
              extractor: str) -> Path:
    name = f"eval-step{step}-{solver}{nfe_tag}-n{n}-seed{seed}-{extractor}" + ("-raw" if raw else "")
    return run_dir / "eval" / f"{name}.json"


def evaluate_run(run_dir: Path, checkpoint: int | None = None, metrics: str | None = None, n: int = 10_000,
                 solver: str | None = None, nfe: int | None = None, use_ema: bool = True,
                 batch_size: int | None = None, seed: int = 0, extractor_kind: str | None = None,
                 inception_weights: str | None = None, ref_split: str = "train", floor: bool = True,
                 device: str = "auto", overwrite: bool = False, progress: bool = True,
                 tol: float | None = None) -> tuple[Path, dict]:
    from genbench.run import environment, load_run

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    loaded = load_run(run_dir, checkpoint, device)
    cfg = loaded.cfg
    stacked = cfg.data.name == "stacked_fashion_mnist"
    chosen = parse_metrics(metrics, loaded.data_kind, stacked)
    if n < 2:
        raise GenbenchError(f"-n must be at least 2 (got {n})", "use e.g. -n 10000")
    from genbench.sample_cmd import resolve_solver, solver_options, tol_tag

    solver, nfe_req = resolve_solver(cfg, solver, nfe)
    opts = solver_options(solver, tol)
    from genbench.sampling import resolve_batch_size

    batch_size = resolve_batch_size(batch_size, loaded.device)   # recorded as used

    # everything that can fail cheaply fails before sampling
    extractor = None
    if loaded.data_kind == "image" and set(chosen) & {"fid", "kid", "is", "prdc", "modes"}:
        from genbench.metrics.features import build_extractor, default_extractor_kind

        base = "fashion_mnist" if stacked else cfg.data.name
        kind = extractor_kind or default_extractor_kind(base)
        extractor = build_extractor(kind, base, inception_weights if kind == "inception" else None,
                                    device=str(loaded.device))
        if stacked:
            extractor = ChannelStacked(extractor)
    solver_name = solver or "generator"
    nfe_tag = str(nfe_req or "") + tol_tag(opts)
    out = _out_path(run_dir, loaded.step, solver_name, nfe_tag, n, seed, not use_ema,
                    extractor.name if extractor else "points")
    from genbench import dist

    # rank 0's file system decides, so that all ranks stop, or go on to sample, together
    if dist.broadcast_object(out.exists()) and not overwrite:
        raise GenbenchError(f"{out} already exists", "add --overwrite, or change -n/--seed/--solver")

    from genbench.sample_cmd import generate_sharded

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
    extractor_info = None
    if loaded.data_kind == "points":
        from genbench.data.toy2d import default_std, fixed_toy_set, mode_centers
        from genbench.metrics.modes import toy_mode_stats
        from genbench.metrics.prdc import prdc

        std = cfg.data.std or default_std(cfg.data.name)
        real = fixed_toy_set(cfg.data.name, min(n, cfg.data.n_points), std)
        real_pts = (real[0] if isinstance(real, tuple) else real).double().numpy()
        fake = x.double().numpy()
        if "modes" in chosen:
            scores.update(toy_mode_stats(fake, mode_centers(cfg.data.name).numpy(), std))
        if "prdc" in chosen:
            scores.update(prdc(real_pts, fake))
        reference = {"dataset": cfg.data.name, "split": "train", "n": len(real_pts), "std": std}
        if floor:
            import torch

            from genbench.data.toy2d import sample_toy

            held, _ = sample_toy(cfg.data.name, len(real_pts), std, torch.Generator().manual_seed(12345))
            held = held.double().numpy()
            floor_scores = {}
            if "modes" in chosen:
                floor_scores.update(toy_mode_stats(held, mode_centers(cfg.data.name).numpy(), std))
            if "prdc" in chosen:
                floor_scores.update(prdc(real_pts, held))
    else:
        from genbench.data.transforms import to_uint8
        from genbench.metrics.reference import reference_features

        images = to_uint8(x)
        ref = reference_features(extractor, cfg.data, ref_split, FID_REFERENCE_N if ref_split == "train" else None)
        reference = ref.info
        extractor_info = {"name": extractor.name, "weights_sha256": extractor.weights_sha256}
        fake = extractor.extract(images, batch_size=500)
        if stacked and "modes" in chosen:
            scores.update(extractor.mode_stats(images))
        scores.update(image_scores(chosen, ref.features, fake.features, fake.logits))
        if floor:
            held_split = "test" if ref_split == "train" else "train"
            held = reference_features(extractor, cfg.data, held_split, min(n, FID_REFERENCE_N))
            floor_scores = image_scores([m for m in chosen if m != "modes"], ref.features, held.features,
                                        held.logits)
            floor_scores["split"] = held_split
            floor_scores["n"] = held.info["n"]
        if n < 10_000 and "fid" in chosen:
            warnings.append(f"FID from {n} < 10k samples is biased upwards and not comparable to 10k/50k numbers")
    score_seconds = time.perf_counter() - t_scores
    speed = None
    if "speed" in chosen:
        from genbench.metrics.speed import measure_speed

        speed = measure_speed(loaded.method, nets, loaded.latent_shape, loaded.device, solver, nfe_req)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    record = {
        "genbench_eval": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": cfg.name, "method": cfg.method.kind, "run_dir": str(run_dir),
        "checkpoint": {"step": loaded.step, "images_seen": loaded.images_seen,
                       "train_seconds": info.get("train_seconds")},
        "weights": "ema" if use_ema and loaded.ema is not None else "raw",
        "sampling": {"solver": solver_name, "nfe": nfe, "n": n, "options": opts, "seeds": [seed, seed + n - 1],
                     "batch_size": batch_size, "seconds": sample_seconds, "images_per_s": n / sample_seconds},
        "extractor": extractor_info, "reference": reference, "metrics": scores, "floor": floor_scores,
        "speed": speed, "warnings": warnings,
        "timing": {"sampling_s": sample_seconds, "scoring_s": score_seconds,
                   "total_s": time.perf_counter() - t_start}, "params": info.get("params"), "environment": environment(),
    }
    from genbench.train.checkpoint import atomic_write_bytes

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, (json.dumps(record, indent=2) + "\n").encode())
    except OSError as err:
        raise GenbenchError(f"cannot write {out}: {err.strerror}", "make the run directory writable") from None
    return out, record


class ChannelStacked:
    """A 1-channel extractor applied to each channel of stacked images, features concatenated.

    Logits are not defined for the stack (no Inception-Score-style score); ``mode_stats``
    classifies each channel and counts the 1000 (a, b, c) class triples.
    """

    def __init__(self, base):
        self.base = base
        self.name = f"stacked3-{base.name}"
        self.weights_sha256 = base.weights_sha256
        self.feature_dim = 3 * base.feature_dim

    def extract(self, images, batch_size: int = 500):
        flat = self.base.extract(images.reshape(-1, 1, *images.shape[2:]), batch_size)
        flat.features = flat.features.reshape(len(images), -1)
        flat.logits = None
        return flat

    def mode_stats(self, images) -> dict:
        from genbench.metrics.modes import stacked_mode_stats

        logits = self.base.extract(images.reshape(-1, 1, *images.shape[2:]), batch_size=500).logits
        return stacked_mode_stats(logits.argmax(1).reshape(len(images), 3))


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
    from genbench import dist
    from genbench.sample_cmd import DOPRI5_TOL
    from genbench.solvers import allowed_nfe

    run_dir = Path(run_dir)
    curves: dict[str, list[dict]] = {}
    for solver in solvers:
        points = []
        counts = [None] if solver == "dopri5" else [k for k in nfes if allowed_nfe(solver, k)]
        for nfe in counts:
            try:
                _, rec = evaluate_run(run_dir, metrics=metrics, n=n, seed=seed, solver=solver, nfe=nfe,
                                      floor=False, tol=tol if solver == "dopri5" else None, **kwargs)
            except GenbenchError as err:
                if "already exists" not in err.problem:
                    raise
                rec = json.loads(Path(err.problem.split(" already exists")[0]).read_text()) if dist.is_main() else {}
            if not rec:   # a rank other than 0: it only sampled
                continue
            scores = {k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))}
            points.append({"nfe": rec["sampling"]["nfe"], **scores, "images_per_s": rec["sampling"]["images_per_s"],
                           **({"tol": tol or DOPRI5_TOL} if solver == "dopri5" else {})})
        curves[solver + (f"-tol{tol:g}" if solver == "dopri5" and tol else "")] = points
    out = run_dir / "eval" / f"sweep-n{n}-seed{seed}.json"
    if not dist.is_main():
        return out, {}
    merged = json.loads(out.read_text())["curves"] if out.exists() else {}
    for key, points in curves.items():  # a later sweep adds NFE counts to a curve, replacing equal ones
        by_nfe = {p["nfe"]: p for p in merged.get(key, [])} | {p["nfe"]: p for p in points}
        merged[key] = [by_nfe[k] for k in sorted(by_nfe)]
    record = {"genbench_sweep": 1, "n": n, "seed": seed, "metrics": metrics, "curves": merged}
    from genbench.train.checkpoint import atomic_write_bytes

    atomic_write_bytes(out, (json.dumps(record, indent=2) + "\n").encode())
    return out, record
