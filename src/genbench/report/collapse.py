"""The GAN collapse panel (issue #16): per GAN run, modes covered and their KL (2-D mixtures, stacked
Fashion-MNIST), the domain classifier's class histogram, and D's sign statistic on reals over training.

- Modes: ``modes``, ``modes_total``, ``reverse_kl`` (2-D: PacGAN's reverse KL of the high-quality
  samples' modes, Lin et al. 2018) or ``kl`` (stacked: the 1000 class triples, Metz et al. 2017) and
  ``hq_fraction`` of :mod:`genbench.metrics.modes`, from the run's main evaluation.
- Classes: the ``classes`` record of :mod:`genbench.metrics.classes` (predicted-class shares against
  the real data's, KL, classes covered).
- ``D_sign_real``: E[sign D(real)], ADA's overfitting heuristic r_t (Karras et al. 2020, Sec. 3; it
  approaches 1 as D overfits), and ``ada_p`` where ADA ran, from the training log ``metrics.jsonl``.

Every number comes from the runs' records; what was not scored or logged is said so, never filled in.
"""

from __future__ import annotations

import math

NOT_SCORED = "not scored"
NOT_LOGGED = "not logged"
# mode totals of the sets, for evaluations written before the records held ``modes_total``
# (tests/test_report_collapse.py holds them equal to genbench.data)
MODES_TOTAL = {"ring": 8, "grid": 25, "stacked_fashion_mnist": 1000}


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _series(log: list[dict], key: str) -> list[tuple[float, float]]:
    return [(float(row["kimg"]), float(row[key])) for row in log
            if _num(row.get(key)) is not None and _num(row.get("kimg")) is not None]


def scored(metrics: dict, data: str | None) -> dict:
    """The collapse numbers of one evaluation's ``metrics`` (or floor) dict: None where not scored."""
    metrics = metrics or {}
    kl_key = next((k for k in ("reverse_kl", "kl") if k in metrics), None)
    modes = _num(metrics.get("modes"))
    total = _num(metrics.get("modes_total")) or (MODES_TOTAL.get(data) if modes is not None else None)
    classes = metrics.get("classes") if isinstance(metrics.get("classes"), dict) else None
    return {"modes": modes, "modes_total": total,
            "modes_kl": _num(metrics.get(kl_key)) if kl_key else None,
            "modes_kl_undefined": kl_key is not None and _num(metrics.get(kl_key)) is None,
            "hq_fraction": _num(metrics.get("hq_fraction")), "classes": classes}


def collapse_rows(groups: list[dict]) -> list[dict]:
    """One row per GAN run (every seed) of the report's groups; [] when the study has no GAN."""
    rows = []
    for g in groups:
        if g["family"] != "gan":
            continue
        for run in g["runs"]:
            method = run.config.get("method") if isinstance(run.config.get("method"), dict) else {}
            augment = method.get("augment") if isinstance(method.get("augment"), dict) else {}
            data = (run.config.get("data") or {}).get("name")
            rows.append({
                "label": g["label"] + (f" (seed {run.seed})" if len(g["runs"]) > 1 else ""), "run": run.name,
                "family": g["family"], "dataset": data,
                "recipe": ", ".join(str(x) for x in (method.get("loss", "bce"), method.get("penalty"),
                                                     augment.get("kind")) if x not in (None, "none")),
                "ada_target": augment.get("target") if augment.get("kind") == "ada" else None,
                **scored((run.main_eval or {}).get("metrics") or {}, data),
                "d_sign_real": _series(run.log, "D_sign_real"), "ada_p": _series(run.log, "ada_p"),
            })
    return rows


def floor_row(record: dict | None, data: str | None) -> dict | None:
    """The same numbers of the real held-out data (the evaluation's floor), or None without a floor."""
    floor = (record or {}).get("floor")
    if not isinstance(floor, dict):
        return None
    row = scored(floor, data)
    return row if any(row[k] is not None for k in ("modes", "hq_fraction", "classes")) else None


def _fmt(v: float | None, fmt: str) -> str:
    return NOT_SCORED if v is None else fmt.format(v)


def cells(row: dict) -> dict[str, str]:
    """A row's table cells, with "not scored" / "not logged" where a record lacks the number."""
    c = row.get("classes")
    modes = NOT_SCORED if row["modes"] is None else (
        f"{row['modes']:.0f} / {row['modes_total']:.0f}" if row["modes_total"] else f"{row['modes']:.0f}")
    kl = "undefined (no high-quality sample)" if row["modes_kl_undefined"] else _fmt(row["modes_kl"], "{:.3f}")
    out = {"modes": modes, "modes_kl": kl, "hq_fraction": _fmt(row["hq_fraction"], "{:.3f}"),
           "class_kl": NOT_SCORED, "classes_covered": NOT_SCORED, "consistency": NOT_SCORED,
           "d_sign_last": NOT_LOGGED, "ada_p_last": NOT_LOGGED}
    if c is not None:
        out["class_kl"] = "undefined (all outside the reference)" if c.get("kl") is None else f"{c['kl']:.3f}"
        out["classes_covered"] = f"{c.get('covered')} / {c.get('reference_classes')}"
        if _num(c.get("consistency")) is not None:
            out["consistency"] = f"{c['consistency']:.3f}"
    if row.get("d_sign_real"):
        out["d_sign_last"] = f"{row['d_sign_real'][-1][1]:.3f}"
    if row.get("ada_p"):
        out["ada_p_last"] = f"{row['ada_p'][-1][1]:.3f}"
    return out


COLUMNS = (("modes", "modes covered"), ("modes_kl", "modes KL (nats)"), ("hq_fraction", "high-quality share"),
           ("class_kl", "class KL (nats)"), ("classes_covered", "classes covered"),
           ("consistency", "class consistency"), ("d_sign_last", "E[sign D(real)], last"),
           ("ada_p_last", "ADA p, last"))


def collapse_section(groups: list[dict], first_eval: dict | None) -> dict | None:
    """The panel's context: rows (numbers and cells), the floor row, the columns that hold anything, and
    the class-histogram table; None when the study has no GAN run."""
    rows = collapse_rows(groups)
    if not rows:
        return None
    floor = floor_row(first_eval, rows[0]["dataset"])
    for r in rows + ([floor] if floor else []):
        r["cells"] = cells(r)
    if floor:                                   # real data has no training log
        floor["cells"].update(d_sign_last="", ada_p_last="")
    # a column is shown when some GAN has it (a floor alone does not make it), else the table says why it is not
    shown = [(k, name) for k, name in COLUMNS if any(r["cells"][k] not in (NOT_SCORED, NOT_LOGGED) for r in rows)]
    missing = [name for k, name in COLUMNS if (k, name) not in shown]
    with_classes = [r for r in rows if r["classes"]]
    hist = None
    if with_classes:
        ref = with_classes[0]["classes"]
        hist = {"names": ref.get("names") or [str(i) for i in range(len(ref["fractions"]))],
                "reference": ref.get("reference") or [],
                "rows": [{"label": r["label"], "fractions": r["classes"]["fractions"]} for r in with_classes]
                + ([{"label": "real data (floor)", "fractions": floor["classes"]["fractions"]}]
                   if floor and floor.get("classes") else [])}
    return {"rows": rows, "floor": floor, "columns": shown, "missing": missing, "histogram": hist,
            "classes_missing": [r["label"] for r in rows if not r["classes"]],
            "sign_missing": [r["label"] for r in rows if not r["d_sign_real"]]}


def summary(section: dict | None) -> list[dict] | None:
    """The panel's numbers for report.json (no curves' points beyond the last)."""
    if section is None:
        return None
    keep = ("label", "run", "dataset", "recipe", "modes", "modes_total", "modes_kl", "hq_fraction")
    return [{**{k: r[k] for k in keep}, "classes": r["classes"],
             "d_sign_real_last": r["d_sign_real"][-1][1] if r["d_sign_real"] else None,
             "ada_p_last": r["ada_p"][-1][1] if r["ada_p"] else None} for r in section["rows"]]
