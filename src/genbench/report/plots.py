"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"gan": "tab:red", "diffusion": "tab:blue", "flow": "tab:green", "few-step": "tab:purple"}
MARKERS = "os^Dv<>pX*"


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _log(ax, which: str) -> None:
    """Log scale with plain numbers (2, 5, 10, 20, ...) instead of powers of ten."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_locator(NullLocator())


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def loss_curves(groups: list[dict]) -> bytes:
    """One panel per family: every ``loss/<player>`` against images seen, one line per seed."""
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.2 * max(1, len(groups)), 3.2), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=False):
        drawn = False
        for i, run in enumerate(g["runs"]):
            keys = sorted({k for row in run.log for k in row if k.startswith("loss/")})
            for j, key in enumerate(keys):
                pts = [(row["kimg"], row[key]) for row in run.log if key in row and "kimg" in row]
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, lw=1, alpha=1.0 if i == 0 else 0.4, color=f"C{j}",
                        label=f"{key.split('/', 1)[1]}" if i == 0 else None)
                drawn = True
        ax.set_title(g["label"], fontsize=10)
        if drawn:
            ax.set_xlabel("images seen (k)")
            ax.set_ylabel("loss")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        else:
            _empty(ax, "no losses logged")
    fig.tight_layout()
    return to_png(fig)


def _history(run, metric: str) -> list[tuple[float, float]]:
    """(kimg, score) of the run's evaluations with the main evaluation's solver and NFE, at the sample
    count that covers the most checkpoints (scores at different counts are not comparable)."""
    main = run.main_eval or {}
    ms = main.get("sampling") or {}
    by_n: dict[int, dict[int, tuple[float, float]]] = {}
    for e in run.evals:
        s = e.get("sampling") or {}
        if (s.get("solver"), s.get("nfe")) != (ms.get("solver"), ms.get("nfe")) or metric not in (e.get("metrics") or {}):
            continue
        ck = e.get("checkpoint") or {}
        by_n.setdefault(s.get("n"), {})[ck.get("step")] = (ck.get("images_seen", 0) / 1000, e["metrics"][metric])
    if not by_n:
        return []
    best = max(by_n, key=lambda n: (len(by_n[n]), n == ms.get("n"), n or 0))
    return sorted(by_n[best].values())


def quality_over_training(groups: list[dict], metric: str = "fid") -> bytes | None:
    """Proxy FID logged during training and evaluations of earlier checkpoints, against images seen."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    drawn = 0
    for g in groups:
        color = COLORS.get(g["family"])
        for i, run in enumerate(g["runs"]):
            keys = sorted({k for row in run.log for k in row if k.startswith(f"proxy/{metric}@")})
            for key in keys:
                pts = [(row["kimg"], row[key]) for row in run.log if key in row and "kimg" in row]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, "-", color=color, alpha=1.0 if i == 0 else 0.4,
                            label=f"{g['label']} ({key}, proxy)" if i == 0 else None)
                    drawn += len(pts)
            hist = _history(run, metric)
            if hist:
                xs, ys = zip(*hist, strict=True)
                ax.plot(xs, ys, "o--", color=color, ms=5, alpha=1.0 if i == 0 else 0.4,
                        label=f"{g['label']} (checkpoints)" if i == 0 else None)
                drawn += len(hist)
    if drawn <= len(groups):      # one point per family is no curve
        plt.close(fig)
        return None
    ax.set_xlabel("images seen (k)")
    ax.set_ylabel(metric.upper() if metric in ("fid", "kid") else metric)
    if metric in ("fid", "kid"):
        _log(ax, "y")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def fid_vs_nfe(curves: list[dict], metric: str = "fid") -> bytes | None:
    """``curves``: [{label, family, solver, points: [{nfe, fid, ...}]}] -> FID against NFE (log x)."""
    curves = [c for c in curves if any(metric in p for p in c["points"])]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, c in enumerate(curves):
        pts = sorted((p["nfe"], p[metric]) for p in c["points"] if metric in p)
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], color=COLORS.get(c["family"]), lw=1.2,
                alpha=0.9, label=f"{c['label']} / {c['solver']}")
    _log(ax, "x")
    if metric in ("fid", "kid"):
        _log(ax, "y")
    ax.set_xlabel("network evaluations per sample (NFE)")
    ax.set_ylabel(metric.upper() if metric in ("fid", "kid") else metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both time and FID (lower is better for both), sorted by time."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def quality_vs_time(points: list[dict]) -> bytes | None:
    """``points``: [{label, family, solver, nfe, seconds_per_image, fid}] with their Pareto front."""
    pts = [p for p in points if p.get("fid") is not None and p.get("seconds_per_image")
           and math.isfinite(p["fid"]) and p["seconds_per_image"] > 0]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    markers: dict[tuple, str] = {}
    for p in pts:
        key = (p["label"], p["solver"])
        first = key not in markers
        marker = markers.setdefault(key, MARKERS[len(markers) % len(MARKERS)])
        ax.scatter(p["seconds_per_image"] * 1000, p["fid"], color=COLORS.get(p["family"]), s=24, marker=marker,
                   label=f"{p['label']} / {p['solver']}" if first else None, zorder=3)
    front = pareto_front([(p["seconds_per_image"] * 1000, p["fid"]) for p in pts])
    xs, ys = zip(*front, strict=True)
    ax.step(xs, ys, where="post", color="k", lw=1, ls="--", zorder=2)
    ax.scatter(xs, ys, s=90, facecolors="none", edgecolors="k", lw=1, label="Pareto front", zorder=4)
    _log(ax, "x")
    _log(ax, "y")
    ax.set_xlabel("sampling time per image (ms, batched)")
    ax.set_ylabel("FID")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def neighbour_figure(rows: list[dict]) -> bytes:
    """``rows``: [{label, sample: HxW(xC) uint8, neighbours: [(image, distance)]}] -> one row per sample."""
    k = max(len(r["neighbours"]) for r in rows)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.3 * (k + 1), 1.35 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        cmap = "gray" if r["sample"].ndim == 2 else None
        axes[i][0].imshow(r["sample"], cmap=cmap, vmin=0, vmax=255)
        axes[i][0].set_title(f"{r['label']}", fontsize=7, color="tab:blue")
        for j in range(k):
            ax = axes[i][j + 1]
            if j < len(r["neighbours"]):
                img, dist = r["neighbours"][j]
                ax.imshow(img, cmap=cmap, vmin=0, vmax=255)
                ax.set_title(f"d={dist:.0f}", fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return to_png(fig)


def class_fractions(hist: dict) -> bytes:
    """``hist``: {names, reference, rows: [{label, fractions}]} -> grouped bars of the predicted-class
    shares per class, the reference's class shares as a black step outline (GAN collapse panel)."""
    names, rows = hist["names"], hist["rows"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(names)), 3.6))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [k - 0.4 + width * (i + 0.5) for k in range(len(names))]
        floor = r["label"].startswith("real data")
        ax.bar(xs, r["fractions"], width, label=r["label"], color="0.75" if floor else f"C{i}",
               hatch="//" if floor else None, edgecolor="0.4" if floor else None)
    if hist["reference"]:
        ref = list(hist["reference"])
        ax.step(range(-1, len(ref) + 1), [ref[0], *ref, ref[-1]], where="mid", color="k", lw=1.2,
                label="reference (real class shares)")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("share of samples")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def d_sign_curves(rows: list[dict]) -> bytes | None:
    """E[sign D(real)] (solid) and ADA's p (dashed) against images seen, one colour per GAN run;
    ADA's target as a dotted line where ADA ran. None when no run logged either."""
    rows = [r for r in rows if r.get("d_sign_real") or r.get("ada_p")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, r in enumerate(rows):
        for key, style, what in (("d_sign_real", "-", "E[sign D(real)]"), ("ada_p", "--", "ADA p")):
            if r.get(key):
                xs, ys = zip(*r[key], strict=True)
                ax.plot(xs, ys, style, color=f"C{i}", lw=1.2, label=f"{r['label']}: {what}")
        if r.get("ada_target") is not None:
            ax.axhline(r["ada_target"], color=f"C{i}", ls=":", lw=1, label=f"{r['label']}: ADA target")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("images seen (k)")
    ax.set_ylabel("E[sign D(real)] / p")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


GUIDANCE_PANELS = (("fid", "FID (lower is better)"), ("is", "IS-style score"), ("precision", "precision"),
                   ("recall", "recall"), ("consistency", "class consistency"))


def guidance_curves(rows: list[dict]) -> bytes | None:
    """Each guided run's scores against the guidance scale w, one panel per metric, the best w starred.
    ``rows``: {"label", "family", "points": [{"w", metric: value}], "best": {metric: {"w", "value"}}}."""
    panels = [(k, t) for k, t in GUIDANCE_PANELS if any(k in p for r in rows for p in r["points"])]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, r in enumerate(rows):
            pts = [(p["w"], p[key]) for p in r["points"] if isinstance(p.get(key), (int, float))]
            if not pts:
                continue
            color = COLORS.get(r["family"], "0.3")
            ax.plot(*zip(*pts, strict=True), marker=MARKERS[i % len(MARKERS)], color=color, label=r["label"])
            best = (r.get("best") or {}).get(key)
            if best:
                ax.plot([best["w"]], [best["value"]], marker="*", markersize=14, color=color, linestyle="none")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("guidance scale w")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)
