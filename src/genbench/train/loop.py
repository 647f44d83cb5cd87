"""The training loop, one for every method (cf. EDM's training_loop.py).

It is handed a method object (players, updates per step, ``loss``, ``sample``) and knows
nothing else about GANs, diffusion or flow. Everything needed to continue exactly —
weights, EMA, optimisers, schedulers, data order, RNG states, counters — is in each
checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from genbench.config import RunConfig
from genbench.data import load_dataset
from genbench.data.sampler import BatchSampler
from genbench.errors import GenbenchError
from genbench.methods import build_method
from genbench.nets import build_net, count_params
from genbench.run import environment, pick_device, write_run_json
from genbench.sampling import generate
from genbench.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from genbench.train.ema import make_ema
from genbench.train.logger import MetricsLogger
from genbench.train.lr import lr_factor
from genbench.train.proxy import ProxyEval
from genbench.viz import save_image_grid, save_points_plot


def make_optimizer(net: nn.Module, cfg, device: torch.device) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    fused = device.type == "cuda"  # fused kernels exist for CUDA only
    return cls(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
               weight_decay=cfg.weight_decay, fused=fused or None)


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


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"].cpu()))


def train(cfg: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train until the budget is spent; return the run summary also written to run.json."""
    t_start = time.time()
    device = pick_device(cfg.train.device)
    tcfg = cfg.train
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.data)
    data.x = data.x.to(device)
    data.y = data.y.to(device) if data.y is not None else None
    method = build_method(cfg.method)
    nets = {p: build_net(cfg.nets[p], tuple(data.shape), None).to(device) for p in cfg.players()}
    opts = {p: make_optimizer(nets[p], cfg.optim[p], device) for p in cfg.players()}
    sampler = BatchSampler(len(data), tcfg.batch_size, seed=cfg.seed)
    images_per_step = tcfg.batch_size * sum(p in method.data_players for p in method.updates)
    budget = Budget(tcfg.budget, len(data), images_per_step)
    steps_per_epoch = len(data) / images_per_step
    scheds = {p: torch.optim.lr_scheduler.LambdaLR(
        opts[p], lr_factor(cfg.optim[p].schedule, steps_per_epoch, budget.total_steps()))
        for p in cfg.players()}
    ema = make_ema(nets[method.sample_player], tcfg.ema, tcfg.batch_size)
    latent_shape = method.latent_shape(tuple(data.shape), nets)
    ckpt_dir = run_dir / "checkpoints"
    step, images_seen, seconds, skipped = 0, 0, 0.0, 0
    # log averages over the steps since the last log line, and the GAN divergence watch: both
    # are checkpointed, so that a resumed run logs exactly what an uninterrupted one logs
    sums: dict[str, torch.Tensor] = {}
    n_logged = 0
    watch = DivergenceWatch(tcfg.divergence_window, tcfg.divergence_threshold) if "D" in cfg.players() else None

    if resume and list_checkpoints(ckpt_dir):
        last = max(list_checkpoints(ckpt_dir))
        state = load_checkpoint(list_checkpoints(ckpt_dir)[last], map_location=device)
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
        _set_rng_state(state["rng"])
        step, images_seen = int(state["step"]), int(state["images_seen"])
        seconds, skipped = float(state["seconds"]), int(state.get("skipped", 0))
        log_state = state.get("log") or {}
        sums = {k: v.to(device) for k, v in log_state.get("sums", {}).items()}
        n_logged = int(log_state.get("n", 0))
        if watch is not None and "divergence" in state:
            watch.load_state_dict(state["divergence"])

    def checkpoint() -> Path:
        state = {
            "method": cfg.method.kind, "step": step, "images_seen": images_seen, "seconds": seconds,
            "skipped": skipped, "data_shape": list(data.shape), "latent_shape": list(latent_shape),
            "data_kind": data.kind, "num_classes": None,
            "nets": {p: n.state_dict() for p, n in nets.items()},
            "ema": ema.state_dict() if ema is not None else None,
            "optim": {p: o.state_dict() for p, o in opts.items()},
            "sched": {p: s.state_dict() for p, s in scheds.items()},
            "sampler": sampler.state_dict(), "rng": _rng_state(),
            "log": {"sums": {k: torch.as_tensor(v).detach().clone() for k, v in sums.items()}, "n": n_logged},
        }
        if watch is not None:
            state["divergence"] = watch.state_dict()
        return save_checkpoint(state, ckpt_dir, step, tcfg.keep_last)

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

    proxy = ProxyEval(cfg, device, data.kind) if tcfg.proxy_every else None

    def proxy_eval() -> None:
        snet = ema.module if ema is not None else nets[method.sample_player]
        was_training = snet.training
        snet.eval()
        scores = proxy(method, {**nets, method.sample_player: snet}, latent_shape)
        snet.train(was_training)
        logger.log({"step": step, "kimg": images_seen / 1000, **scores})

    logger = MetricsLogger(run_dir, step, tcfg.tensorboard)
    info = {
        "name": cfg.name, "method": cfg.method.kind, "status": "running", "device": str(device),
        "data": {"name": data.name, "source": data.source, "fingerprint": data.fingerprint,
                 "verified_official": data.verified, "n": len(data), "shape": list(data.shape)},
        "params": {p: count_params(n) for p, n in nets.items()}, "environment": environment(),
    }
    if watch is not None:
        info["divergence"] = watch.report
    write_run_json(run_dir, info)
    bar = None
    if progress:
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

    def nonfinite(what: str) -> None:
        if tcfg.nonfinite == "skip":
            return
        kept = list_checkpoints(ckpt_dir)
        where = f"last good checkpoint {kept[max(kept)]} kept" if kept else "no checkpoint yet"
        info.update({"status": "stopped: non-finite", "step": step, "skipped_updates": skipped})
        write_run_json(run_dir, info)
        raise GenbenchError(f"{what}; training stopped, {where}",
                            "lower the learning rate, set grad_clip, or set train.nonfinite=skip")

    try:
        while budget.fraction(step, images_seen, time.time() - session_start) < 1:
            x = y = None
            for player in method.updates:
                if player in method.data_players or x is None:
                    idx = sampler.next()
                    x, y = data.batch(idx, cfg.data.hflip, sampler.generator)
                    if player in method.data_players:
                        images_seen += len(idx)
                for p, net in nets.items():
                    net.requires_grad_(p == player)
                with autocast:
                    losses = method.loss(nets, player, x, y)
                loss = losses["loss"]
                if not torch.isfinite(loss).item():
                    nonfinite(f"non-finite {player} loss at step {step}")
                    skipped += 1
                    opts[player].zero_grad(set_to_none=True)
                    continue
                opts[player].zero_grad(set_to_none=True)
                loss.backward()
                clip = cfg.optim[player].grad_clip
                gnorm = torch.nn.utils.clip_grad_norm_(nets[player].parameters(), clip or float("inf"))
                if not torch.isfinite(gnorm).item():   # a finite loss can still give inf/NaN gradients
                    nonfinite(f"non-finite {player} gradient at step {step}")
                    skipped += 1
                    opts[player].zero_grad(set_to_none=True)
                    continue
                opts[player].step()
                for key, value in losses.items():
                    name = f"loss/{player}" if key == "loss" else key
                    sums[name] = sums.get(name, 0) + value.detach().float()
                sums[f"grad_norm/{player}"] = sums.get(f"grad_norm/{player}", 0) + gnorm.detach().float()
            for s in scheds.values():
                s.step()
            if ema is not None:
                ema.update_parameters(nets[method.sample_player])
            step += 1
            n_logged += 1
            seconds = time.time() - session_start
            if step % tcfg.log_every == 0:
                now = time.time()
                record = {"step": step, "kimg": images_seen / 1000, "epoch": images_seen / len(data),
                          "seconds": round(seconds, 3),
                          "images_per_s": (images_seen - img_log) / max(now - t_log, 1e-9),
                          "skipped": skipped}
                record.update({k: float(v) / n_logged for k, v in sums.items()})
                record.update({f"lr/{p}": o.param_groups[0]["lr"] for p, o in opts.items()})
                if watch is not None:
                    news = watch.observe(step, record.get("loss/D"))
                    if watch.report is not None:
                        record["divergence"] = watch.report["reason"]
                    if news:
                        info["divergence"] = watch.report
                        write_run_json(run_dir, info)
                        warn(f"genbench: warning: {watch.report['reason']} (fix: {watch.report['fix']})")
                logger.log(record)
                sums, n_logged, t_log, img_log = {}, 0, now, images_seen
                if bar is not None:
                    bar.set_postfix_str(f"step {step} " + " ".join(
                        f"{k.split('/')[-1]}={record[k]:.4f}" for k in record if k.startswith("loss/")))
            if step % tcfg.sample_every == 0:
                sample_grid()
            if proxy is not None and step % tcfg.proxy_every == 0:
                proxy_eval()
            if step % tcfg.ckpt_every == 0:
                checkpoint()
                last_ckpt_step = step
            if bar is not None:
                bar.n = int(1000 * min(1.0, budget.fraction(step, images_seen, seconds)))
                bar.refresh()
        if last_ckpt_step != step:
            checkpoint()
        if step % tcfg.sample_every != 0:
            sample_grid()
    except (GenbenchError, OSError) as err:
        if info["status"] == "running":   # record why the run stopped (nonfinite() already did)
            what = err.line() if isinstance(err, GenbenchError) else f"{err.strerror or err}"
            info.update({"status": f"failed: {what}", "step": step, "skipped_updates": skipped})
            try:
                write_run_json(run_dir, info)
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
    write_run_json(run_dir, info)
    return info
