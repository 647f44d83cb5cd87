"""Issue #16's GAN collapse panel in the study report, built from hand-written run folders: its numbers
come from the evaluation records and training logs, missing ones are said so, and it is absent without GANs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from genbench.report import build_report
from genbench.report.collapse import MODES_TOTAL, NOT_LOGGED, NOT_SCORED
from test_report import make_run

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
GAN_CLASSES = {"names": NAMES, "fractions": [0.3, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0],
               "reference": [0.1] * 10, "kl": 0.4206, "outside": 0.0, "covered": 8, "reference_classes": 10,
               "covered_ratio": 0.1, "n": 2000}
FLOOR_CLASSES = {**GAN_CLASSES, "fractions": [0.11, 0.1, 0.09, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], "kl": 0.0011,
                 "covered": 10, "consistency": 0.93}


def _edit(run: Path, config=None, log_extra=None, metrics=None, floor=None) -> None:
    """Change a fake run's config, add keys to its training log rows, replace its main evaluation's numbers."""
    if config:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        config(cfg)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if log_extra:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        (run / "metrics.jsonl").write_text("".join(json.dumps({**r, **log_extra(r)}) + "\n" for r in rows))
    (main,) = [p for p in (run / "eval").glob("eval-*.json") if "-n500-" not in p.name]
    rec = json.loads(main.read_text())
    if metrics:
        rec["metrics"].update(metrics)
    if floor:
        rec["floor"].update(floor)
    main.write_text(json.dumps(rec))


def _ada(cfg: dict) -> None:
    cfg["method"].update(loss="rpgan", penalty="r1+r2")
    cfg["method"]["augment"] = {"kind": "ada", "target": 0.6}


def _sign(row: dict) -> dict:
    return {"D_sign_real": round(row["step"] / 2000, 4), "ada_p": round(row["step"] / 4000, 4)}


def _report(env, runs: list[Path]) -> tuple[dict, str, str, Path]:
    out = env / "report"
    build_report(runs, out, neighbours=False)
    return (json.loads((out / "report.json").read_text()), (out / "report.html").read_text(),
            (out / "report.md").read_text(), out)


def test_panel_numbers_come_from_the_records(env):
    gan = make_run(env / "runs", "gan", metrics={"fid": 13.5, "recall": 0.5, "classes": GAN_CLASSES})
    _edit(gan, config=_ada, log_extra=_sign, floor={"classes": FLOOR_CLASSES})
    diffusion = make_run(env / "runs", "diffusion")
    summary, html, md, out = _report(env, [gan, diffusion])
    (row,) = summary["collapse"]
    assert row["classes"] == GAN_CLASSES and row["recipe"] == "rpgan, r1+r2, ada"
    assert row["d_sign_real_last"] == 0.5 and row["ada_p_last"] == 0.25      # the log's last row (step 1000)
    assert row["modes"] is None and row["modes_kl"] is None                  # Fashion-MNIST: no modes scored
    for text in (html, md):
        assert "GAN collapse" in text and "0.421" in text and "8 / 10" in text and "Ankle boot" in text
        assert "0.500" in text and "0.250" in text and "0.001" in text      # the sign, p, the floor's class KL
        assert "modes covered" in text and "not scored or logged for any gan" in text.lower()
    assert 'id="gan-class-fractions"' in html and 'id="gan-d-sign-real"' in html
    assert (out / "img" / "gan-class-fractions.png").stat().st_size > 1000
    assert (out / "img" / "gan-d-sign-real.png").stat().st_size > 1000


def test_modes_on_the_ring_and_stacked_sets(env):
    ring = make_run(env / "runs", "gan", metrics={"fid": 1.0, "modes": 6, "hq_fraction": 0.8125, "reverse_kl": 0.2877})
    _edit(ring, config=lambda c: c["data"].update(name="ring"), floor={"modes": 8, "hq_fraction": 0.99,
                                                                       "reverse_kl": 0.0012})
    stacked = make_run(env / "runs", "gan", name="stacked-gan", seed=1,
                       metrics={"fid": 1.0, "modes": 917, "modes_total": 1000, "kl": 0.3466})
    flow = make_run(env / "runs", "flow")
    summary, html, md, _ = _report(env, [ring, stacked, flow])
    by_run = {r["run"]: r for r in summary["collapse"]}
    assert by_run["fmnist-gan"]["modes"] == 6 and by_run["fmnist-gan"]["modes_total"] == 8   # ring, from the set
    assert by_run["fmnist-gan"]["modes_kl"] == 0.2877 and by_run["fmnist-gan"]["hq_fraction"] == 0.8125
    assert by_run["stacked-gan"]["modes_total"] == 1000 and by_run["stacked-gan"]["modes_kl"] == 0.3466
    for text in (html, md):
        assert "6 / 8" in text and "917 / 1000" in text and "0.288" in text and "0.347" in text
        assert "8 / 8" in text                                   # the floor's row
        assert NOT_SCORED in text and NOT_LOGGED in text         # no classes scored, no sign logged
    assert 'id="gan-class-fractions"' not in html and 'id="gan-d-sign-real"' not in html
    assert "class histogram not scored for" in html and "not logged for" in html


def test_mode_totals_match_the_data():
    from genbench.data.toy2d import mode_centers
    from genbench.metrics.modes import stacked_mode_stats

    assert MODES_TOTAL == {"ring": len(mode_centers("ring")), "grid": len(mode_centers("grid")),
                           "stacked_fashion_mnist": stacked_mode_stats([[0, 0, 0]])["modes_total"]}


@pytest.mark.parametrize("families", [("diffusion", "flow")])
def test_no_panel_without_gan_runs(env, families):
    runs = [make_run(env / "runs", f) for f in families]
    summary, html, md, out = _report(env, runs)
    assert summary["collapse"] is None
    assert "GAN collapse" not in html and "GAN collapse" not in md
    assert not list((out / "img").glob("gan-*.png"))
