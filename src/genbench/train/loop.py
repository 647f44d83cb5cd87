"""The training loop, one for every method (cf. EDM's training_loop.py).

It is handed a method object (players, updates per step, ``loss``, ``sample``) and knows
nothing else about GANs, diffusion or flow. Everything needed to continue exactly —
weights, EMA, optimisers, schedulers, data order, RNG states, counters — is in each
checkpoint.

Under torchrun (see :mod:`genbench.dist`) every trained net is wrapped in DDP and the global
batch ``train.batch_size`` = B is split: each rank draws the same global batch (same sampler
seed, same flips) and keeps its contiguous B/W slice, and draws the per-sample noise of the
whole batch from a shared generator (:mod:`genbench.methods.draws`), so W ranks x B/W reproduce
1 rank x B up to float rounding. Rank 0 alone logs, writes grids, proxy scores and checkpoints.

The step itself never waits for the GPU: losses and non-finite flags accumulate on the device
and are read at log, grid and checkpoint steps (every step on the CPU, where reading is free);
a non-finite loss or gradient makes the fused optimiser skip its update on the device.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genbench import dist
from genbench.config import RunConfig
from genbench.data import load_dataset
from genbench.data.sampler import BatchSampler
from genbench.errors import GenbenchError
from genbench.methods import build_method
from genbench.methods.draws import BatchDraws
from genbench.nets import build_net, count_params
from genbench.run import environment, pick_device, write_run_json
from genbench.sampling import generate
from genbench.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from genbench.train.ema import make_ema, update_ema
from genbench.train.logger import MetricsLogger
from genbench.train.lr import lr_factor
from genbench.train.proxy import ProxyEval
from genbench.viz import save_image_grid, save_points_plot


def make_optimizer(net: nn.Module, cfg, device: torch.device) -> torch.optim.Optimizer:
    """Adam/AdamW with the fused kernel (CUDA and CPU: one kernel for all tensors, ~3x the foreach
    path on CPU), which can also skip a step on the device (``found_inf``) without a host wait."""
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return cls(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
               weight_decay=cfg.weight_decay, fused=True)


def derived_seed(*parts) -> int:
    """A 63-bit seed for a named stream, independent of ``torch.manual_seed(cfg.seed)``'s."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16)


class NonFinite:
    """Device-side record of skipped updates: how many, and the first one (step, player, and
    whether the loss or only the gradient was non-finite), read only when asked."""

    def __init__(self, players: tuple[str, ...], device: torch.device, skipped: int = 0):
        self.players = players
        self.count = torch.tensor(float(skipped), device=device)
        self.first = torch.tensor(-1, dtype=torch.int64, device=device)

    def record(self, bad: torch.Tensor, step: int, player: str) -> torch.Tensor:
        """``bad`` = [loss non-finite, gradient non-finite] (float 0/1); returns 1. if skipped."""
        skip = bad.amax()
        code = (step * len(self.players) + self.players.index(player)) * 2 + (bad[0] == 0).long()
        self.first = torch.where((self.first < 0) & (skip > 0), code, self.first)
        self.count += skip
        return skip

    def read(self) -> tuple[int, tuple[int, str, str] | None]:
        """(skipped so far, (step, player, 'loss' | 'gradient') of the first skip or None)."""
        count, first = int(self.count), int(self.first)
        if first < 0:
            return count, None
        (sp, kind) = divmod(first, 2)
        step, p = divmod(sp, len(self.players))
        return count, (step, self.players[p], "gradient" if kind else "loss")

    def clear_first(self) -> None:
        self.first.fill_(-1)


class _DDP(DistributedDataParallel):
    """DDP that still shows the wrapped net's own attributes (``G.z_dim``) to the methods."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


class _NoLogger:
    """What ranks other than 0 log: nothing."""

    def log(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


class Budget:
    """Progress towards the first limit reached among steps, epochs, kimg and minutes."""

    def __init__(self, cfg, n_data: int, images_per_step: int):
        self.cfg, self.n_data, self.images_per_step = cfg, n_data, images_per_step

    def total_steps(self) -> int | None:
        """Length in steps when it is known in advance (not for a minutes-only budget)."""
        limits = []
        if self.cfg.steps:
            limits.append(self.cfg.steps)
        if self.cfg.epochs:
            limits.append(math.ceil(self.cfg.epochs * self.n_data / self.images_per_step))
        if self.cfg.kimg:
            limits.append(math.ceil(self.cfg.kimg * 1000 / self.images_per_step))
        return min(limits) if limits else None

    def fraction(self, step: int, images: int, seconds: float) -> float:
        parts = []
        if self.cfg.steps:
            parts.append(step / self.cfg.steps)
        if self.cfg.epochs:
            parts.append(images / (self.cfg.epochs * self.n_data))
        if self.cfg.kimg:
            parts.append(images / (self.cfg.kimg * 1000))
        if self.cfg.minutes:
            parts.append(seconds / (self.cfg.minutes * 60))
        return max(parts)


class DivergenceWatch:
    """GAN divergence: D's loss pinned near 0 (it tells real from fake perfectly, so G gets no
    useful gradient) for ``window`` consecutive log lines. Reported once, never fatal."""

    def __init__(self, window: int, threshold: float):
        self.window, self.threshold = window, threshold
        self.streak, self.since, self.report = 0, None, None

    def observe(self, step: int, d_loss: float | None) -> bool:
        """Feed one log line's mean D loss; True when divergence is first detected."""
        if not self.window or d_loss is None:
            return False
        if d_loss < self.threshold:
            self.streak += 1
            self.since = self.since if self.since is not None else step
        else:
            self.streak, self.since = 0, None
        if self.report is None and self.streak >= self.window:
            self.report = {
                "step": step, "since_step": self.since,
                "reason": f"GAN divergence: D loss below {self.threshold:g} for {self.streak} log lines "
                          f"(steps {self.since}..{step}): D separates real from fake, G gets no signal",
                "fix": "lower optim.D.lr, try method.loss=hinge or a spectral-norm D (nets.D.kind=resnet_d), "
                       "or restart from an earlier checkpoint",
            }
            return True
        return False

    def state_dict(self) -> dict:
        import json

        return {"streak": self.streak, "since": -1 if self.since is None else self.since,
                "report": json.dumps(self.report)}

    def load_state_dict(self, state: dict) -> None:
        import json

        self.streak, since = int(state["streak"]), int(state["since"])
        self.since = None if since < 0 else since
        self.report = json.loads(state["report"])


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if dist.world_size() > 1:   # this rank's own GPU only: never touch the other ranks' devices
        if device.type == "cuda":
            state["cuda_local"] = torch.cuda.get_rng_state(device)
    elif torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda_local" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_local"].cpu(), device)
    elif "cuda" in state and torch.cuda.is_available() and dist.world_size() == 1:
        torch.cuda.set_rng_state_all(list(state["cuda"].cpu()))


def _match_layout(opt: torch.optim.Optimizer) -> None:
    """Give optimiser state tensors their parameter's memory layout: the fused kernels walk
    parameter, gradient and state as flat memory, so a mismatch (a checkpoint from a run with
    another ``train.channels_last``) would silently mix up elements."""
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def train(cfg: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train until the budget is spent; return the run summary also written to run.json."""
    t_start = time.time()
    tcfg = cfg.train
    world, rank, main = dist.world_size(), dist.rank(), dist.is_main()
    if tcfg.batch_size % world:
        up = -(-tcfg.batch_size // world) * world
        raise GenbenchError(f"train.batch_size={tcfg.batch_size} does not split evenly over {world} processes",
                            f"use a multiple of {world}, e.g. train.batch_size={up}")
    local_batch = tcfg.batch_size // world
    shard = slice(rank * local_batch, (rank + 1) * local_batch) if world > 1 else None
    device = pick_device(tcfg.device)
    if device.type == "cuda" and tcfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = tcfg.cudnn_benchmark
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.data)
    data.x = data.x.to(device)   # the whole set on the device once; batches are indexed there
    data.y = data.y.to(device) if data.y is not None else None
    method = build_method(cfg.method)
    nets = {p: build_net(cfg.nets[p], tuple(data.shape), None).to(device) for p in cfg.players()}
    layout = torch.channels_last if tcfg.channels_last and data.kind == "image" else None

    def apply_layout() -> None:
        """Set the nets' memory format (at the start and after a resume): the fused optimiser needs
        the parameters in the layout its state was made in. Sampling leaves layouts as they were
        (``sampling.fast_layout``)."""
        if layout is not None:
            for net in [*nets.values(), *([ema.module] if ema is not None else [])]:
                net.to(memory_format=layout)

    ema = None
    apply_layout()
    sampler = BatchSampler(len(data), tcfg.batch_size, seed=cfg.seed)
    images_per_step = tcfg.batch_size * sum(p in method.data_players for p in method.updates)
    budget = Budget(tcfg.budget, len(data), images_per_step)
    steps_per_epoch = len(data) / images_per_step
    ema = make_ema(nets[method.sample_player], tcfg.ema, tcfg.batch_size)
    latent_shape = method.latent_shape(tuple(data.shape), nets)
    if world > 1 and device.type == "cuda":   # batch statistics over the global batch
        nets = {p: nn.SyncBatchNorm.convert_sync_batchnorm(n) for p, n in nets.items()}
    if tcfg.compile:
        for net in nets.values():
            net.compile()
    opts = {p: make_optimizer(nets[p], cfg.optim[p], device) for p in cfg.players()}
    scheds = {p: torch.optim.lr_scheduler.LambdaLR(
        opts[p], lr_factor(cfg.optim[p].schedule, steps_per_epoch, budget.total_steps()))
        for p in cfg.players()}
    # the nets the loss sees for the player being trained: DDP-wrapped (gradients averaged over
    # the ranks) for that player, plain modules for the frozen others
    trained = nets
    if world > 1:
        trained = {p: _DDP(n, device_ids=[device.index] if device.type == "cuda" else None)
                   for p, n in nets.items()}
    draws_gen = torch.Generator(device).manual_seed(derived_seed("draws", cfg.seed))
    method.draws = BatchDraws(draws_gen, rank, world)
    if world > 1:   # in-net randomness (dropout) differs between ranks
        torch.manual_seed(derived_seed("rank", cfg.seed, rank))
    ckpt_dir = run_dir / "checkpoints"
    step, images_seen, seconds, skipped = 0, 0, 0.0, 0
    # log averages over the steps since the last log line, and the GAN divergence watch: both
    # are checkpointed, so that a resumed run logs exactly what an uninterrupted one logs
    sums: dict[str, torch.Tensor] = {}
    n_logged = 0
    watch = DivergenceWatch(tcfg.divergence_window, tcfg.divergence_threshold) if "D" in cfg.players() else None

    def read_last() -> dict | None:
        kept = list_checkpoints(ckpt_dir)
        return load_checkpoint(kept[max(kept)], map_location="cpu" if world > 1 else device) if kept else None

    # rank 0 reads the checkpoint and hands it to the others (no shared file system needed)
    state = (dist.collective(read_last) if world > 1 else read_last()) if resume else None
    if state is not None:
        if state.get("method") != cfg.method.kind:
            raise GenbenchError(f"the last checkpoint of {run_dir} is from method {state.get('method')!r}",
                                "resume the run it belongs to")
        for p in cfg.players():
            nets[p].load_state_dict(state["nets"][p])
            opts[p].load_state_dict(state["optim"][p])
            scheds[p].load_state_dict(state["sched"][p])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        sampler.load_state_dict(state["sampler"])
        step, images_seen = int(state["step"]), int(state["images_seen"])
        if len(state.get("rng_ranks") or [state["rng"]]) == world:
            _set_rng_state((state.get("rng_ranks") or [state["rng"]])[rank], device)
        else:   # resumed on another number of processes: fresh per-rank streams (dropout only)
            torch.manual_seed(derived_seed("rank", cfg.seed, rank, step))
        if "draws" in state:
            draws_gen.set_state(state["draws"])
        seconds, skipped = float(state["seconds"]), int(state.get("skipped", 0))
        log_state = state.get("log") or {}
        sums = {k: v.to(device) for k, v in log_state.get("sums", {}).items()}
        n_logged = int(log_state.get("n", 0))
        if watch is not None and "divergence" in state:
            watch.load_state_dict(state["divergence"])
        apply_layout()
        for opt in opts.values():
            _match_layout(opt)
    del state
    flags = NonFinite(tuple(cfg.players()), device, skipped)

    def reduce_sums() -> None:
        """Average the log sums over the ranks (each summed its own slice's means)."""
        nonlocal sums
        if world > 1 and sums:
            keys = list(sums)   # the same order on every rank (the same code ran)
            vals = dist.all_reduce_(torch.stack([torch.as_tensor(sums[k], device=device) for k in keys]), "avg")
            sums = dict(zip(keys, vals.unbind(), strict=True))

    def checkpoint() -> Path | None:
        reduce_sums()
        rng_ranks = dist.all_gather_objects(_rng_state(device)) if world > 1 else None
        if not main:
            dist.barrier()
            return None
        state = {
            "method": cfg.method.kind, "step": step, "images_seen": images_seen, "seconds": seconds,
            "skipped": skipped, "data_shape": list(data.shape), "latent_shape": list(latent_shape),
            "data_kind": data.kind, "num_classes": None,
            "nets": {p: n.state_dict() for p, n in nets.items()},
            "ema": ema.state_dict() if ema is not None else None,
            "optim": {p: o.state_dict() for p, o in opts.items()},
            "sched": {p: s.state_dict() for p, s in scheds.items()},
            "sampler": sampler.state_dict(), "rng": _rng_state(device), "draws": draws_gen.get_state(),
            "log": {"sums": {k: torch.as_tensor(v).detach().clone() for k, v in sums.items()}, "n": n_logged},
        }
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        if watch is not None:
            state["divergence"] = watch.state_dict()
        try:
            return save_checkpoint(state, ckpt_dir, step, tcfg.keep_last, tcfg.keep_every)
        finally:
            dist.barrier()

    grid_seeds = list(range(tcfg.grid_seed, tcfg.grid_seed + tcfg.grid_n))
    real_points = data.x[:2000].float().cpu() if data.kind == "points" else None

    def sample_grid() -> None:
        (run_dir / "samples").mkdir(exist_ok=True)
        snet = ema.module if ema is not None else nets[method.sample_player]
        was_training = snet.training
        snet.eval()
        sample_nets = {**nets, method.sample_player: snet}
        x, nfe = generate(method, sample_nets, latent_shape, grid_seeds, device,
                          solver=cfg.sample.solver, nfe=cfg.sample.nfe)
        snet.train(was_training)
        path = run_dir / "samples" / f"grid-{step:09d}.png"
        if data.kind == "points":
            save_points_plot(x, path, real_points, title=f"{cfg.name} step {step} (NFE {nfe})")
        else:
            save_image_grid(x, path)

    proxy = ProxyEval(cfg, device, data.kind) if tcfg.proxy_every and main else None

    def proxy_eval() -> None:
        snet = ema.module if ema is not None else nets[method.sample_player]
        was_training = snet.training
        snet.eval()
        scores = proxy(method, {**nets, method.sample_player: snet}, latent_shape)
        snet.train(was_training)
        logger.log({"step": step, "kimg": images_seen / 1000, **scores})

    logger = MetricsLogger(run_dir, step, tcfg.tensorboard) if main else _NoLogger()
    info = {
        "name": cfg.name, "method": cfg.method.kind, "status": "running", "device": str(device),
        "world_size": world,
        "data": {"name": data.name, "source": data.source, "fingerprint": data.fingerprint,
                 "verified_official": data.verified, "n": len(data), "shape": list(data.shape)},
        "params": {p: count_params(n) for p, n in nets.items()}, "environment": environment(),
    }
    if watch is not None:
        info["divergence"] = watch.report

    def write_info() -> None:
        if main:
            write_run_json(run_dir, info)

    write_info()
    bar = None
    if progress and main:
        from tqdm import tqdm

        bar = tqdm(total=1000, desc=cfg.name, unit="‰", dynamic_ncols=True, leave=True,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
    t_log, img_log = time.time(), images_seen
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tcfg.precision == "bf16")
    for net in nets.values():
        net.train()
    session_start = time.time() - seconds
    last_ckpt_step = step if resume else -1

    def warn(line: str) -> None:
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def check_flags() -> None:
        """Read the device-side skip record; under ``nonfinite=stop`` end the run at the first one."""
        nonlocal skipped
        skipped, first = flags.read()
        if first is None:
            return
        if tcfg.nonfinite == "skip":
            flags.clear_first()
            return
        bad_step, who, what = first
        kept = list_checkpoints(ckpt_dir)
        where = f"last good checkpoint {kept[max(kept)]} kept" if kept else "no checkpoint yet"
        info.update({"status": "stopped: non-finite", "step": bad_step, "skipped_updates": skipped})
        write_info()
        raise GenbenchError(f"non-finite {who} {what} at step {bad_step}; training stopped, {where}",
                            "lower the learning rate, set grad_clip, or set train.nonfinite=skip")

    def elapsed() -> float:
        seconds = time.time() - session_start
        # a minutes budget must end every rank at the same step: rank clocks are agreed (gloo)
        return dist.agree_max(seconds) if world > 1 and tcfg.budget.minutes else seconds

    def rank0(fn) -> None:
        if main:
            fn()
        dist.barrier()

    check_every_step = device.type != "cuda"   # reading a CPU tensor costs nothing
    try:
        while budget.fraction(step, images_seen, elapsed()) < 1:
            x = y = None
            for player in method.updates:
                if player in method.data_players or x is None:
                    idx = sampler.next()   # the global batch: the same on every rank
                    x, y = data.batch(idx, cfg.data.hflip, sampler.generator, shard)
                    if layout is not None:
                        x = x.contiguous(memory_format=layout)
                    if player in method.data_players:
                        images_seen += len(idx)
                for p, net in nets.items():
                    net.requires_grad_(p == player)
                with autocast:
                    losses = method.loss({**nets, player: trained[player]}, player, x, y)
                loss = losses["loss"]
                opts[player].zero_grad(set_to_none=True)
                loss.backward()   # always: under DDP every rank must join the gradient all-reduce
                clip = cfg.optim[player].grad_clip
                gnorm = torch.nn.utils.clip_grad_norm_(nets[player].parameters(), clip or float("inf"))
                # a finite loss can still give inf/NaN gradients; a rank's bad loss stops all ranks
                bad = torch.stack([~torch.isfinite(loss.detach()), ~torch.isfinite(gnorm)]).float()
                dist.all_reduce_(bad, "max")
                skip = flags.record(bad, step, player)
                opts[player].found_inf = skip   # the fused kernel skips the update when 1
                try:
                    opts[player].step()
                finally:
                    del opts[player].found_inf
                keep = skip == 0
                for key, value in losses.items():
                    name = f"loss/{player}" if key == "loss" else key
                    sums[name] = sums.get(name, 0) + torch.where(keep, value.detach().float(), 0.0)
                sums[f"grad_norm/{player}"] = (sums.get(f"grad_norm/{player}", 0)
                                               + torch.where(keep, gnorm.detach().float(), 0.0))
                if check_every_step:
                    check_flags()
            for s in scheds.values():
                s.step()
            if ema is not None:
                update_ema(ema, nets[method.sample_player])
            step += 1
            n_logged += 1
            seconds = time.time() - session_start
            grid_now = step % tcfg.sample_every == 0
            proxy_now = bool(tcfg.proxy_every) and step % tcfg.proxy_every == 0
            ckpt_now = step % tcfg.ckpt_every == 0
            if not check_every_step and (step % tcfg.log_every == 0 or grid_now or proxy_now or ckpt_now):
                check_flags()
            if step % tcfg.log_every == 0:
                reduce_sums()
                now = time.time()
                record = {"step": step, "kimg": images_seen / 1000, "epoch": images_seen / len(data),
                          "seconds": round(seconds, 3),
                          "images_per_s": (images_seen - img_log) / max(now - t_log, 1e-9),
                          "skipped": skipped}
                if sums:   # one device read for all of them
                    values = torch.stack([torch.as_tensor(v) for v in sums.values()]).tolist()
                    record.update({k: v / n_logged for k, v in zip(sums, values, strict=True)})
                record.update({f"lr/{p}": o.param_groups[0]["lr"] for p, o in opts.items()})
                if watch is not None:
                    news = watch.observe(step, record.get("loss/D"))
                    if watch.report is not None:
                        record["divergence"] = watch.report["reason"]
                    if news:
                        info["divergence"] = watch.report
                        write_info()
                        if main:
                            warn(f"genbench: warning: {watch.report['reason']} (fix: {watch.report['fix']})")
                logger.log(record)
                sums, n_logged, t_log, img_log = {}, 0, now, images_seen
                if bar is not None:
                    bar.set_postfix_str(f"step {step} " + " ".join(
                        f"{k.split('/')[-1]}={record[k]:.4f}" for k in record if k.startswith("loss/")))
            if grid_now:
                rank0(sample_grid)
            if proxy_now:
                rank0(proxy_eval)
            if ckpt_now:
                checkpoint()
                last_ckpt_step = step
            if bar is not None:
                bar.n = int(1000 * min(1.0, budget.fraction(step, images_seen, seconds)))
                bar.refresh()
        check_flags()
        if last_ckpt_step != step:
            checkpoint()
        if step % tcfg.sample_every != 0:
            rank0(sample_grid)
    except (GenbenchError, OSError) as err:
        if info["status"] == "running":   # record why the run stopped (nonfinite() already did)
            what = err.line() if isinstance(err, GenbenchError) else f"{err.strerror or err}"
            info.update({"status": f"failed: {what}", "step": step, "skipped_updates": skipped})
            try:
                write_info()
            except OSError:
                pass   # the disk may be full: the error itself still reaches the user
        raise
    finally:
        logger.close()
        if bar is not None:
            bar.close()
    info.update({"status": "finished", "step": step, "images_seen": images_seen, "epochs": images_seen / len(data),
                 "train_seconds": round(seconds, 2), "skipped_updates": skipped,
                 "process_seconds": round(time.time() - t_start, 2)})
    write_info()
    return info
