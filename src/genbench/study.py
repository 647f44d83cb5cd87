"""`genbench study`: train a GAN, a diffusion and a flow model under one matched budget, evaluate them
under one protocol, sweep the samplers' NFE, and write the report.

A study preset (``configs/study/<name>.yaml``, validated by :class:`StudyConfig`) names the three run
presets, the budget that replaces each run's ``train.budget`` (wall-clock minutes, images seen, ...),
the number of training seeds, the evaluation protocol and the NFE sweeps. Rerunning a study in the
same folder continues it: finished runs and existing evaluations are reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from genbench.config import BudgetConfig, Seed
from genbench.errors import GenbenchError
from genbench.files import write_json
from genbench.presets import resolve_config, resolve_study

Family = Literal["gan", "diffusion", "flow", "few-step"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudyBudget(BudgetConfig):
    """The one budget every family trains under: a run's ``train.budget`` (same limits, checks and
    messages), listed minutes first as studies always have (``study.json``, progress lines, report)."""

    @model_serializer(mode="wrap")
    def _minutes_first(self, handler: SerializerFunctionWrapHandler) -> dict:
        limits = handler(self)
        return {k: limits[k] for k in ("minutes", "kimg", "steps", "epochs")}


class StudyEval(_Strict):
    n: int = Field(2000, ge=2)
    seed: Seed = 0   # 0..2^63-1, as a run's seed
    metrics: str | None = None            # None: fid,kid,is,prdc,speed for images; modes,prdc,speed for 2-D
    batch_size: int | None = Field(None, ge=1)   # None: 64 on the CPU, 256 on a GPU
    nfe: dict[Family, int] = Field(default_factory=dict)        # per family; default: the run's own
    solver: dict[Family, str] = Field(default_factory=dict)
    history_n: int | None = Field(None, ge=2)   # also score every kept checkpoint on this many samples


class StudySweep(_Strict):
    n: int = Field(500, ge=2)
    # family -> solver -> NFE counts
    solvers: dict[Family, dict[str, list[int]]] = Field(default_factory=dict)


class StudyConfig(_Strict):
    name: str
    description: str = ""
    runs: dict[Family, str]                                     # family -> run preset (configs/<name>.yaml)
    overrides: dict[str, list[str]] = Field(default_factory=dict)   # "all" or a family -> key=value
    datasets: list[str] | None = None                           # one study per data.name (toy2d: ring, grid)
    budget: StudyBudget
    seeds: int = Field(1, ge=1, le=20)
    eval: StudyEval = Field(default_factory=StudyEval)
    sweep: StudySweep | None = None
    neighbours: bool = True
    # class-conditional study (issue 17): every run trains with conditional=true, samples are asked for the
    # classes in turn by seed, the domain classifier scores class consistency; ``guidance`` is the scale each
    # guided family is evaluated at (default 1: the conditional model) and ``guidance_sweep`` the scales whose
    # FID / IS / precision / recall / consistency curve the report plots (on sweep.n samples, else eval.n)
    conditional: bool = False
    guidance: dict[Family, float] = Field(default_factory=dict)
    guidance_sweep: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if len(self.runs) < 2:
            raise ValueError("a study needs at least two families in runs")
        if (self.guidance or self.guidance_sweep) and not self.conditional:
            raise ValueError("guidance and guidance_sweep need conditional=true (an unconditional model has "
                             "nothing to guide)")
        if "gan" in self.guidance:
            raise ValueError("guidance.gan: a GAN's generator has no unconditional prediction to guide away from")
        if any(w < 0 for w in [*self.guidance.values(), *(self.guidance_sweep or [])]):
            raise ValueError("guidance scales must be >= 0 (1 = the conditional model)")
        bad = set(self.overrides) - {"all", *self.runs}
        if bad:
            raise ValueError(f"overrides for unknown families {sorted(bad)}; use 'all' or one of {sorted(self.runs)}")
        return self


def load_study(name: str, overrides: list[str] = ()) -> tuple[StudyConfig, Path]:
    from genbench.config import parse_overrides, read_yaml, set_dotted

    path = resolve_study(name)
    tree = read_yaml(path)
    pairs = parse_overrides(list(overrides))
    if any(k.startswith("budget.") or k == "budget" for k, _ in pairs):
        tree["budget"] = {}     # a budget given on the command line replaces the preset's, not adds to it
    for key, value in pairs:
        set_dotted(tree, key, value)
    try:
        return StudyConfig.model_validate(tree), path
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "study"
        raise GenbenchError(f"study {path}: {where}: {first['msg']}",
                            "valid keys: name, runs, overrides, datasets, budget, seeds, eval, sweep, neighbours, "
                            "conditional, guidance, guidance_sweep") \
            from None


class Progress:
    """Stage lines with elapsed time; each training shows its own live bar."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled, self.t0 = total, 0, enabled, time.time()

    def stage(self, text: str) -> None:
        self.done += 1
        if self.enabled:
            mins, secs = divmod(int(time.time() - self.t0), 60)
            print(f"[{self.done}/{self.total} {mins:02d}:{secs:02d}] {text}", flush=True)


def _train(study: StudyConfig, family: str, seed: int, run_dir: Path, extra: list[str], progress: bool) -> None:
    from genbench.config import load_config, read_yaml
    from genbench.files import read_json
    from genbench.rundir import open_run
    from genbench.train.loop import train

    info_path = run_dir / "run.json"
    if info_path.is_file() and read_json(info_path, RUN_JSON_FIX).get("status") == "finished":
        train_cfg = read_yaml(run_dir / "config.yaml").get("train")
        saved = (train_cfg.get("budget") if isinstance(train_cfg, dict) else None) or {}
        if {k: v for k, v in saved.items() if v is not None} == study.budget.as_dict():
            return                               # done in an earlier call of the same study
        # a different budget: continue the run under it (genbench train --resume)
    budget = json.dumps(study.budget.as_dict())
    overrides = [*(["conditional=true"] if study.conditional else []), *study.overrides.get("all", []),
                 *study.overrides.get(family, []), *extra,
                 f"seed={seed}", f"name={study.name}-{family}-s{seed}", f"train.budget={budget}"]
    cfg = load_config(resolve_config(study.runs[family]), overrides)
    resume = (run_dir / "config.yaml").is_file()
    with open_run(run_dir, cfg, resume=resume) as (cfg, on_checkpoint):
        train(cfg, run_dir, resume=resume, progress=progress, on_checkpoint=on_checkpoint)


RUN_JSON_FIX = "restore it from a copy, or delete the run's folder to train it again"


def _is_points(run_dir: Path) -> bool:
    """Whether the run learned 2-D points (from its run.json's data shape)."""
    from genbench.files import read_json

    info = read_json(run_dir / "run.json", RUN_JSON_FIX)
    shape = info.get("data", {}).get("shape") if isinstance(info.get("data"), dict) else None
    if not isinstance(shape, list):
        raise GenbenchError(f"{run_dir / 'run.json'} is damaged: no data.shape", RUN_JSON_FIX)
    return len(shape) == 1


def _evaluate(study: StudyConfig, family: str, run_dir: Path, progress: bool) -> dict:
    from genbench.evaluate import evaluate_run, format_record

    is_points = _is_points(run_dir)
    metrics = study.eval.metrics or ("modes,prdc,speed" if is_points else "fid,kid,is,prdc,speed")
    if study.conditional and not is_points and "classes" not in metrics.split(","):
        metrics += ",classes"     # class consistency: the share of samples of the class asked for
    _, rec = evaluate_run(run_dir, metrics=metrics, n=study.eval.n, seed=study.eval.seed,
                          solver=study.eval.solver.get(family), nfe=study.eval.nfe.get(family),
                          batch_size=study.eval.batch_size, progress=progress, reuse=True,
                          guidance=study.guidance.get(family))
    if progress:
        print(format_record(rec), flush=True)
    if study.eval.history_n:
        from genbench.train.checkpoint import list_checkpoints

        quick = "modes,prdc" if is_points else "fid,kid"
        for step in sorted(list_checkpoints(run_dir / "checkpoints")):
            evaluate_run(run_dir, checkpoint=step, metrics=quick, n=study.eval.history_n, seed=study.eval.seed,
                         solver=study.eval.solver.get(family), nfe=study.eval.nfe.get(family),
                         batch_size=study.eval.batch_size, floor=False, progress=progress, reuse=True)
    return rec


def _sweep(study: StudyConfig, family: str, run_dir: Path) -> None:
    from genbench.evaluate import nfe_sweep

    is_points = _is_points(run_dir)
    if study.guidance_sweep and family != "gan" and not is_points:
        from genbench.guidance_sweep import guidance_sweep

        guidance_sweep(run_dir, sorted(study.guidance_sweep), n=study.sweep.n if study.sweep else study.eval.n,
                       seed=study.eval.seed, metrics="fid,is,prdc,classes", solver=study.eval.solver.get(family),
                       nfe=study.eval.nfe.get(family), batch_size=study.eval.batch_size)
    for solver, nfes in (study.sweep.solvers.get(family, {}) if study.sweep else {}).items():
        nfe_sweep(run_dir, [solver], tuple(nfes), n=study.sweep.n, seed=study.eval.seed,
                  metrics="modes,prdc" if is_points else "fid,kid", batch_size=study.eval.batch_size)


def _has_sweep(study: StudyConfig, family: str) -> bool:
    return bool((study.sweep and study.sweep.solvers.get(family)) or (study.guidance_sweep and family != "gan"))


def run_study(name: str, overrides: list[str] = (), out: Path | None = None, progress: bool = True,
              data_dir: str | None = None) -> dict[str, Path]:
    """Train, evaluate, sweep and report; returns the (last) report's paths, plus ``reports``."""
    study, source = load_study(name, overrides)
    out = Path(out) if out else Path("runs") / f"study-{study.name}"
    from genbench.rundir import check_study_folder

    check_study_folder(out, study.name)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "study.json", {"source": str(source), **study.model_dump()})
    datasets = study.datasets or [None]
    families = list(study.runs)
    n_sweeps = sum(1 for f in families if _has_sweep(study, f))
    per_set = study.seeds * len(families) * 2 + n_sweeps * study.seeds + 1
    bar = Progress(per_set * len(datasets), progress)
    if progress:
        sets = f" on {', '.join(datasets)}" if study.datasets else ""
        print(f"study {study.name}{sets}: {', '.join(families)} x {study.seeds} seed(s), budget "
              f"{study.budget.as_dict()} each; evaluation on {study.eval.n} samples"
              + (f", NFE sweeps on {study.sweep.n}" if study.sweep else "") + f" -> {out}", flush=True)
    reports: dict[str, Path] = {}
    paths: dict[str, Path] = {}
    for ds in datasets:
        base = out / ds if ds else out
        extra = [f"data.name={ds}"] if ds else []
        if data_dir:
            extra.append(f"data.root={data_dir}")
        run_dirs = []
        for seed in range(study.seeds):
            for fam in families:
                run_dir = base / f"{fam}-s{seed}"
                bar.stage(f"train {fam}{f' on {ds}' if ds else ''} (seed {seed}, budget {study.budget.as_dict()})"
                          f" -> {run_dir}")
                _train(study, fam, seed, run_dir, extra, progress)
                run_dirs.append(run_dir)
        for run_dir in run_dirs:
            fam = run_dir.name.rsplit("-s", 1)[0]
            bar.stage(f"evaluate {run_dir.name}: {study.eval.n} samples")
            _evaluate(study, fam, run_dir, progress)
            if _has_sweep(study, fam):
                bar.stage(f"sweeps {run_dir.name}: NFE {study.sweep.solvers.get(fam) if study.sweep else None}, "
                          f"guidance {study.guidance_sweep if fam != 'gan' else None}")
                _sweep(study, fam, run_dir)
        bar.stage("report")
        from genbench.report import build_report

        info = {"preset": study.name, "budget": study.budget.as_dict(), "seeds": study.seeds,
                "eval": study.eval.model_dump(), "sweep": study.sweep.model_dump() if study.sweep else None}
        if ds:
            info["dataset"] = ds
        paths = build_report(run_dirs, base / "report", title=f"genbench study {study.name}" + (f" ({ds})" if ds else ""),
                             study=info, neighbours=study.neighbours)
        reports[ds or study.name] = paths["html"]
        if progress:
            print(f"report -> {paths['html']}", flush=True)
    return {**paths, "reports": reports}
