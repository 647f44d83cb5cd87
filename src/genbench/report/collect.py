"""Read run directories into typed records and check that their evaluations can stand side by side.

A run directory (see ``genbench.run``) gives ``config.yaml``, ``run.json``, ``metrics.jsonl``,
``samples/grid-*.png`` and ``eval/*.json`` (single evaluations and ``sweep-*.json`` NFE curves).
Nothing here imports torch: a report can be rebuilt anywhere from the files alone.

Two evaluations are comparable only under the same protocol (:data:`PROTOCOL_FIELDS`): the same
feature extractor and weights, the same reference set (dataset, classes, split, count, content
hash), the same number of generated samples and first seed, and speed measured on the same device.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from genbench.config import FAMILY_OF, TOY_SETS, read_yaml
from genbench.errors import GenbenchError
from genbench.files import read_json
from genbench.limits import LOG_FILE_BYTES, read_bytes

FAMILY_NAMES = {"gan": "GAN", "diffusion": "diffusion", "flow": "flow", "few-step": "few-step",
                "external": "external"}
ENTRY_FILE = "entry.json"   # genbench.external.ENTRY_FILE (report/ imports no torch-side package)
SAMPLE_KINDS = ("folder", "array")   # entries of bare samples: no seeds, no network, no training

# (field name shown to the user, how to read it from an eval record)
PROTOCOL_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("extractor.name", ("extractor", "name")),
    ("extractor.weights_sha256", ("extractor", "weights_sha256")),
    ("reference.dataset", ("reference", "dataset")),
    ("reference.classes", ("reference", "classes")),
    ("reference.split", ("reference", "split")),
    ("reference.n", ("reference", "n")),
    ("reference.fingerprint", ("reference", "fingerprint")),
    ("sampling.n", ("sampling", "n")),
    ("sampling.first_seed", ("sampling", "seeds", 0)),
)
SPEED_FIELD = ("speed.device", ("speed", "device"))


def _get(record: dict, path: tuple) -> object:
    node: object = record
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def protocol_of(record: dict, seeded: bool = True) -> dict[str, object]:
    """The protocol fields of an evaluation; ``seeded=False`` leaves out the first seed (a comparison that
    includes samples made outside genbench, which have none)."""
    out = {name: _get(record, path) for name, path in PROTOCOL_FIELDS if seeded or name != "sampling.first_seed"}
    if isinstance(out["reference.classes"], list):
        out["reference.classes"] = tuple(out["reference.classes"])
    return out


def protocol_key(record: dict, seeded: bool = True) -> tuple:
    return tuple(json.dumps(v, sort_keys=True, default=str) for v in protocol_of(record, seeded).values())


@dataclass
class RunRecord:
    """One run directory, read back."""

    path: Path
    name: str
    family: str                      # gan | diffusion | flow | few-step (config.FAMILY_OF of the method kind)
    config: dict
    info: dict                       # run.json
    log: list[dict]                  # metrics.jsonl
    grids: list[Path]                # samples/grid-*.png, by step
    evals: list[dict] = field(default_factory=list)    # eval/*.json single evaluations (with "_path")
    sweeps: list[dict] = field(default_factory=list)   # eval/sweep-*.json
    guidance: list[dict] = field(default_factory=list)  # eval/guidance-*.json (a conditional run's scores against w)
    main_eval: dict | None = None    # the evaluation chosen for the report
    entry: dict | None = None        # entry.json of samples or a model from outside genbench

    @property
    def recipe(self) -> str:
        """Which recipe of its family the run used (the report names it beside the family)."""
        if self.entry is not None:
            what = {"folder": "image folder", "array": "sample array", "diffusers": "diffusers pipeline",
                    "export": "genbench export"}.get(self.entry["kind"], self.entry["kind"])
            return f"from outside genbench: {what} {self.entry['source']}"
        method = self.config.get("method") if isinstance(self.config.get("method"), dict) else {}
        kind = method.get("kind") or self.info.get("method")
        if kind == "gan":
            nets = self.config.get("nets") if isinstance(self.config.get("nets"), dict) else {}
            kinds = "/".join(str((nets.get(p) or {}).get("kind")) for p in ("G", "D"))
            return f"GAN ({method.get('loss', 'bce')} loss, {kinds})"
        if kind == "diffusion":
            return f"DDPM ({method.get('schedule', 'linear')} betas, {method.get('prediction', 'eps')}-prediction)"
        if kind == "edm":
            return f"EDM (Karras et al. 2022, sigma_data {method.get('sigma_data', 0.5)})"
        if kind == "flow":
            return "flow matching (linear path, velocity)"
        if kind == "meanflow":
            start = (self.info.get("init_from") or {}).get("run")
            return ("MeanFlow (Geng et al. 2025, average velocity, "
                    + (f"tuned from {Path(start).name})" if start else "from scratch)"))
        if kind == "ect":
            start = (self.info.get("init_from") or {}).get("run")
            return (f"ECT consistency model (Geng et al. 2024, {method.get('base', 'flow')} teacher"
                    + (f" {Path(start).name}, whose training time is included)" if start else ")"))
        return str(kind)

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def group_key(self) -> str:
        """Runs that differ only in name and seed are repeats of one setting."""
        cfg = {k: v for k, v in self.config.items() if k not in ("name", "seed")}
        return json.dumps(cfg, sort_keys=True, default=str)

    @property
    def data_kind(self) -> str:
        shape = (self.info.get("data") or {}).get("shape")
        if shape is not None:
            return "points" if len(shape) == 1 else "image"
        return "points" if (self.config.get("data") or {}).get("name") in TOY_SETS else "image"

    @property
    def sample_params(self) -> int | None:
        params = self.info.get("params") or (self.main_eval or {}).get("params") or {}
        return params.get("G", params.get("model"))

    @property
    def total_params(self) -> int | None:
        params = self.info.get("params") or (self.main_eval or {}).get("params") or {}
        return sum(params.values()) if params else None


RUN_JSON_FIX = ("restore it from a copy, or delete it: run.json only records the run's provenance and status "
                "(the report then lacks its training time and sizes)")
EVAL_FIX = "delete it and evaluate the run again (genbench eval RUN), or leave the run out"
LOG_FIX = ("delete the damaged line (or the whole metrics.jsonl: the report then has no training curves for "
           "this run)")


def read_log(path: Path) -> list[dict]:
    """metrics.jsonl's records. A last line cut short by a kill is skipped; any other line that is
    not a JSON object is refused, naming the file and the line."""
    rows = []
    if not path.is_file():
        return rows
    lines = read_bytes(path, LOG_FILE_BYTES, "training log", LOG_FIX).splitlines()
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            if i == last and not isinstance(err, UnicodeDecodeError):
                continue  # a line cut short by an interrupted run
            what = "is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "is not valid JSON"
            raise GenbenchError(f"{path} is damaged: line {i + 1} {what}", LOG_FIX) from None
        if not isinstance(row, dict) or not isinstance(row.get("step", 0), (int, float)):
            raise GenbenchError(f"{path} is damaged: line {i + 1} is not a log record (a JSON object with a "
                                "numeric step)", LOG_FIX)
        rows.append(row)
    return rows


ENTRY_FIX = "score the source again into a new folder: genbench eval SOURCE --dataset NAME --out FOLDER"


def _read_entry(path: Path) -> RunRecord:
    """An entry folder of `genbench eval` for samples or a model from outside genbench, as a run record
    without training (its speed and training columns are unknown in the report)."""
    entry = read_json(path / ENTRY_FILE, ENTRY_FIX, "entry description")
    bad = [k for k in ("kind", "source", "dataset", "name") if not isinstance(entry.get(k), str)]
    if bad:
        raise GenbenchError(f"{path / ENTRY_FILE} is damaged (missing: {', '.join(bad)})", ENTRY_FIX)
    grids = sorted((path / "samples").glob("grid-*.png"))
    config = {"name": entry["name"], "external": {k: entry.get(k) for k in ("kind", "source", "fingerprint")},
              "data": {"name": entry["dataset"], "root": entry.get("data_root")},
              "train": {"grid_n": 64}}
    shape = entry.get("shape")
    return RunRecord(path=path, name=entry["name"], family="external", config=config,
                     info={"data": {"shape": shape}} if isinstance(shape, list) else {}, log=[], grids=grids,
                     entry=entry)


def read_run(path: Path) -> RunRecord:
    path = Path(path)
    if (path / ENTRY_FILE).is_file():
        rec = _read_entry(path)
    elif not (path / "config.yaml").is_file():
        raise GenbenchError(f"{path} is not a genbench run (no config.yaml)",
                            "give directories made by `genbench train` or `genbench study`, or entry folders "
                            "made by `genbench eval` for samples from outside genbench")
    else:
        config = read_yaml(path / "config.yaml")
        info = read_json(path / "run.json", RUN_JSON_FIX) if (path / "run.json").is_file() else {}
        method = config.get("method")
        kind = (method.get("kind") if isinstance(method, dict) else None) or info.get("method")
        if kind not in FAMILY_OF:
            raise GenbenchError(f"{path}: unknown method kind {kind!r}",
                                f"give runs of one of the methods {', '.join(FAMILY_OF)}")
        rec = RunRecord(path=path, name=config.get("name") or path.name, family=FAMILY_OF[kind], config=config,
                        info=info, log=read_log(path / "metrics.jsonl"),
                        grids=sorted((path / "samples").glob("grid-*.png")))
    for p in sorted((path / "eval").glob("*.json")):
        data = read_json(p, EVAL_FIX, "evaluation")
        data["_path"] = str(p)
        if "genbench_sweep" in data:
            curves = data.get("curves")
            if not (isinstance(curves, dict) and all(isinstance(v, list) and all(isinstance(q, dict) for q in v)
                                                     for v in curves.values())):
                raise GenbenchError(f"NFE sweep {p} is damaged: 'curves' missing or not lists of points", EVAL_FIX)
            rec.sweeps.append(data)
        elif "genbench_guidance_sweep" in data:
            if not isinstance(data.get("points"), list) or not all(isinstance(q, dict) and "w" in q
                                                                   for q in data["points"]):
                raise GenbenchError(f"guidance sweep {p} is damaged: 'points' missing or without 'w'", EVAL_FIX)
            rec.guidance.append(data)
        elif "genbench_eval" in data:
            bad = [k for k in ("checkpoint", "sampling", "metrics") if not isinstance(data.get(k), dict)]
            if bad:
                raise GenbenchError(f"evaluation {p} is damaged: {', '.join(bad)} missing or not an object", EVAL_FIX)
            rec.evals.append(data)
    return rec


def _preference(record: dict) -> tuple:
    """Among evaluations under one protocol: the full one (with floor), the latest step, the most metrics."""
    return (record.get("floor") is not None, (record.get("checkpoint") or {}).get("step") or 0,
            len(record.get("metrics") or {}), record.get("speed") is not None, record.get("created") or "")


def _fmt(value: object) -> str:
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    return str(value)


def choose_common_evals(runs: list[RunRecord]) -> dict[str, object]:
    """Pick, for every run, an evaluation under one shared protocol; refuse when there is none.

    Returns the shared protocol. Raises GenbenchError naming the first differing field.
    """
    missing = [r for r in runs if not r.evals]
    if missing:
        raise GenbenchError(f"run {missing[0].path} has no evaluation (no eval/*.json)",
                            f"evaluate it first: genbench eval {missing[0].path} -n 2000 --metrics fid,kid,is,prdc,speed")
    # the full evaluations (with the real-data floor) where every run has one; quick ones (NFE sweeps,
    # earlier checkpoints) only when some run has nothing else
    full = all(any(e.get("floor") is not None for e in r.evals) for r in runs)
    pool = {id(r): [e for e in r.evals if e.get("floor") is not None or not full] for r in runs}
    # samples made outside genbench have no seeds: beside them, the first seed is not part of the protocol
    seeded = not any(r.entry is not None and r.entry.get("kind") in SAMPLE_KINDS for r in runs)
    keys = [{protocol_key(e, seeded) for e in pool[id(r)]} for r in runs]
    common = set.intersection(*keys)
    if not common:
        latest = [max(pool[id(r)], key=_preference) for r in runs]
        protos = [protocol_of(e, seeded) for e in latest]
        for name in protos[0]:
            values = [p[name] for p in protos]
            if len({json.dumps(v, default=str) for v in values}) > 1:
                detail = ", ".join(f"{r.path.name}: {_fmt(v)}" for r, v in zip(runs, values, strict=True))
                raise GenbenchError(
                    f"cannot compare: the evaluations differ in {name} ({detail})",
                    "evaluate every run under one protocol, e.g. genbench eval RUN -n 5000 for each run")
        raise GenbenchError("cannot compare: no single protocol is shared by every run's evaluations",
                            "evaluate every run with the same -n, --seed and extractor")
    # the shared protocol with the most samples
    n_at = [name for name, _ in PROTOCOL_FIELDS].index("sampling.n")
    best = max(common, key=lambda k: json.loads(k[n_at]) or 0)
    for r in runs:
        r.main_eval = max((e for e in pool[id(r)] if protocol_key(e, seeded) == best), key=_preference)
    devices = {(r.main_eval.get("speed") or {}).get("device") for r in runs if r.main_eval.get("speed")}
    if len(devices) > 1:
        detail = ", ".join(f"{r.path.name}: {(r.main_eval.get('speed') or {}).get('device')}" for r in runs)
        raise GenbenchError(f"cannot compare: speed was measured on different devices ({detail})",
                            "evaluate with --metrics ...,speed on one machine for every run")
    return protocol_of(runs[0].main_eval, seeded)


def common_sweeps(runs: list[RunRecord]) -> tuple[dict[str, dict], list[str]]:
    """NFE sweeps that share (n, seed) across the runs that have one: {run path: sweep}; notes on the rest."""
    having = [r for r in runs if r.sweeps]
    notes: list[str] = []
    if not having:
        return {}, notes
    keys = [{(s.get("n"), s.get("seed")) for s in r.sweeps} for r in having]
    common = set.intersection(*keys)
    if not common:
        detail = ", ".join(f"{r.path.name}: n={sorted(k[0] for k in ks)}" for r, ks in zip(having, keys, strict=True))
        notes.append(f"NFE sweeps left out: no common sample count and seed ({detail})")
        return {}, notes
    n, seed = max(common, key=lambda k: k[0] or 0)
    return {str(r.path): next(s for s in r.sweeps if (s.get("n"), s.get("seed")) == (n, seed)) for r in having}, notes


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95% confidence interval (Student t); None for a single value."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return float("nan"), None
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    from scipy.stats import t

    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return m, float(t.ppf(0.975, len(vals) - 1) * sd / math.sqrt(len(vals)))
