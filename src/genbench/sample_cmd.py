"""`genbench sample`: draw N samples from a run with per-sample seeds; save a PNG grid and/or .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.errors import GenbenchError
from genbench.run import load_run
from genbench.sampling import generate
from genbench.viz import save_image_grid, save_points_plot


def resolve_solver(cfg, solver: str | None, nfe: int | None) -> tuple[str | None, int | None]:
    """The solver and NFE to use: the command line's, else the run's ``sample`` section, else the
    method's own; checked against what the method and the solver allow."""
    from genbench.config import solvers_for

    kind = cfg.method.kind
    valid = solvers_for(kind)
    if kind == "gan":
        if solver not in (None, "default", "generator") or nfe not in (None, 1):
            raise GenbenchError("a GAN samples in one generator pass (NFE 1): it takes no --solver or --nfe",
                                "drop --solver/--nfe")
        return None, None
    if solver not in (None, "default") and solver not in valid:
        raise GenbenchError(f"method '{kind}' has no solver '{solver}'", f"choose one of {', '.join(valid)}")
    solver = solver if solver not in (None, "default") else (
        cfg.sample.solver if cfg.sample.solver != "default" else cfg.method.solver)
    if solver == "dopri5":  # the run's own NFE (for its default solver) does not apply
        if nfe is not None:
            raise GenbenchError("dopri5 chooses its own steps: it takes no --nfe", "drop --nfe for dopri5")
        return solver, None
    nfe = nfe or cfg.sample.nfe or cfg.method.nfe
    from genbench.solvers import allowed_nfe

    if solver == "ddpm" and nfe is None:
        nfe = cfg.method.T
    if nfe is not None and not allowed_nfe(solver, nfe):
        from genbench.solvers import NFE_RULES

        raise GenbenchError(f"solver '{solver}' cannot make exactly {nfe} network evaluations: "
                            f"{NFE_RULES[solver].describe(nfe)}", "choose an allowed --nfe")
    return solver, nfe


DOPRI5_TOL = 1e-5  # sample_dopri5's default rtol = atol


def solver_options(solver: str | None, tol: float | None) -> dict:
    """Extra solver options from the command line: only dopri5 has one (its rtol = atol)."""
    if tol is None:
        return {}
    if solver != "dopri5":
        raise GenbenchError(f"--tol is dopri5's tolerance; solver '{solver}' takes a fixed --nfe",
                            "drop --tol, or use --solver dopri5")
    if not 0 < tol < 1:
        raise GenbenchError(f"--tol must be between 0 and 1 (got {tol})", "e.g. --tol 1e-4")
    return {"rtol": tol, "atol": tol}


def tol_tag(opts: dict) -> str:
    """File-name tag of a non-default dopri5 tolerance ('' for the default)."""
    return f"-tol{opts['rtol']:g}" if opts else ""


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


def generate_sharded(method, nets, latent_shape, seeds: list[int], device, batch_size: int | None = None,
                     solver: str | None = None, nfe: int | None = None, **opts):
    """:func:`generate` with the seeds split over the ranks (contiguous shares) and the samples
    gathered on rank 0 in seed order: bitwise what one process makes on the CPU (per-seed
    streams, padded batches). Rank 0 gets (samples, nfe), the others (None, their nfe)."""
    from genbench import dist

    if dist.world_size() == 1:
        return generate(method, nets, latent_shape, seeds, device, batch_size, solver, nfe, **opts)
    mine = dist.shard(seeds)
    x, used = (generate(method, nets, latent_shape, mine, device, batch_size, solver, nfe, **opts)
               if mine else (None, None))
    return dist.gather_samples(x), used
