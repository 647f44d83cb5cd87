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

import torch

from genbench import dist
from genbench.classes import conditional_info, guidance_tag, labels_for, make_guidance
from genbench.errors import GenbenchError
from genbench.external import detect
from genbench.files import environment, read_json, write_json
from genbench.limits import check_sample_count, check_sample_memory
from genbench.metrics.classes import summary as class_summary
from genbench.metrics.extractors import STACKED
from genbench.metrics.protocol import (
    EXTRACTOR_METRICS,
    FID_REFERENCE_N,
    MEMORISATION_INFO,
    MIN_SAMPLES,
    ImageProtocol,
    PointProtocol,
)
from genbench.run import LoadedRun, load_run
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

IMAGE_METRICS = ("fid", "kid", "is", "prdc", "modes", "memorisation", "classes", "class_fid", "speed")
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
                 tol: float | None = None, reuse: bool = False, clip: str | None = None,
                 class_text: str | None = None, guidance: float | None = None,
                 guidance_interval: str | None = None) -> tuple[Path, dict]:
    """Sample the run and score it (:mod:`genbench.metrics.protocol`); returns the JSON's path and record.

    An evaluation whose file already exists is refused, unless ``overwrite`` (evaluate again) or
    ``reuse`` (return the existing record instead). Under torchrun all ranks sample and rank 0
    alone scores, writes and returns the record; the other ranks get ``(path, {})``.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    loaded = load_run(run_dir, checkpoint, device)
    return evaluate_model(loaded, run_dir, metrics=metrics, n=n, solver=solver, nfe=nfe, use_ema=use_ema,
                          batch_size=batch_size, seed=seed, extractor_kind=extractor_kind,
                          inception_weights=inception_weights, ref_split=ref_split, floor=floor,
                          overwrite=overwrite, tol=tol, reuse=reuse, clip=clip, t_start=t_start,
                          class_text=class_text, guidance=guidance, guidance_interval=guidance_interval)


def evaluate_model(loaded: LoadedRun, run_dir: Path, metrics: str | None = None, n: int | None = 10_000,
                   solver: str | None = None, nfe: int | None = None, use_ema: bool = True,
                   batch_size: int | None = None, seed: int = 0, extractor_kind: str | None = None,
                   inception_weights: str | None = None, ref_split: str = "train", floor: bool = True,
                   overwrite: bool = False, tol: float | None = None, reuse: bool = False,
                   clip: str | None = None, t_start: float | None = None, grid_dir: Path | None = None,
                   class_text: str | None = None, guidance: float | None = None,
                   guidance_interval: str | None = None, **_ignored) -> tuple[Path, dict]:
    """:func:`evaluate_run` of a loaded model (a run's, or one from outside genbench: ``loaded.source``),
    writing into ``run_dir/eval``; ``grid_dir`` also gets a grid of the first 64 samples."""
    t_start = time.perf_counter() if t_start is None else t_start
    n = 10_000 if n is None else n
    cfg = loaded.cfg
    stacked = cfg.data.name in STACKED
    chosen = parse_metrics(metrics, loaded.data_kind, stacked)
    if n < 2:
        raise GenbenchError(f"-n must be at least 2 (got {n})", "use e.g. -n 10000")
    if loaded.source is not None:
        check_min_samples(chosen, n, f"-n {n}")
    check_sample_count(n)
    check_seeds(seed, n)
    # images: Inception's 2048 features and 1008 logits per sample, in float32 (12 KiB)
    check_sample_memory(n, loaded.data_shape, per_sample_extra=12 * 1024 if loaded.data_kind == "image" else 0)
    solver, nfe_req = resolve_solver(cfg, solver, nfe)
    opts = solver_options(solver, tol, cfg.sample.clip if clip is None else clip, loaded.data_kind)
    batch_size = resolve_batch_size(batch_size, loaded.device)   # recorded as used
    seeds = list(range(seed, seed + n))
    labels, asked = labels_for(loaded, seeds, class_text)   # a conditional model's: per seed, balanced by default
    guided = make_guidance(loaded, guidance, guidance_interval)
    if guided is not None:
        opts["guidance"] = guided

    # everything that can fail cheaply (the extractor's weights, say) fails before sampling
    protocol: ImageProtocol | PointProtocol | None = None
    if loaded.data_kind == "points":
        protocol = PointProtocol(cfg.data, ref_n=min(n, cfg.data.n_points))
    elif set(chosen) & set(EXTRACTOR_METRICS):
        protocol = ImageProtocol.for_data(cfg.data, loaded.device, extractor_kind, inception_weights,
                                          ref_split=ref_split, ref_n=FID_REFERENCE_N if ref_split == "train" else None)
        protocol.check(chosen, labelled=labels is not None)   # class metrics it cannot compute, before sampling
    solver_name = solver or "generator"
    nfe_tag = str(nfe_req or "") + options_tag(opts) + guidance_tag(guided, asked)
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
    x, nfe = generate_sharded(loaded.method, nets, loaded.latent_shape, seeds, loaded.device, batch_size, solver,
                              nfe_req, labels=labels, **opts)
    sample_seconds = time.perf_counter() - t0
    if x is None:
        return out, {}
    if grid_dir is not None:
        write_grid(grid_dir, x[:GRID_N])
    t_scores = time.perf_counter()
    warnings: list[str] = []
    scores: dict = {}
    floor_scores: dict | None = None
    reference: dict = {}
    if protocol is not None:
        scores = protocol.scores(chosen, x, labels=labels)
        reference = protocol.reference_info
        if floor:
            floor_scores = protocol.floor(chosen, n)
    if n < 10_000 and "fid" in chosen:
        warnings.append(f"FID from {n} < 10k samples is biased upwards and not comparable to 10k/50k numbers")
    score_seconds = time.perf_counter() - t_scores
    speed = None
    if "speed" in chosen:
        from genbench.metrics.speed import measure_speed

        speed = measure_speed(loaded.method, nets, loaded.latent_shape, loaded.device, solver, nfe_req,
                              classes=sorted(set(labels)) if labels else None, **opts)
    record = {
        "genbench_eval": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": cfg.name, "method": cfg.method.kind, "run_dir": str(run_dir),
        "checkpoint": {"step": loaded.step, "images_seen": loaded.images_seen,
                       "train_seconds": info.get("train_seconds")},
        "weights": "ema" if use_ema and loaded.ema is not None else "raw",
        "sampling": {"solver": solver_name, "nfe": nfe, "n": n, "options": {k: v for k, v in opts.items()
                                                                           if k != "guidance"},
                     "seeds": [seed, seed + n - 1], "conditional": conditional_info(loaded, labels, guided),
                     "batch_size": batch_size, "seconds": sample_seconds, "images_per_s": n / sample_seconds},
        "extractor": protocol.extractor_info if protocol else None, "reference": reference, "metrics": scores,
        "floor": floor_scores, "speed": speed, "warnings": warnings,
        "timing": {"sampling_s": sample_seconds, "scoring_s": score_seconds,
                   "total_s": time.perf_counter() - t_start}, "params": info.get("params"), "environment": environment(),
    }
    if "memorisation" in chosen:
        record["memorisation"] = MEMORISATION_INFO
    if loaded.source is not None:   # a model from outside genbench: its own description and counters
        src = loaded.source
        record.update(source=src, weights=src.get("weights") or "as saved",
                      # unknown counters are left out (the report reads a missing one as unknown)
                      checkpoint={"step": src.get("step"), **{k: src[k] for k in ("images_seen", "train_seconds")
                                                               if src.get(k) is not None}},
                      params={"model": src["params"]} if src.get("params") else None)
    write_record(out, record, "make the run directory writable")
    return out, record


def write_record(path: Path, record: dict, fix: str) -> None:
    """An evaluation record, written atomically into its (created) folder; a refusal of the file system
    in one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
    except OSError as err:
        raise GenbenchError(f"cannot write {path}: {err.strerror}", fix) from None


def format_record(record: dict) -> str:
    """A few human-readable lines for the terminal."""
    def fmt(d: dict | None) -> str:
        if not d:
            return "-"
        return ", ".join(class_summary(k, v) if isinstance(v, dict) else f"{k} {v:.4g}" if isinstance(v, float)
                         else f"{k} {v}" for k, v in d.items() if not k.endswith("_std") and k not in ("kid_subset_size",))

    s = record["sampling"]
    if s.get("images_per_s") is None:   # samples made outside genbench
        head = f"{record['run']}: {s['n']} samples from {(record.get('source') or {}).get('path', '?')}"
    else:
        head = (f"{record['run']} step {record['checkpoint']['step']} ({record['weights']}), {s['n']} samples, "
                f"{s['solver']} NFE {s['nfe']}, {s['images_per_s']:.1f} img/s sampling")
    lines = [head,
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
    which alone writes and returns the curve; the other ranks get ``(path, {})``. ``run_dir`` may
    also be a model from outside genbench (:func:`evaluate_path`): the curve goes to its entry folder.
    """
    run_dir = Path(run_dir)
    if detect(run_dir) in ("folder", "array"):
        raise GenbenchError(f"{run_dir} holds samples, not a model: there is nothing to sweep",
                            "sweep a run, a diffusers folder or an exported model")
    if not nfes or any(k < 1 for k in nfes):
        raise GenbenchError(f"NFE counts must each be at least 1 (got {list(nfes)})", "e.g. --nfe-list 2,4,8,16")
    curves: dict[str, list[dict]] = {}
    for solver in solvers:
        points, clip = [], None
        counts = [None] if solver == "dopri5" else [k for k in nfes if allowed_nfe(solver, k)]
        for nfe in counts:
            _, rec = evaluate_path(run_dir, metrics=metrics, n=n, seed=seed, solver=solver, nfe=nfe, floor=False,
                                   tol=tol if solver == "dopri5" else None, reuse=True, **kwargs)
            if not rec:   # a rank other than 0: it only sampled
                continue
            clip = (rec["sampling"].get("options") or {}).get("clip")   # the run's sample.clip, or --clip
            scores = {k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))}
            points.append({"nfe": rec["sampling"]["nfe"], **scores, "images_per_s": rec["sampling"]["images_per_s"],
                           **({"tol": tol or DOPRI5_TOL} if solver == "dopri5" else {})})
        curves[solver + (f"-tol{tol:g}" if solver == "dopri5" and tol else "")
               + (f"-clip{clip}" if clip not in (None, "none") else "")] = points
    out = eval_folder(run_dir, kwargs.get("out")) / f"sweep-n{n}-seed{seed}.json"
    if not dist.is_main():
        return out, {}
    merged = _read_sweep(out)["curves"] if out.exists() else {}
    for key, points in curves.items():  # a later sweep adds NFE counts to a curve, replacing equal ones
        by_nfe = {p["nfe"]: p for p in merged.get(key, [])} | {p["nfe"]: p for p in points}
        merged[key] = [by_nfe[k] for k in sorted(by_nfe)]
    record = {"genbench_sweep": 1, "n": n, "seed": seed, "metrics": metrics, "curves": merged}
    write_json(out, record)
    return out, record


# ------------------------------------------------------------------ samples and models from outside genbench

GRID_N = 64   # samples in an entry folder's grid (the report's sample figure and nearest-neighbour search)
MODEL_ONLY = {"checkpoint": "--checkpoint", "solver": "--solver", "nfe": "--nfe", "tol": "--tol", "clip": "--clip",
              "batch_size": "--batch-size", "class_text": "--class", "guidance": "--guidance",
              "guidance_interval": "--guidance-interval"}


def check_min_samples(chosen: list[str], n: int, what: str) -> None:
    """Refuse fewer samples than a chosen metric is defined for (:data:`MIN_SAMPLES`)."""
    need = {m: MIN_SAMPLES[m] for m in chosen if MIN_SAMPLES.get(m, 0) > n}
    if need:
        m, k = max(need.items(), key=lambda kv: kv[1])
        raise GenbenchError(f"{what}: {n} samples, fewer than the {k} that {m} needs",
                            f"give at least {k} samples, or drop {', '.join(need)} from --metrics")


def write_grid(folder: Path, x) -> None:
    """The first samples as the entry's grid (model range or uint8)."""
    from genbench.data.transforms import to_model_range
    from genbench.viz import save_image_grid

    folder.mkdir(parents=True, exist_ok=True)
    save_image_grid(to_model_range(x) if x.dtype == torch.uint8 else x, folder / "grid-000000000.png")


def eval_folder(path: Path, out: Path | None = None) -> Path:
    """Where the evaluations of ``path`` go: a run's or an entry's ``eval/``, else its entry folder's."""
    from genbench.external.entry import default_entry_dir

    kind = detect(Path(path))
    if kind in ("run", "entry"):
        return Path(path) / "eval"
    return Path(out or default_entry_dir(path)) / "eval"


def evaluate_path(path: Path, dataset: str | None = None, out: Path | None = None, data_dir: str | None = None,
                  value_range: str = "auto", **kwargs) -> tuple[Path, dict]:
    """`genbench eval PATH`: a run directory (:func:`evaluate_run`), or from outside genbench a folder of
    images or an .npy/.npz of samples (:func:`evaluate_samples`), a diffusers pipeline folder or a
    `genbench export` folder (sampled and scored as a run), or an entry folder (its source again).
    Outside genbench the scores go to the entry folder ``out`` (:mod:`genbench.external.entry`)."""
    from genbench.external.entry import default_entry_dir, files_fingerprint, opened_entry, read_entry

    path = Path(path)
    kind = detect(path)
    if kind == "run":
        options = {"--dataset": dataset, "--out": out, "--data-dir": data_dir,
                   "--value-range": None if value_range == "auto" else value_range}
        given = [flag for flag, value in options.items() if value is not None]
        if given:
            raise GenbenchError(f"{', '.join(given)} apply to samples or models from outside genbench; a run "
                                "knows its data and keeps its evaluations", f"drop {', '.join(given)}")
        return evaluate_run(path, **kwargs)
    if kind == "entry":
        entry = read_entry(path)
        if detect(Path(entry["source"])) in ("run", "entry"):
            raise GenbenchError(f"{path / 'entry.json'} names {entry['source']} as its source, which is not "
                                "samples or a model from outside genbench", "score the source itself")
        return evaluate_path(Path(entry["source"]), dataset=dataset or entry["dataset"], out=path,
                             data_dir=data_dir or entry.get("data_root"), value_range=value_range, **kwargs)
    out = Path(out) if out is not None else default_entry_dir(path)
    if kind in ("folder", "array"):
        return evaluate_samples(path, dataset, out, data_dir=data_dir, value_range=value_range, **kwargs)
    if value_range != "auto":
        raise GenbenchError("--value-range applies to arrays of samples, not to a model", "drop --value-range")
    if kind == "diffusers":
        from genbench.external.diffusers import load_diffusers

        loaded = load_diffusers(path, dataset, kwargs.get("device", "auto"), data_dir)
        weights = sorted((path / "unet").glob("*.safetensors"))
    else:
        from genbench.export import load_export

        loaded = load_export(path, kwargs.get("device", "auto"), dataset, data_dir)
        weights = [path / "model.safetensors"]
    if kwargs.get("checkpoint") is not None:
        raise GenbenchError(f"{path} holds one set of weights, not checkpoints", "drop --checkpoint")
    if not kwargs.get("use_ema", True):
        raise GenbenchError(f"{path} holds one set of weights; --raw picks a run's non-EMA weights", "drop --raw")
    entry = {"kind": kind, "source": str(path.resolve()), "name": out.name, "dataset": loaded.cfg.data.name,
             "data_root": data_dir, "fingerprint": files_fingerprint(weights), "read_as": loaded.source,
             "shape": list(loaded.data_shape)}
    with opened_entry(out, entry, kwargs.get("overwrite", False)):
        loaded.cfg = loaded.cfg.model_copy(update={"name": out.name})
        return evaluate_model(loaded, out, grid_dir=out / "samples", **kwargs)


def evaluate_samples(path: Path, dataset: str | None, out: Path, metrics: str | None = None, n: int | None = None,
                     seed: int = 0, extractor_kind: str | None = None, inception_weights: str | None = None,
                     ref_split: str = "train", floor: bool = True, device: str = "auto", overwrite: bool = False,
                     reuse: bool = False, use_ema: bool = True, data_dir: str | None = None,
                     value_range: str = "auto", **model_options) -> tuple[Path, dict]:
    """Score samples made outside genbench (:mod:`genbench.external.samples`) under the same protocol as a
    run (extractor, reference, floor) and write ``out/eval/eval-samples-n<N>-<extractor>.json``.
    ``n`` takes the first n samples (None: all of them)."""
    from genbench.config import DataConfig
    from genbench.dist import pick_device
    from genbench.external import dataset_shape
    from genbench.external.entry import opened_entry
    from genbench.external.samples import load_samples

    t_start = time.perf_counter()
    given = [flag for key, flag in MODEL_ONLY.items() if model_options.get(key) is not None]
    given += ["--raw"] * (not use_ema) + ["--seed"] * (seed != 0)
    if given:
        raise GenbenchError(f"{', '.join(given)} apply to a model that genbench samples; {path} holds samples",
                            f"drop {', '.join(given)}")
    shape = dataset_shape(dataset, str(path))
    chosen = parse_metrics(metrics, "image", dataset in STACKED)
    if "speed" in chosen:
        raise GenbenchError("samples from outside genbench come without their network: their speed cannot be "
                            "measured", "drop speed from --metrics")
    if n is not None and n < 2:
        raise GenbenchError(f"-n must be at least 2 (got {n})", "leave -n out to score every sample")
    samples = load_samples(path, shape, value_range)
    have = len(samples.images)
    n = have if n is None else n
    if n > have:
        raise GenbenchError(f"{path} holds {have} samples, fewer than -n {n}",
                            f"use -n {have} or fewer, or leave -n out to score all of them")
    check_min_samples(chosen, n, str(path))
    images = samples.images[:n]
    dev = pick_device(device, knob="--device")
    data_cfg = DataConfig(name=dataset, root=data_dir)
    protocol = ImageProtocol.for_data(data_cfg, dev, extractor_kind, inception_weights, ref_split=ref_split,
                                      ref_n=FID_REFERENCE_N if ref_split == "train" else None)
    source = {"kind": samples.kind, "path": str(Path(path).resolve()), "read_as": samples.statement,
              "fingerprint": samples.fingerprint, "n_available": have}
    entry = {"kind": samples.kind, "source": source["path"], "name": Path(out).name, "dataset": dataset,
             "data_root": data_dir, "fingerprint": samples.fingerprint, "read_as": samples.statement,
             "shape": list(shape)}
    with opened_entry(out, entry, overwrite):
        target = Path(out) / "eval" / f"eval-samples-n{n}-{protocol.tag}.json"
        if target.exists() and not overwrite:
            if reuse:
                return target, read_eval_record(target)
            raise GenbenchError(f"{target} already exists", "add --overwrite, or change -n")
        load_s = time.perf_counter() - t_start
        write_grid(Path(out) / "samples", images[:GRID_N])
        t_scores = time.perf_counter()
        scores = protocol.scores(chosen, images)
        floor_scores = protocol.floor(chosen, n) if floor else None
        score_s = time.perf_counter() - t_scores
        warnings = [f"FID from {n} < 10k samples is biased upwards and not comparable to 10k/50k numbers"] \
            if n < 10_000 and "fid" in chosen else []
        record = {
            "genbench_eval": 1, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run": Path(out).name, "method": "external", "run_dir": str(out), "source": source,
            "checkpoint": {"step": None}, "weights": "external",   # no training: nothing to count
            "sampling": {"solver": None, "nfe": None, "n": n, "options": {}, "seeds": None, "batch_size": None,
                         "seconds": None, "images_per_s": None},
            "extractor": protocol.extractor_info, "reference": protocol.reference_info, "metrics": scores,
            "floor": floor_scores, "speed": None, "warnings": warnings,
            "timing": {"loading_s": load_s, "scoring_s": score_s, "total_s": time.perf_counter() - t_start},
            "params": None, "environment": environment(),
        }
        if "memorisation" in chosen:
            record["memorisation"] = MEMORISATION_INFO
        write_record(target, record, "choose a writable --out folder")
        return target, record
