"""`genbench sample`: draw N samples from a run with per-sample seeds; save a PNG grid and/or .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.errors import GenbenchError
from genbench.run import load_run
from genbench.sampling import generate_sharded, resolve_solver, solver_options, tol_tag
from genbench.viz import save_image_grid, save_points_plot


def sample_run(run: Path, n: int, seed: int = 0, batch_size: int | None = None, use_ema: bool = True,
               solver: str | None = None, nfe: int | None = None, checkpoint: int | None = None,
               out: Path | None = None, formats: list[str] = ("png", "npz"), overwrite: bool = False,
               device: str = "auto", tol: float | None = None) -> list[Path]:
    if n < 1:
        raise GenbenchError(f"-n must be positive (got {n})", "e.g. -n 64")
    bad = [f for f in formats if f not in ("png", "npz")]
    if bad or not formats:
        raise GenbenchError(f"unknown output format {bad or formats}", "use --format png, npz or png,npz")
    loaded = load_run(run, checkpoint, device)
    solver, nfe = resolve_solver(loaded.cfg, solver, nfe)
    opts = solver_options(solver, tol)
    stem = out or run / "samples" / (
        f"generated-step{loaded.step}-{solver or 'generator'}{nfe or ''}{tol_tag(opts)}-seed{seed}-n{n}"
        + ("-raw" if not use_ema else ""))
    paths = [stem.with_name(stem.name + f".{f}") for f in formats]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise GenbenchError(f"{existing[0]} already exists", "add --overwrite, or choose another -o/--seed")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenbenchError(f"cannot write to {stem.parent}: {err.strerror}", "choose a writable -o") from None
    seeds = list(range(seed, seed + n))
    # under torchrun each rank draws its share of the seeds; rank 0 gathers and writes
    x, nfe = generate_sharded(loaded.method, loaded.sampling_nets(use_ema), loaded.latent_shape, seeds,
                              loaded.device, batch_size, solver, nfe, **opts)
    if x is None:
        return paths
    for path in paths:
        if path.suffix == ".png":
            if loaded.data_kind == "points":
                save_points_plot(x, path, title=f"{run.name} step {loaded.step} NFE {nfe}")
            else:
                save_image_grid(x[:256], path)
        else:
            from genbench.data.transforms import to_uint8

            arr = x.numpy() if loaded.data_kind == "points" else to_uint8(x).permute(0, 2, 3, 1).numpy()
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, samples=arr, seeds=np.asarray(seeds), nfe=nfe, step=loaded.step)
            tmp.replace(path)
    return paths

