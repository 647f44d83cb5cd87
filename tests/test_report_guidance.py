"""The report's guidance section: a conditional run's guidance sweep read from its eval folder, the best w
of each score shown as recorded, and the section absent when no run was swept."""

from __future__ import annotations

import json

from genbench.cli import main
from genbench.guidance_sweep import best_scales
from test_report import make_run


def _sweep(run, points):
    record = {"genbench_guidance_sweep": 1, "run": run.name, "n": 2000, "seed": 0, "metrics": "fid,is,prdc,classes",
              "solver": "dpm++2m", "nfe_requested": 10, "interval_sigma": None, "points": points,
              "best": best_scales(points)}
    (run / "eval" / "guidance-n2000-seed0-dpm++2m10.json").write_text(json.dumps(record))


def test_guidance_section_shows_each_runs_best_scale(tmp_path):
    runs = [make_run(tmp_path, f) for f in ("gan", "diffusion", "flow")]
    _sweep(runs[1], [{"w": 1.0, "fid": 9.0, "is": 7.0, "recall": 0.70, "consistency": 0.90},
                     {"w": 2.0, "fid": 7.5, "is": 7.8, "recall": 0.62, "consistency": 0.97},
                     {"w": 4.0, "fid": 11.0, "is": 8.4, "recall": 0.45, "consistency": 0.995}])
    assert main(["compare", *map(str, runs), "-o", str(tmp_path / "report"), "--no-neighbours"]) == 0
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    (row,) = summary["guidance"]
    assert row["best"]["fid"] == {"w": 2.0, "value": 7.5}
    assert row["best"]["is"]["w"] == 4.0 and row["best"]["recall"]["w"] == 1.0 and row["best"]["consistency"]["w"] == 4.0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Guidance" in md and "2.0 (7.5)" in md and "not scored" in md   # precision was not swept
    assert (tmp_path / "report" / "img" / "guidance-sweep.png").stat().st_size > 1000
    assert 'id="guidance"' in (tmp_path / "report" / "report.html").read_text()


def test_no_guidance_section_without_a_sweep(tmp_path):
    runs = [make_run(tmp_path, f) for f in ("gan", "diffusion", "flow")]
    assert main(["compare", *map(str, runs), "-o", str(tmp_path / "report"), "--no-neighbours"]) == 0
    assert json.loads((tmp_path / "report" / "report.json").read_text())["guidance"] == []
    assert "## Guidance" not in (tmp_path / "report" / "report.md").read_text()
    assert not (tmp_path / "report" / "img" / "guidance-sweep.png").exists()
