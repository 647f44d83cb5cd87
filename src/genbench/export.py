"""`genbench export RUN --to DIR`: a run's sampling network as a self-describing folder to share.

The folder holds
- ``model.safetensors``: the sampling network's weights (the EMA copy where the run kept one);
- ``config.yaml``: the run's resolved config (the recipe), and ``genbench_export.json``: what
  ``genbench eval``/``sample`` need to load it back (:func:`load_export`) with no checkpoint;
- ``README.md``: a model card with the Hugging Face front-matter (library, licence placeholder, tags,
  datasets, pipeline tag, ``model-index`` results), the data provenance, the recipe, the training
  counters, every evaluation with its protocol and floor, and the sample grid (``samples.png``);
- ``evaluations/``: the run's ``eval/*.json`` as they are;
- ``diffusers/``: a ``DDIMPipeline`` (``UNet2DModel`` + ``DDIMScheduler``) where the network maps
  exactly (:mod:`genbench.external.to_diffusers` says when: DDPM runs with T = 1000 and the
  unconditional UNet with ``ch_mult[0] = 1`` and one attention head width, e.g. ``fmnist/ddpm`` and
  ``cifar10/ddpm``), verified by loading it back in diffusers and comparing the network's outputs with
  genbench's; otherwise the card says why it was not written.
An existing folder is replaced only with ``overwrite`` and only when genbench wrote it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from genbench.errors import GenbenchError
from genbench.external import EXPORT_MARKER
from genbench.files import atomic_write_bytes, read_json, write_json
from genbench.limits import CHECKPOINT_BYTES, CONFIG_FILE_BYTES, GRID_FILE_BYTES, check_file, read_bytes

EXPORT_ENTRIES = frozenset({"model.safetensors", "config.yaml", EXPORT_MARKER, "README.md", "evaluations",
                            "samples.png", "diffusers"})
VERIFY_RTOL = 1e-3   # diffusers' output against genbench's, relative to the output's magnitude (float32 embeddings)
HF_DATASETS = {"fashion_mnist": "zalando-datasets/fashion_mnist", "mnist": "ylecun/mnist",
               "cifar10": "uoft-cs/cifar10", "stacked_fashion_mnist": "zalando-datasets/fashion_mnist"}
EVAL_FIX = "delete the damaged evaluation from the run's eval/ (or move it out), then export again"


def is_export(path: Path) -> bool:
    return (Path(path) / EXPORT_MARKER).is_file()


def _main_eval(evals: list[dict]) -> dict | None:
    """The evaluation the card leads with: with a floor, the latest step, the most samples."""
    scored = [e for e in evals if isinstance(e.get("metrics"), dict) and e.get("metrics")]
    return max(scored, key=lambda e: (e.get("floor") is not None, (e.get("checkpoint") or {}).get("step") or 0,
                                      (e.get("sampling") or {}).get("n") or 0), default=None)


def write_diffusers(net, cfg, data_shape, clip: str, out: Path) -> dict:
    """The network and schedule as a diffusers ``DDIMPipeline`` in ``out``, loaded back and compared."""
    from genbench.external.diffusers import import_diffusers
    from genbench.external.to_diffusers import convert_state_dict, scheduler_config, unet_config

    diffusers = import_diffusers()
    unet = diffusers.UNet2DModel(**unet_config(cfg.nets["model"], data_shape))
    unet.load_state_dict(convert_state_dict(net.state_dict(), cfg.nets["model"], cfg.method.T), strict=True)
    scheduler = diffusers.DDIMScheduler(**scheduler_config(cfg.method, clip))
    diffusers.DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(str(out), safe_serialization=True)
    back = diffusers.UNet2DModel.from_pretrained(str(out / "unet"), use_safetensors=True, local_files_only=True,
                                                 low_cpu_mem_usage=False).eval()
    x = torch.randn(4, *data_shape, generator=torch.Generator().manual_seed(0))
    steps = torch.tensor([0, 249, 500, cfg.method.T - 1])
    with torch.no_grad():
        ours = net.cpu().eval()(x, ((steps.double() + 1) / cfg.method.T).float())
        theirs = back(x, steps).sample
    err, scale = float((ours - theirs).abs().max()), float(ours.abs().max())
    if not err <= VERIFY_RTOL * max(1.0, scale):
        raise GenbenchError(f"the diffusers export does not reproduce the network: max |difference| {err:.3g} at "
                            f"output scale {scale:.3g}", "report this as a genbench bug; export without it meanwhile")
    return {"max_abs_diff": err, "output_scale": scale, "steps_checked": steps.tolist(), "rtol": VERIFY_RTOL,
            "diffusers": diffusers.__version__}


def export_run(run_dir: Path, to: Path, overwrite: bool = False, checkpoint: int | None = None,
               use_ema: bool = True, diffusers_format: bool = True) -> dict[str, Path]:
    """Write the export folder ``to`` (see the module docstring); returns its main paths."""
    from safetensors.torch import save_file

    from genbench.external.to_diffusers import mapping_problem
    from genbench.run import load_run
    from genbench.rundir import write_folder

    run_dir = Path(run_dir)
    loaded = load_run(run_dir, checkpoint, "cpu")
    cfg = loaded.cfg
    player = loaded.method.sample_player
    net = loaded.sampling_nets(use_ema)[player]
    weights = "ema" if use_ema and loaded.ema is not None else "raw"
    num_classes = getattr(net, "num_classes", None)
    info = read_json(run_dir / "run.json", "restore run.json, or export a run that has one") \
        if (run_dir / "run.json").is_file() else {}
    evals = {p.name: read_json(p, EVAL_FIX, "evaluation") for p in sorted((run_dir / "eval").glob("*.json"))}
    grids = sorted((run_dir / "samples").glob("grid-*.png"))
    config_text = read_bytes(run_dir / "config.yaml", CONFIG_FILE_BYTES, "run config", "restore config.yaml")
    problem = mapping_problem(cfg, loaded.data_shape, num_classes)
    if problem is None and not diffusers_format:
        problem = "not asked for (--no-diffusers)"
    if problem is None:
        try:
            __import__("diffusers")
        except ImportError:
            problem = "the diffusers package is not installed (pip install diffusers, then export again)"
    meta = {"genbench_export": 1, "run": cfg.name, "method": cfg.method.kind, "sample_player": player,
            "weights": weights, "step": loaded.step, "images_seen": loaded.images_seen,
            "data_shape": list(loaded.data_shape), "latent_shape": list(loaded.latent_shape),
            "data_kind": loaded.data_kind, "num_classes": num_classes, "source_run": str(run_dir.resolve()),
            "train_seconds": info.get("train_seconds")}

    def build(folder: Path) -> dict[str, Path]:
        made = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt", "genbench_run": cfg.name})
            atomic_write_bytes(folder / "config.yaml", config_text)
            if evals:
                (folder / "evaluations").mkdir(exist_ok=True)
                for name, record in evals.items():
                    write_json(folder / "evaluations" / name, record)
            if grids:
                atomic_write_bytes(folder / "samples.png",
                                   read_bytes(grids[-1], GRID_FILE_BYTES, "sample grid", "delete the damaged grid"))
            record = dict(meta)
            if problem is None:
                record["diffusers"] = {"written": True, **write_diffusers(net, cfg, loaded.data_shape,
                                                                          cfg.sample.clip, folder / "diffusers")}
            else:
                record["diffusers"] = {"written": False, "why": problem}
            write_json(folder / EXPORT_MARKER, record)
            atomic_write_bytes(folder / "README.md", model_card(cfg, record, info, list(evals.values()),
                                                               bool(grids), config_text.decode()).encode())
        except BaseException:
            if made:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        out = {"folder": folder, "weights": folder / "model.safetensors", "card": folder / "README.md"}
        if problem is None:
            out["diffusers"] = folder / "diffusers"
        return out

    return write_folder(Path(to), build, overwrite, what="export folder", allowed=EXPORT_ENTRIES, made=is_export)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(cfg, meta: dict, info: dict, evals: list[dict], grid: bool, config_text: str) -> str:
    """The README.md of an export: Hugging Face front-matter, then provenance, recipe, evaluations, samples."""
    from genbench.config import FAMILY_OF

    dataset = cfg.data.name
    main = _main_eval(evals)
    front: dict = {"library_name": "genbench", "license": "other", "license_name": "unspecified",
                   "pipeline_tag": "unconditional-image-generation" if meta["data_kind"] == "image" else "other",
                   "tags": list(dict.fromkeys(["genbench", FAMILY_OF[cfg.method.kind], cfg.method.kind]))
                   + (["diffusers", "diffusers:DDIMPipeline"] if meta["diffusers"]["written"] else [])}
    if dataset in HF_DATASETS:
        front["datasets"] = [HF_DATASETS[dataset]]
    if main is not None:
        metrics = [{"type": k, "value": round(float(v), 6), "name": f"{k} ({(main.get('extractor') or {}).get('name')} "
                    f"features, {main['sampling'].get('n')} samples)"}
                   for k, v in main["metrics"].items() if isinstance(v, (int, float)) and not k.endswith(("_std", "_size"))]
        front["model-index"] = [{"name": cfg.name, "results": [{
            "task": {"type": "unconditional-image-generation", "name": "Unconditional image generation"},
            "dataset": {"type": HF_DATASETS.get(dataset, dataset), "name": dataset,
                        "split": (main.get("reference") or {}).get("split", "train")},
            "metrics": metrics}]}]
    data = info.get("data") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             f"# {cfg.name}", "",
             f"A {FAMILY_OF[cfg.method.kind]} model ({cfg.method.kind}) trained with "
             f"genbench on `{dataset}`: the {meta['weights']} weights of its "
             f"`{meta['sample_player']}` network at step {meta['step']} ({meta['images_seen']:,} images seen). "
             "Licence: not set by genbench — choose one (and respect the dataset's) before publishing.", "",
             "## Data provenance", "",
             f"- dataset: `{data.get('name', dataset)}`, split `{cfg.data.split}`, classes "
             f"{cfg.data.classes or 'all'}, {data.get('n', '?')} items of shape {data.get('shape', meta['data_shape'])}",
             f"- read from: `{data.get('source', '?')}`; content sha256 `{data.get('fingerprint', '?')}`; "
             f"official checksums verified: {data.get('verified_official', '?')}", "",
             "## Recipe", "", "The run's resolved config (`config.yaml`):", "", "```yaml", config_text.rstrip(), "```",
             "", "## Training", "",
             f"- steps {info.get('step', meta['step'])}, images seen {info.get('images_seen', meta['images_seen'])}, "
             f"wall-clock {_fmt(info.get('train_seconds'))} s on {info.get('device', '?')}"
             f" ({info.get('world_size', 1)} process(es)); parameters {info.get('params', '?')}", "",
             "## Evaluation", ""]
    if not evals:
        lines += ["The run has no evaluation: `genbench eval RUN` before exporting puts one here.", ""]
    for e in sorted(evals, key=lambda e: -((e.get("sampling") or {}).get("n") or 0)):
        s, ref, ex = e.get("sampling") or {}, e.get("reference") or {}, e.get("extractor") or {}
        lines += [f"### {s.get('n')} samples, {s.get('solver') or 'generator'} NFE {s.get('nfe')}, "
                  f"step {(e.get('checkpoint') or {}).get('step')} ({e.get('weights')})", "",
                  f"Features `{ex.get('name')}` (weights sha256 `{str(ex.get('weights_sha256'))[:16]}…`); reference: "
                  f"{ref.get('n')} `{ref.get('split')}` images of `{ref.get('dataset')}`; seeds {s.get('seeds')}.", "",
                  "| metric | model | real-data floor |", "|---|---|---|"]
        floor = e.get("floor") or {}
        for k, v in (e.get("metrics") or {}).items():
            if isinstance(v, (int, float)) and not k.endswith(("_std", "_size")):
                lines.append(f"| {k} | {_fmt(v)} | {_fmt(floor.get(k, '–'))} |")
        lines += [""] + [f"- warning: {w}" for w in e.get("warnings") or []] + [""]
    if grid:
        lines += ["## Samples", "", "![fixed-seed samples](samples.png)", ""]
    lines += ["## Use", "", "```bash",
              "genbench eval THIS_FOLDER -n 10000      # scored under genbench's protocol, beside the floor",
              "genbench sample THIS_FOLDER -n 64 -o samples", "```", ""]
    d = meta["diffusers"]
    if d["written"]:
        lines += ["## diffusers", "",
                  f"`diffusers/` is a `DDIMPipeline` (diffusers {d['diffusers']}); its UNet2DModel at step k equals "
                  f"genbench's network at t = (k + 1) / T: max |difference| {d['max_abs_diff']:.3g} at output "
                  f"scale {d['output_scale']:.3g}, steps {d['steps_checked']}.", "", "```python",
                  "from diffusers import DDIMPipeline", "pipe = DDIMPipeline.from_pretrained('THIS_FOLDER/diffusers')",
                  "images = pipe(batch_size=16, num_inference_steps=50).images", "```", ""]
    else:
        lines += ["## diffusers", "", f"No diffusers format: {d['why']}.", ""]
    return "\n".join(lines)


def load_export(folder: Path, device: str = "auto", dataset: str | None = None, data_dir: str | None = None):
    """A :class:`~genbench.run.LoadedRun` of an export folder: the config, and the weights from safetensors."""
    from safetensors.torch import load_file

    from genbench.config import build_config, read_yaml
    from genbench.dist import pick_device
    from genbench.methods import build_method
    from genbench.nets import build_net
    from genbench.run import LoadedRun

    folder = Path(folder)
    fix = "export the run again: genbench export RUN --to DIR --overwrite"
    meta = read_json(folder / EXPORT_MARKER, fix, "export description")
    cfg = build_config(read_yaml(folder / "config.yaml"), source=str(folder / "config.yaml"))
    if dataset is not None and dataset != cfg.data.name:
        raise GenbenchError(f"{folder} was trained on {cfg.data.name}; --dataset {dataset} does not match",
                            "leave --dataset out for an exported genbench model")
    if data_dir is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": data_dir})})
    try:
        player, data_shape = meta["sample_player"], tuple(meta["data_shape"])
        latent_shape, kind = tuple(meta["latent_shape"]), meta["data_kind"]
    except (KeyError, TypeError):
        raise GenbenchError(f"{folder / EXPORT_MARKER} is damaged (missing sample_player, shapes or data_kind)",
                            fix) from None
    dev = pick_device(device, knob="--device")
    net = build_net(cfg.nets[player], data_shape, meta.get("num_classes"))
    weights = folder / "model.safetensors"
    check_file(weights, CHECKPOINT_BYTES, "exported weights", fix)
    try:
        net.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as err:   # a damaged file, or weights of another network
        raise GenbenchError(f"{weights} does not fit the exported config ({type(err).__name__}: "
                            f"{' '.join(str(err).split())[:120]})", fix) from None
    source = {"kind": "export", "path": str(folder.resolve()), "run": meta.get("run"), "weights": meta.get("weights"),
              "step": meta.get("step"), "images_seen": meta.get("images_seen"),
              "train_seconds": meta.get("train_seconds"), "params": sum(p.numel() for p in net.parameters())}
    return LoadedRun(cfg, build_method(cfg.method), {player: net.to(dev).eval()}, None, int(meta.get("step") or 0),
                     int(meta.get("images_seen") or 0), latent_shape, data_shape, kind, dev, source)
