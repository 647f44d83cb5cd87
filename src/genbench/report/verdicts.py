"""The study's conclusions, derived from the measured numbers by rules written here.

Pure functions of ``{family label: {metric key: (mean, ci95 or None)}}``: no I/O, no prose that the
numbers do not produce. Every pro, con and answer carries the values and the rule behind it, and
the rules' thresholds are the named constants below (the report prints them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# a family leads a criterion when it beats the runner-up by more than this relative margin
# (and, with several seeds, their 95% intervals do not overlap); the last one is marked worse
# when the leader beats it by more than the same margin
CLEAR_MARGIN = 0.10
# absolute thresholds
LOW_RECALL = 0.30          # recall below: the model misses much of the data distribution
LOW_PRECISION = 0.30       # precision below: many samples fall off the data manifold
INTERACTIVE_MS = 100.0     # one image faster than this (batch 1): usable interactively
SLOW_FACTOR = 10.0         # sampling this many times slower than the fastest family: a con
COPY_RATIO = 0.5           # samples' nearest-training-image distance below this fraction of real
                           # unseen images' distance: the model reproduces training images

COPY_EXCESS = 0.01         # fraction of samples that copy (nearest/second-nearest training image < 1/3,
                           # metrics/memorisation.py) above the real held-out data's own fraction: a con
CT_COPYING = -3.0          # data-copying C_T (Meehan et al. 2020, a z-score) below this: samples sit closer
                           # to the training data than unseen real data does

THRESHOLDS = {"CLEAR_MARGIN": CLEAR_MARGIN, "LOW_RECALL": LOW_RECALL, "LOW_PRECISION": LOW_PRECISION,
              "INTERACTIVE_MS": INTERACTIVE_MS, "SLOW_FACTOR": SLOW_FACTOR,
              "COPY_RATIO": COPY_RATIO, "COPY_EXCESS": COPY_EXCESS, "CT_COPYING": CT_COPYING}

Values = dict[str, dict[str, tuple[float, float | None]]]


@dataclass(frozen=True)
class Criterion:
    group: str       # quality | diversity | speed | cost | size
    key: str         # metric key in the values
    label: str
    lower_is_better: bool
    fmt: str = "{:.3g}"


CRITERIA: tuple[Criterion, ...] = (
    Criterion("quality", "fid", "FID", True),
    Criterion("quality", "kid", "KID", True, "{:.3g}"),
    Criterion("quality", "precision", "precision", False),
    Criterion("quality", "is", "IS-style score", False),
    Criterion("diversity", "recall", "recall", False),
    Criterion("diversity", "coverage", "coverage", False),
    Criterion("diversity", "modes", "modes covered", False, "{:.0f}"),
    Criterion("quality", "hq_fraction", "high-quality fraction", False),
    Criterion("speed", "sample_images_per_s", "sampling images/s", False, "num"),
    Criterion("speed", "latency_ms", "one-image latency (ms)", True, "{:.3g}"),
    Criterion("speed", "nfe", "network evaluations per sample", True, "{:.0f}"),
    Criterion("cost", "kimg", "images seen in the budget (k)", False, "num"),
    Criterion("size", "sample_params", "parameters used to sample", True, "{:,.0f}"),
)
# the three questions of the study and the criterion that answers each
# (the first of the candidate keys measured for at least two families answers it)
QUESTIONS = (("best quality", ("fid", "hq_fraction", "precision")), ("most diversity", ("recall", "coverage", "modes")),
             ("fastest generation", ("sample_images_per_s",)))


@dataclass
class Ranking:
    criterion: Criterion
    order: list[str]                 # family labels, best first
    values: dict[str, float]
    leader: str | None               # None when the lead is within CLEAR_MARGIN or the CIs overlap
    margin: float                    # relative lead of the first over the second
    rule: str


@dataclass
class Item:
    text: str
    rule: str


@dataclass
class Verdicts:
    rankings: list[Ranking]
    pros: dict[str, list[Item]] = field(default_factory=dict)
    cons: dict[str, list[Item]] = field(default_factory=dict)
    answers: list[dict] = field(default_factory=list)   # {question, winner, evidence, rule}


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def relative_gap(better: float, worse: float, lower_is_better: bool) -> float:
    """How much ``better`` beats ``worse``, relative (0.25 = 25%); KID may be ~0, so use magnitudes."""
    if lower_is_better:
        better, worse = worse, better    # now "higher is better" between the two
    if abs(worse) < 1e-12:
        return math.inf if better > worse else 0.0
    return (better - worse) / abs(worse)


def lead(gap: float) -> str:
    """A relative lead as text: '48%' below 2x, '50x' from there ('∞' over a zero)."""
    if not math.isfinite(gap) or gap > 1e6:
        return "∞"
    return f"{gap:.0%}" if gap < 1 else f"{gap + 1:.3g}x"


def fmt_value(fmt: str, v: float) -> str:
    """``fmt`` is a format string, or "num": thousands separators from 1000 up, else 3 significant digits."""
    if fmt == "num":
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return fmt.format(v)


def _overlap(a: tuple[float, float | None], b: tuple[float, float | None]) -> bool:
    if a[1] is None or b[1] is None:
        return False
    return abs(a[0] - b[0]) <= a[1] + b[1]


def rank(values: Values, crit: Criterion) -> Ranking | None:
    have = {f: v[crit.key] for f, v in values.items() if crit.key in v and _finite(v[crit.key][0])}
    if len(have) < 2:
        return None
    order = sorted(have, key=lambda f: have[f][0], reverse=not crit.lower_is_better)
    first, second = have[order[0]], have[order[1]]
    margin = relative_gap(first[0], second[0], crit.lower_is_better)
    separated = margin > CLEAR_MARGIN and not _overlap(first, second)
    direction = "lower" if crit.lower_is_better else "higher"
    rule = (f"rank by {crit.label} ({direction} is better); a leader needs a lead > CLEAR_MARGIN = "
            f"{CLEAR_MARGIN:.0%} over the runner-up" + (" and non-overlapping 95% CIs" if first[1] else ""))
    return Ranking(crit, order, {f: have[f][0] for f in order}, order[0] if separated else None, margin, rule)


def _fmt(crit: Criterion, v: float) -> str:
    return fmt_value(crit.fmt, v)


def far_from_data(values: Values) -> dict[str, float]:
    """Families whose samples miss most of the data (recall < LOW_RECALL): at this budget they are
    undertrained (or collapsed), and ranking their quality or diversity against others would read
    as a verdict on the family rather than on the budget."""
    return {f: v["recall"][0] for f, v in values.items() if _finite(v.get("recall", (None,))[0])
            and v["recall"][0] < LOW_RECALL}


def derive(values: Values, floor: dict[str, float] | None = None) -> Verdicts:
    """Rankings, pros and cons per family, and the answers to the study's three questions.

    Quality and diversity are ranked only among the families that have reached the data
    (:func:`far_from_data`); the others are named undertrained at this budget. Speed, cost and size
    do not depend on training and rank every family."""
    floor = floor or {}
    out = Verdicts(rankings=[])
    fams = list(values)
    far = far_from_data(values)
    learned = {f: v for f, v in values.items() if f not in far}
    for f in fams:
        out.pros[f], out.cons[f] = [], []
    for crit in CRITERIA:
        r = rank(learned if crit.group in ("quality", "diversity") else values, crit)
        if r is None:
            continue
        out.rankings.append(r)
        shown = ", ".join(f"{f} {_fmt(crit, r.values[f])}" for f in r.order)
        if r.leader is not None:
            out.pros[r.leader].append(Item(f"best {crit.label}: {shown}",
                                           f"leads by {lead(r.margin)} > CLEAR_MARGIN {CLEAR_MARGIN:.0%}"))
        best, worst = r.values[r.order[0]], r.values[r.order[-1]]
        for f in r.order[1:]:
            # the worst, and any family within the margin of the worst, when the best is clearly better
            gap = relative_gap(best, r.values[f], crit.lower_is_better)
            near_worst = relative_gap(r.values[f], worst, crit.lower_is_better) <= CLEAR_MARGIN
            if gap > CLEAR_MARGIN and near_worst:
                out.cons[f].append(Item(f"worst {crit.label}: {shown}",
                                        f"the best beats it by {lead(gap)} > CLEAR_MARGIN {CLEAR_MARGIN:.0%}"))
    for f in fams:
        v = {k: m for k, (m, _) in values[f].items() if _finite(m)}
        if f in far:
            out.cons[f].append(Item(f"undertrained at this budget: its samples miss most of the data (recall "
                                    f"{v['recall']:.3g}); not ranked on quality or diversity",
                                    f"recall < LOW_RECALL {LOW_RECALL}"))
        if "precision" in v and v["precision"] < LOW_PRECISION:
            out.cons[f].append(Item(f"many samples off the data: precision {v['precision']:.3g}",
                                    f"precision < LOW_PRECISION {LOW_PRECISION}"))
        if "modes" in v and _finite(floor.get("modes")) and v["modes"] < floor["modes"]:
            out.cons[f].append(Item(f"mode collapse: {v['modes']:.0f} of {floor['modes']:.0f} modes",
                                    "modes < the real data's modes (floor)"))
        if "latency_ms" in v and v["latency_ms"] < INTERACTIVE_MS:
            out.pros[f].append(Item(f"interactive: one image in {v['latency_ms']:.3g} ms",
                                    f"latency < INTERACTIVE_MS {INTERACTIVE_MS:g}"))
        if "copy_ratio" in v and v["copy_ratio"] < COPY_RATIO:
            out.cons[f].append(Item(f"close to its training images: nearest-neighbour distance "
                                    f"{v['copy_ratio']:.2f}x that of unseen real images",
                                    f"copy ratio < COPY_RATIO {COPY_RATIO}"))
        if "memorised_fraction" in v and _finite(floor.get("memorised_fraction")) \
                and v["memorised_fraction"] > floor["memorised_fraction"] + COPY_EXCESS:
            out.cons[f].append(Item(f"copies training images: {v['memorised_fraction']:.1%} of samples have a "
                                    f"nearest training image 3x closer than the second (unseen real images: "
                                    f"{floor['memorised_fraction']:.1%})",
                                    f"copy fraction > the floor's + COPY_EXCESS {COPY_EXCESS}"))
        if "ct" in v and v["ct"] < CT_COPYING:
            out.cons[f].append(Item(f"data-copying: C_T {v['ct']:.2f} (Meehan et al. 2020; unseen real data "
                                    f"{floor.get('ct', float('nan')):.2f})", f"C_T < CT_COPYING {CT_COPYING:g}"))
        if "nfe" in v and v["nfe"] <= 1:
            out.pros[f].append(Item("one network evaluation per sample", "NFE <= 1"))
        fastest = max((values[g]["sample_images_per_s"][0] for g in fams
                       if _finite(values[g].get("sample_images_per_s", (None,))[0])), default=None)
        if fastest and "sample_images_per_s" in v and fastest / max(v["sample_images_per_s"], 1e-12) > SLOW_FACTOR:
            ratio = fastest / v["sample_images_per_s"]
            out.cons[f].append(Item(f"slow to sample: {v['sample_images_per_s']:.3g} images/s, "
                                    f"{ratio:.0f}x slower than the fastest",
                                    f"fastest / own > SLOW_FACTOR {SLOW_FACTOR:g}"))
    by_key = {r.criterion.key: r for r in out.rankings}
    for question, keys in QUESTIONS:
        r = next((by_key[k] for k in keys if k in by_key), None)
        if r is None and far and question != "fastest generation":
            shown = ", ".join(f"{f} recall {far[f]:.3g}" for f in far)
            out.answers.append({"question": question, "winner": "no verdict: undertrained at this budget",
                                "evidence": shown + (f"; reached the data: {', '.join(learned)}" if learned else ""),
                                "rule": f"quality and diversity are ranked among families with recall >= LOW_RECALL "
                                        f"{LOW_RECALL} only, and need two of them; train longer"})
            continue
        if r is None:
            out.answers.append({"question": question, "winner": "not measured", "evidence": "",
                                "rule": f"needs one of {', '.join(keys)} for at least two families"})
            continue
        evidence = ", ".join(f"{f} {_fmt(r.criterion, r.values[f])}" for f in r.order)
        winner = r.leader if r.leader is not None else f"no clear winner ({' ≈ '.join(r.order[:2])})"
        out.answers.append({"question": question, "winner": winner, "evidence": f"{r.criterion.label}: {evidence}",
                            "rule": r.rule})
    return out
