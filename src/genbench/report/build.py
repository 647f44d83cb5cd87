"""``build_report(run_dirs, out)``: read the runs, check protocols, rank, draw, write HTML + Markdown."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from genbench.errors import GenbenchError
from genbench.limits import GRID_FILE_BYTES, read_bytes
from genbench.report.collapse import collapse_section
from genbench.report.collapse import summary as collapse_summary
from genbench.report.collect import (
    FAMILY_NAMES,
    RunRecord,
    choose_common_evals,
    common_sweeps,
    mean_ci,
    read_run,
)
from genbench.report.verdicts import THRESHOLDS, derive, fmt_value


def guidance_rows(groups: list[dict]) -> list[dict]:
    """Per guided run, its latest guidance sweep: points (w and the swept scores) and the best w per score."""
    rows = []
    for g in groups:
        for run in g["runs"]:
            if run.guidance:
                sweep = max(run.guidance, key=lambda s: (s.get("n") or 0, len(s["points"])))
                rows.append({"label": g["label"] + (f" (seed {run.seed})" if len(g["runs"]) > 1 else ""),
                             "family": g["family"], "n": sweep.get("n"), "solver": sweep.get("solver"),
                             "interval": sweep.get("interval_sigma"), "points": sweep["points"],
                             "best": sweep.get("best") or {}})
    return rows


FAMILY_ORDER = ("gan", "diffusion", "flow", "few-step", "external")

# overview rows: (group, key, label, format, "low"/"high" better or "" for context only)
ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("quality", "fid", "FID", "{:.3g}", "low"),
    ("quality", "kid", "KID", "{:.3g}", "low"),
    ("quality", "precision", "precision (k=3)", "{:.3f}", "high"),
    ("quality", "density", "density (k=5)", "{:.3f}", "high"),
    ("quality", "is", "IS-style score", "{:.3g}", "high"),
    ("quality", "hq_fraction", "high-quality fraction", "{:.3f}", "high"),
    ("diversity", "recall", "recall (k=3)", "{:.3f}", "high"),
    ("diversity", "coverage", "coverage (k=5)", "{:.3f}", "high"),
    ("diversity", "modes", "modes covered", "{:.0f}", "high"),
    ("diversity", "copy_ratio", "nearest-train distance / real's", "{:.2f}", ""),
    ("diversity", "memorised_fraction", "copies: nearest/2nd-nearest train < 1/3", "{:.3f}", ""),
    ("diversity", "ct", "data-copying C_T (0: none, << 0: copying)", "{:.2f}", ""),
    ("speed", "train_seconds", "training wall-clock (s)", "{:.0f}", ""),
    ("speed", "kimg", "images seen in training (k)", "num", ""),
    ("speed", "sample_images_per_s", "sampling images/s (eval batch)", "num", "high"),
    ("speed", "best_images_per_s", "sampling images/s (best batch)", "num", "high"),
    ("speed", "nfe", "NFE per sample", "{:.0f}", "low"),
    ("speed", "latency_ms", "one-image latency (ms, batch 1)", "{:.3g}", "low"),
    ("size", "sample_params", "parameters (sampling network)", "{:,.0f}", "low"),
    ("size", "total_params", "parameters (all trained networks)", "{:,.0f}", ""),
)
FLOOR_KEYS = ("fid", "kid", "precision", "density", "is", "hq_fraction", "recall", "coverage", "modes",
              "memorised_fraction", "ct")


def run_values(run: RunRecord) -> dict[str, float]:
    e = run.main_eval or {}
    out = {k: float(v) for k, v in (e.get("metrics") or {}).items()
           if isinstance(v, (int, float)) and not k.endswith(("_std", "_subset_size"))}
    s = e.get("sampling") or {}
    if s.get("images_per_s"):
        out["sample_images_per_s"] = float(s["images_per_s"])
    if s.get("nfe") is not None:
        out["nfe"] = float(s["nfe"])
    sp = e.get("speed") or {}
    if sp.get("latency_s") is not None:
        out["latency_ms"] = 1000 * float(sp["latency_s"])
    if sp.get("images_per_s") is not None:
        out["best_images_per_s"] = float(sp["images_per_s"])
    ck = e.get("checkpoint") or {}
    secs = ck.get("train_seconds") if ck.get("train_seconds") is not None else run.info.get("train_seconds")
    if secs is not None:   # a run started from another (train.init_from) is charged that run's time too
        out["train_seconds"] = float(secs) + float((run.info.get("init_from") or {}).get("seconds", 0.0))
    seen = ck.get("images_seen", run.info.get("images_seen"))
    if seen is not None:
        out["kimg"] = (float(seen) + float((run.info.get("init_from") or {}).get("images_seen", 0))) / 1000
    if run.sample_params:
        out["sample_params"] = float(run.sample_params)
    if run.total_params:
        out["total_params"] = float(run.total_params)
    return out


def group_runs(runs: list[RunRecord]) -> list[dict]:
    """Repeats of one setting (differing only in seed) form one group, labelled by family."""
    groups: dict[str, dict] = {}
    for r in runs:
        g = groups.setdefault(r.group_key, {"family": r.family, "runs": []})
        g["runs"].append(r)
    out = sorted(groups.values(), key=lambda g: (FAMILY_ORDER.index(g["family"]), g["runs"][0].name))
    per_family: dict[str, int] = {}
    for g in out:
        per_family[g["family"]] = per_family.get(g["family"], 0) + 1
    for g in out:
        base = FAMILY_NAMES[g["family"]]
        g["label"] = base if per_family[g["family"]] == 1 else f"{base} ({g['runs'][0].name})"
    return out


def _cell(fmt: str, mean: float, ci: float | None) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    text = fmt_value(fmt, mean)
    if ci is not None:
        text += " ± " + fmt_value("num" if fmt == "num" else fmt.replace(",", ""), ci)
    return text


def _sweep_curves(groups: list[dict], sweeps: dict[str, dict]) -> list[dict]:
    curves = []
    for g in groups:
        run = g["runs"][0]
        sw = sweeps.get(str(run.path))
        if not sw:
            continue
        for solver, points in sw["curves"].items():
            if points:
                curves.append({"label": g["label"], "family": g["family"], "solver": solver, "points": points})
    return curves


def _single_points(groups: list[dict], curves: list[dict], n: int | None) -> list[dict]:
    """One-point curves for the families without a sweep (a GAN: NFE 1), from an evaluation of the final
    checkpoint on ``n`` samples (None: the main evaluation), so that every point shares one sample count."""
    have = {c["label"] for c in curves}
    out = []
    for g in groups:
        if g["label"] in have:
            continue
        run = g["runs"][0]
        main = run.main_eval or {}
        step = (main.get("checkpoint") or {}).get("step")
        cands = [e for e in run.evals if (e.get("checkpoint") or {}).get("step") == step
                 and (e.get("sampling") or {}).get("n") == (n or (main.get("sampling") or {}).get("n"))
                 and (e.get("sampling") or {}).get("solver") == (main.get("sampling") or {}).get("solver")]
        if not cands:
            continue
        e = cands[0] if n is None else max(cands, key=lambda e: len(e.get("metrics") or {}))
        s = e["sampling"]
        point = {"nfe": s.get("nfe") or 1, "images_per_s": s.get("images_per_s"),
                 **{k: v for k, v in (e.get("metrics") or {}).items() if isinstance(v, (int, float))}}
        out.append({"label": g["label"], "family": g["family"], "solver": s.get("solver"), "points": [point]})
    return out


def _time_points(curves: list[dict]) -> list[dict]:
    pts = []
    for c in curves:
        for p in c["points"]:
            if p.get("images_per_s") and p.get("fid") is not None:
                pts.append({"label": c["label"], "family": c["family"], "solver": c["solver"], "nfe": p["nfe"],
                            "seconds_per_image": 1 / p["images_per_s"], "fid": p["fid"]})
    return pts


def build_report(run_dirs: list[Path], out: Path, title: str | None = None, study: dict | None = None,
                 neighbours: bool = True) -> dict[str, Path]:
    """Write ``out/report.html`` (self-contained), ``out/report.md`` (+ ``out/img/``) and ``out/report.json``."""
    import genbench.report.plots as plots
    from genbench.report.html import Figure, write_html, write_markdown

    if len(run_dirs) < 2:
        raise GenbenchError("compare needs at least two run directories", "e.g. genbench compare runs/gan runs/flow -o report")
    runs = [read_run(Path(p)) for p in run_dirs]
    if len({str(r.path.resolve()) for r in runs}) < len(runs):
        raise GenbenchError("the same run directory is given twice", "list each run once")
    protocol = choose_common_evals(runs)
    groups = group_runs(runs)
    values: dict[str, dict[str, tuple[float, float | None]]] = {}
    for g in groups:
        per_run = [run_values(r) for r in g["runs"]]
        keys = sorted({k for pr in per_run for k in pr})
        values[g["label"]] = {k: mean_ci([pr.get(k) for pr in per_run]) for k in keys}
    first_eval = runs[0].main_eval
    floor = {k: float(v) for k, v in (first_eval.get("floor") or {}).items()
             if k in FLOOR_KEYS and isinstance(v, (int, float))}
    notes: list[str] = []
    nn_rows: list[dict] = []
    if neighbours:
        from genbench.report.neighbours import neighbours_for

        nn_rows, ratios, note = neighbours_for({g["label"]: g["runs"][0] for g in groups})
        for label, ratio in ratios.items():
            values[label]["copy_ratio"] = (ratio, None)
        if note:
            notes.append(note)
    verdicts = derive(values, floor)
    sweeps, sweep_notes = common_sweeps(runs)
    notes += sweep_notes
    notes += sorted({w for r in runs for w in (r.main_eval.get("warnings") or [])})
    notes += [f"{r.name} comes from outside genbench ({r.entry['kind']}): its training cost is unknown"
              + (" and so is its sampling speed (samples only)" if r.entry["kind"] in ("folder", "array") else "")
              for r in runs if r.entry is not None]

    labels = [g["label"] for g in groups]
    table = []
    for group, key, label, fmt, better in ROWS:
        if not any(key in values[lb] for lb in labels):
            continue
        cells = [_cell(fmt, *values[lb].get(key, (float("nan"), None))) for lb in labels]
        best: list[int] = []
        if better:
            have = [(values[lb][key][0], i) for i, lb in enumerate(labels)
                    if key in values[lb] and math.isfinite(values[lb][key][0])]
            if len(have) >= 2 and len({v for v, _ in have}) > 1:     # all equal: nothing to highlight
                top = (min if better == "low" else max)(v for v, _ in have)
                best = [i for v, i in have if v == top]
        table.append({"group": group, "label": label, "cells": cells, "best": best,
                      "floor": _cell(fmt, floor[key], None) if key in floor else "",
                      "better": {"low": "↓", "high": "↑"}.get(better, "")})

    figures: dict[str, list[Figure]] = {"samples": [], "neighbours": [], "training": [], "sampling": [],
                                        "collapse": [], "guidance": []}
    for g in groups:
        run = g["runs"][0]
        if run.grids:
            step = run.grids[-1].stem.split("-")[-1].lstrip("0") or "0"
            figures["samples"].append(Figure(f"samples-{run.family}-{len(figures['samples'])}",
                                             f"{g['label']}: fixed-seed samples at step {step}",
                                             read_bytes(run.grids[-1], GRID_FILE_BYTES, "sample grid",
                                                        "delete the grid: the report then shows no samples")))
    if nn_rows:
        figures["neighbours"].append(Figure(
            "neighbours", "left: a generated sample; right: its nearest training images (pixel L2 distance d)",
            plots.neighbour_figure(nn_rows)))
    figures["training"].append(Figure("losses", "training losses against images seen (G and D for the GAN)",
                                      plots.loss_curves(groups)))
    q_metric = "fid" if "fid" in values[labels[0]] else "hq_fraction"
    q = plots.quality_over_training(groups, q_metric)
    if q:
        figures["training"].append(Figure("quality-over-training",
                                          f"{q_metric} over training (proxy, and evaluations of the checkpoints)", q))
    else:
        notes.append("quality over training left out: no proxy scores logged (train.proxy_every) and no evaluations "
                     "of earlier checkpoints (study eval.history_n)")
    curves = _sweep_curves(groups, sweeps)
    sweep_n = next(iter(sweeps.values()))["n"] if sweeps else None
    curves += _single_points(groups, curves, sweep_n)
    n_shown = sweep_n or protocol["sampling.n"]
    metric = "fid" if any("fid" in p for c in curves for p in c["points"]) else "hq_fraction"
    f = plots.fid_vs_nfe(curves, metric) if sweeps else None
    if f:
        figures["sampling"].append(Figure(f"{metric.replace('_', '-')}-vs-nfe",
                                          f"{metric} on {n_shown} samples against network evaluations per sample, "
                                          "per family and solver", f))
    t = plots.quality_vs_time(_time_points(curves))
    if t:
        figures["sampling"].append(Figure("quality-vs-time", f"FID on {n_shown} samples against sampling time "
                                          "per image, with the Pareto front (lower left is better)", t))

    collapse = collapse_section(groups, first_eval)     # issue #16's panel, when the study has GANs
    if collapse and collapse["histogram"]:
        figures["collapse"].append(Figure("gan-class-fractions", "share of samples per class predicted by the domain "
                                          "classifier, per GAN (bars), against the real data's class shares (line)",
                                          plots.class_fractions(collapse["histogram"])))
    d_sign = plots.d_sign_curves(collapse["rows"]) if collapse else None
    if d_sign:
        figures["collapse"].append(Figure("gan-d-sign-real", "E[sign D(real)] over training, ADA's overfitting "
                                          "signal (towards 1: D overfits), and ADA's augmentation p where it ran",
                                          d_sign))

    guidance = guidance_rows(groups)      # issue #17: conditional runs' scores against the guidance scale
    g_fig = plots.guidance_curves(guidance) if guidance else None
    if g_fig:
        figures["guidance"].append(Figure("guidance-sweep", "scores against the guidance scale w (D_u + w (D_c - D_u); "
                                          "w = 1 is the conditional model), the best w of each starred", g_fig))

    env = runs[0].main_eval.get("environment") or {}
    environment = {
        "device": (runs[0].main_eval.get("speed") or {}).get("device") or runs[0].info.get("device")
        or env.get("cuda_device") or "cpu",
        "versions": ", ".join(f"{k} {env[k]}" for k in ("genbench", "torch", "numpy", "python") if env.get(k)),
        "platform": env.get("platform", ""),
    }
    run_rows = []
    for g in groups:
        for r in g["runs"]:
            e = r.main_eval
            run_rows.append({"label": g["label"], "recipe": r.recipe, "name": r.name, "path": str(r.path),
                             "seed": r.seed,
                             "budget": json.dumps((r.config.get("train") or {}).get("budget")),
                             "step": (e.get("checkpoint") or {}).get("step"), "weights": e.get("weights"),
                             "solver": (e.get("sampling") or {}).get("solver"),
                             "nfe": (e.get("sampling") or {}).get("nfe"),
                             "eval": Path(e["_path"]).name})
    context = {
        "title": title or "genbench study: " + " vs ".join(labels),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "labels": labels, "table": table, "verdicts": verdicts, "thresholds": THRESHOLDS,
        "protocol": protocol, "environment": environment, "runs": run_rows, "study": study or {},
        "figures": figures, "notes": notes, "n_seeds": max(len(g["runs"]) for g in groups),
        "collapse": collapse, "guidance": guidance,
    }
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenbenchError(f"cannot create {out}: {err.strerror or err}", "choose a writable -o") from None
    paths = {"html": write_html(context, out / "report.html"), "md": write_markdown(context, out)}
    summary = {"labels": labels, "values": {lb: {k: list(v) for k, v in values[lb].items()} for lb in labels},
               "floor": floor, "protocol": {k: v for k, v in protocol.items()},
               "answers": verdicts.answers,
               "pros": {lb: [vars(i) for i in verdicts.pros[lb]] for lb in labels},
               "cons": {lb: [vars(i) for i in verdicts.cons[lb]] for lb in labels},
               "runs": run_rows, "notes": notes, "thresholds": THRESHOLDS,
               "collapse": collapse_summary(collapse), "guidance": guidance}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return paths
