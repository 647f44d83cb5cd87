"""`genbench sample`: draw N samples from a run with per-sample seeds; save a PNG grid and/or .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.classes import guidance_tag, labels_for, make_guidance, rows_by_class
from genbench.errors import GenbenchError
from genbench.external import detect
from genbench.files import atomic_savez
from genbench.limits import check_sample_count, check_sample_memory
from genbench.run import load_run
from genbench.sampling import check_seeds, generate_sharded, options_tag, resolve_solver, solver_options
from genbench.viz import save_image_grid, save_points_plot, written_by_genbench


def _load(path: Path, checkpoint: int | None, device: str, use_ema: bool, out: Path | None):
    """A run, or a model from outside genbench (a diffusers pipeline folder, a `genbench export`)."""
    kind = detect(path)
    if kind == "run":
        return load_run(path, checkpoint, device)
    if kind not in ("diffusers", "export"):
        raise GenbenchError(f"{path} is not a genbench run (no config.yaml), nor a model genbench can read",
                            "give a run directory, a diffusers pipeline folder or a `genbench export` folder")
    if checkpoint is not None or not use_ema:
        raise GenbenchError(f"{path} holds one set of weights: --checkpoint and --raw do not apply",
                            "drop --checkpoint/--raw")
    if out is None:
        raise GenbenchError(f"{path} is not a run: its samples have no run folder to go to", "give -o PATH")
    if kind == "diffusers":
        from genbench.external.diffusers import load_diffusers

        return load_diffusers(path, None, device, need_dataset=False)
    from genbench.export import load_export

    return load_export(path, device)


def sample_run(run: Path, n: int, seed: int = 0, batch_size: int | None = None, use_ema: bool = True,
               solver: str | None = None, nfe: int | None = None, checkpoint: int | None = None,
               out: Path | None = None, formats: list[str] = ("png", "npz"), overwrite: bool = False,
               device: str = "auto", tol: float | None = None, clip: str | None = None,
               class_text: str | None = None, guidance: float | None = None,
               guidance_interval: str | None = None) -> list[Path]:
    """N samples of seeds seed..seed+n-1; a conditional model's ask for ``class_text``'s classes (names or
    indices), else one class per seed in turn, and its grid has one row per class."""
    if n < 1:
        raise GenbenchError(f"-n must be positive (got {n})", "e.g. -n 64")
    bad = [f for f in formats if f not in ("png", "npz")]
    if bad or not formats:
        raise GenbenchError(f"unknown output format {bad or formats}", "use --format png, npz or png,npz")
    check_sample_count(n)
    check_seeds(seed, n)
    loaded = _load(Path(run), checkpoint, device, use_ema, out)
    check_sample_memory(n, loaded.data_shape)
    solver, nfe = resolve_solver(loaded.cfg, solver, nfe)
    opts = solver_options(solver, tol, loaded.cfg.sample.clip if clip is None else clip, loaded.data_kind)
    seeds = list(range(seed, seed + n))
    labels, asked = labels_for(loaded, seeds, class_text)
    guided = make_guidance(loaded, guidance, guidance_interval)
    if guided is not None:
        opts["guidance"] = guided
    tag = options_tag(opts) + guidance_tag(guided, asked)
    stem = out or run / "samples" / (
        f"generated-step{loaded.step}-{solver or 'generator'}{nfe or ''}{tag}-seed{seed}-n{n}"
        + ("-raw" if not use_ema else ""))
    paths = [stem.with_name(stem.name + f".{f}") for f in formats]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise GenbenchError(f"{existing[0]} already exists", "add --overwrite, or choose another -o/--seed")
    foreign = [p for p in existing if not written_by_genbench(p)]
    if foreign:   # --overwrite replaces genbench's own outputs only
        raise GenbenchError(f"refusing to overwrite {foreign[0]}: genbench did not write it",
                            "choose another -o; --overwrite only replaces what genbench made")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenbenchError(f"cannot write to {stem.parent}: {err.strerror}", "choose a writable -o") from None
    # under torchrun each rank draws its share of the seeds; rank 0 gathers and writes
    x, nfe = generate_sharded(loaded.method, loaded.sampling_nets(use_ema), loaded.latent_shape, seeds,
                              loaded.device, batch_size, solver, nfe, labels=labels, **opts)
    if x is None:
        return paths
    for path in paths:
        if path.suffix == ".png":
            if loaded.data_kind == "points":
                save_points_plot(x, path, title=f"{run.name} step {loaded.step} NFE {nfe}")
            elif labels is not None and class_text is None:   # one row per class
                order, per_row = rows_by_class(labels)
                save_image_grid(x[order][:256 - 256 % per_row], path, nrow=per_row)
            else:
                save_image_grid(x[:256], path)
        else:
            from genbench.data.transforms import to_uint8

            arr = x.numpy() if loaded.data_kind == "points" else to_uint8(x).permute(0, 2, 3, 1).numpy()
            # plain arrays only (np.load reads them without allow_pickle); a GAN's NFE is 1
            extra = {} if labels is None else {"labels": np.asarray(labels, dtype=np.int64)}
            if guided is not None:
                extra["guidance"] = np.asarray(guided.scale)
            atomic_savez(path, samples=arr, seeds=np.asarray(seeds, dtype=np.int64),
                         nfe=np.asarray(1 if nfe is None else nfe), step=np.int64(loaded.step), **extra)
    return paths

