"""The training loop, one for every method (cf. EDM's training_loop.py).

It is handed a method object (players, updates per step, ``loss``, ``sample``) and knows nothing
else about GANs, diffusion or flow. Its parts: :mod:`~genbench.train.setup` (ranks, device,
backend flags, DDP), :mod:`~genbench.train.state` (everything a checkpoint holds),
:mod:`~genbench.train.step` (the hot path) and :mod:`~genbench.train.monitor` (logs, grids,
proxy scores, checkpoints, ``run.json``, progress).

Under torchrun every rank draws the same global batch and keeps its slice, and the per-sample
noise of the whole batch comes from one shared generator (:class:`genbench.randomness.BatchDraws`),
so W ranks x B/W reproduce 1 rank x B up to float rounding. Rank 0 alone writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from genbench import dist
from genbench.config import RunConfig
from genbench.data import load_dataset
from genbench.errors import GenbenchError
from genbench.methods import build_method
from genbench.randomness import BatchDraws
from genbench.sampling import resolve_solver
from genbench.train.budget import Budget, Clock
from genbench.train.checkpoint import list_checkpoints, load_checkpoint, prune
from genbench.train.init_from import init_from_run
from genbench.train.monitor import Monitor
from genbench.train.setup import Runtime
from genbench.train.state import TrainState, run_classes
from genbench.train.step import Batches, NonFinite, TrainStep


def train(cfg: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True,
          on_checkpoint: Callable[[], None] | None = None) -> dict:
    """Train until the budget is spent; return the run summary also written to run.json.
    ``on_checkpoint`` is called (rank 0) after each checkpoint is written (see :mod:`genbench.rundir`)."""
    t_start = time.time()
    check_sample_section(cfg)
    rt = Runtime.create(cfg.train)
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.data)
    data.x = data.x.to(rt.device)   # the whole set on the device once; batches are indexed there
    data.y = data.y.to(rt.device) if data.y is not None else None
    rt.set_layout(cfg.train, data.kind)
    num_classes, class_names = run_classes(cfg, data)   # conditional runs only
    method = build_method(cfg.method)
    budget = Budget(cfg.train.budget, len(data), images_per_step(cfg, method))
    state = TrainState.for_training(cfg, method, data.shape, data.kind, len(data), budget, rt, num_classes, class_names)
    trained = rt.wrap(state.nets)
    method.draws = BatchDraws(state.draws, rt.rank, rt.world)
    rt.seed_rank(cfg.seed)
    resumed = resume and resume_from_last(state, run_dir / "checkpoints", rt)
    if cfg.train.init_from and not resumed:   # a resumed run has the source's record in its checkpoint
        state.init_from = init_from_run(state, cfg.train.init_from, rt.world)
    flags = NonFinite(tuple(cfg.players()), rt.device, state.skipped)
    monitor = Monitor(cfg, run_dir, rt, state, data, budget, flags, progress, resumed=resume,
                      on_checkpoint=on_checkpoint)
    step = TrainStep(state, Batches(data, state, cfg.data.hflip, rt.shard), trained,
                     rt.autocast(cfg.train.precision), flags,
                     after_update=(lambda: monitor.check_flags(state)) if monitor.check_every_step else None)
    for net in state.nets.values():
        net.train()
    clock = Clock(state.seconds, agree=rt.world > 1 and bool(cfg.train.budget.minutes))
    try:
        while budget.fraction(state.step, state.images_seen, clock.elapsed()) < 1:
            step()
            state.seconds = clock.now()
            monitor.after_step(state)
        monitor.finish(state)
    except (GenbenchError, OSError) as err:
        monitor.failed(err, state)
        raise
    finally:
        monitor.close()
    return monitor.finished(state, time.time() - t_start)


def check_sample_section(cfg: RunConfig) -> None:
    """Refuse a ``sample`` section (the grids' solver and NFE) that its solver cannot make, before training
    rather than at the first grid."""
    try:
        resolve_solver(cfg, None, None)
    except GenbenchError as err:
        raise GenbenchError(f"the config's sample section: {err.problem}",
                            "set sample.nfe (and sample.solver) to a count the solver allows") from None


def images_per_step(cfg: RunConfig, method) -> int:
    """Real images one step consumes: a batch per update of a player that sees data."""
    return cfg.train.batch_size * sum(p in method.data_players for p in method.updates)


def resume_from_last(state: TrainState, ckpt_dir: Path, rt: Runtime) -> bool:
    """Load the last complete checkpoint, if any (none yet: start from scratch; returns False). Rank 0
    reads it and hands it to the others, so no shared file system is needed."""
    def read_last():
        kept = list_checkpoints(ckpt_dir)
        if not kept:
            return None
        path = kept[max(kept)]
        return path, load_checkpoint(path, map_location="cpu" if rt.world > 1 else rt.device)

    found = dist.collective(read_last) if rt.world > 1 else read_last()
    if found is not None:
        state.load_state_dict(found[1], source=found[0])
        if rt.main:
            prune(ckpt_dir, state.cfg.train.keep_last, state.cfg.train.keep_every)
    return found is not None
