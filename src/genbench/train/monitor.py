"""The loop's per-tick work, kept off the hot path: non-finite checks, log lines (averaged over
steps and ranks), the GAN divergence watch, sample grids, proxy scores, checkpoints, ``run.json``
and the progress bar. Rank 0 alone writes; the other ranks join the collectives and wait.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from genbench import dist
from genbench.config import RunConfig
from genbench.data.base import InMemoryData
from genbench.errors import GenbenchError
from genbench.files import environment, write_run_json
from genbench.nets import count_params
from genbench.sampling import generate, seed_labels
from genbench.train.budget import Budget
from genbench.train.checkpoint import list_checkpoints, save_checkpoint
from genbench.train.logger import MetricsLogger
from genbench.train.proxy import ProxyEval
from genbench.train.setup import Runtime
from genbench.train.state import TrainState, rng_state
from genbench.train.step import NonFinite
from genbench.viz import save_image_grid, save_points_plot


class _NoLogger:
    """What ranks other than 0 log: nothing."""

    def log(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


class Monitor:
    def __init__(self, cfg: RunConfig, run_dir: Path, rt: Runtime, state: TrainState, data: InMemoryData,
                 budget: Budget, flags: NonFinite, progress: bool, resumed: bool,
                 on_checkpoint: Callable[[], None] | None = None):
        self.cfg, self.tcfg, self.run_dir, self.rt, self.budget, self.flags = cfg, cfg.train, run_dir, rt, budget, flags
        self.ckpt_dir = run_dir / "checkpoints"
        self.on_checkpoint = on_checkpoint
        self.n_data = len(data)
        self.grid_seeds = list(range(self.tcfg.grid_seed, self.tcfg.grid_seed + self.tcfg.grid_n))
        # a conditional run's grids and proxy scores ask for its classes in turn by seed (as `genbench sample`)
        self.classes = sorted(set(data.y.tolist())) if state.num_classes and data.y is not None else None
        self.grid_labels = seed_labels(self.grid_seeds, self.classes) if self.classes else None
        self.real_points = data.x[:2000].float().cpu() if data.kind == "points" else None
        self.proxy = ProxyEval(cfg, rt.device, data.kind) if self.tcfg.proxy_every and rt.main else None
        self.logger = MetricsLogger(run_dir, state.step, self.tcfg.tensorboard) if rt.main else _NoLogger()
        self.info = {
            "name": cfg.name, "method": cfg.method.kind, "status": "running", "device": str(rt.device),
            "world_size": rt.world,
            "data": {"name": data.name, "source": data.source, "fingerprint": data.fingerprint,
                     "verified_official": data.verified, "n": len(data), "shape": list(data.shape)},
            "params": {p: count_params(n) for p, n in state.nets.items()}, "environment": environment(),
            # class-conditional runs: the classes (labels index class_names); None when unconditional
            "num_classes": state.num_classes, "class_names": state.class_names,
        }
        if state.watch is not None:
            self.info["divergence"] = state.watch.report
        if state.init_from is not None:   # its training time and images count towards this run's cost
            self.info["init_from"] = state.init_from
        self.write_info()
        self.bar = None
        if progress and rt.main:
            import sys

            from tqdm import tqdm

            # into a log file (not a terminal) a line every 30 s, not one per redraw
            self.bar = tqdm(total=1000, desc=cfg.name, unit="‰", dynamic_ncols=True, leave=True,
                            mininterval=0.1 if sys.stderr.isatty() else 30,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
        self.t_log, self.img_log = time.time(), state.images_seen
        self.last_ckpt_step = state.step if resumed else -1
        self.check_every_step = rt.device.type != "cuda"   # reading a CPU tensor costs nothing

    # ------------------------------------------------------------------ per tick

    def after_step(self, state: TrainState) -> None:
        step, t = state.step, self.tcfg
        grid_now = step % t.sample_every == 0
        proxy_now = bool(t.proxy_every) and step % t.proxy_every == 0
        ckpt_now = step % t.ckpt_every == 0
        if not self.check_every_step and (step % t.log_every == 0 or grid_now or proxy_now or ckpt_now):
            self.check_flags(state)
        if step % t.log_every == 0:
            self.log_line(state)
        if grid_now:
            self.rt.rank0(lambda: self.sample_grid(state))
        if proxy_now:
            self.rt.rank0(lambda: self.proxy_scores(state))
        if ckpt_now:
            self.checkpoint(state)
        if self.bar is not None:
            done = int(1000 * min(1.0, self.budget.fraction(step, state.images_seen, state.seconds)))
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)   # redraws at most every mininterval

    def finish(self, state: TrainState) -> None:
        """After the last step: a last check, the final checkpoint and grid."""
        self.check_flags(state)
        if self.last_ckpt_step != state.step:
            self.checkpoint(state)
        if state.step % self.tcfg.sample_every != 0:
            self.rt.rank0(lambda: self.sample_grid(state))

    def check_flags(self, state: TrainState) -> None:
        """Read the device-side skip record; under ``nonfinite=stop`` end the run at the first one."""
        state.skipped, first = self.flags.read()
        if first is None:
            return
        if self.tcfg.nonfinite == "skip":
            self.flags.clear_first()
            return
        bad_step, who, what = first
        kept = list_checkpoints(self.ckpt_dir)
        where = f"last good checkpoint {kept[max(kept)]} kept" if kept else "no checkpoint yet"
        self.info.update({"status": "stopped: non-finite", "step": bad_step, "skipped_updates": state.skipped})
        self.write_info()
        raise GenbenchError(f"non-finite {who} {what} at step {bad_step}; training stopped, {where}",
                            "lower the learning rate, set grad_clip, or set train.nonfinite=skip")

    def log_line(self, state: TrainState) -> None:
        state.tally.reduce(self.rt.device)
        now = time.time()
        record = {"step": state.step, "kimg": state.images_seen / 1000, "epoch": state.images_seen / self.n_data,
                  "seconds": round(state.seconds, 3),
                  "images_per_s": (state.images_seen - self.img_log) / max(now - self.t_log, 1e-9),
                  "skipped": state.skipped}
        record.update(state.tally.means())
        record.update({f"lr/{p}": o.param_groups[0]["lr"] for p, o in state.opts.items()})
        watch = state.watch
        if watch is not None:
            news = watch.observe(state.step, record.get("loss/D"))
            if watch.report is not None:
                record["divergence"] = watch.report["reason"]
            if news:
                self.info["divergence"] = watch.report
                self.write_info()
                if self.rt.main:
                    self.warn(f"genbench: warning: {watch.report['reason']} (fix: {watch.report['fix']})")
        self.logger.log(record)
        state.tally.clear()
        self.t_log, self.img_log = now, state.images_seen
        if self.bar is not None:
            self.bar.set_postfix_str(f"step {state.step} " + " ".join(
                f"{k.split('/')[-1]}={record[k]:.4f}" for k in record if k.startswith("loss/")), refresh=False)

    @contextmanager
    def _sampling_nets(self, state: TrainState):
        """The nets with the sample player's EMA (if any) in eval mode, its mode restored after."""
        snet = state.sample_net()
        was_training = snet.training
        snet.eval()
        try:
            yield {**state.nets, state.method.sample_player: snet}
        finally:
            snet.train(was_training)

    def sample_grid(self, state: TrainState) -> None:
        (self.run_dir / "samples").mkdir(exist_ok=True)
        with self._sampling_nets(state) as nets:
            x, nfe = generate(state.method, nets, state.latent_shape, self.grid_seeds, self.rt.device,
                              solver=self.cfg.sample.solver, nfe=self.cfg.sample.nfe, labels=self.grid_labels,
                              **self.cfg.sample.clip_options())
        path = self.run_dir / "samples" / f"grid-{state.step:09d}.png"
        if self.real_points is not None:
            save_points_plot(x, path, self.real_points, title=f"{self.cfg.name} step {state.step} (NFE {nfe})")
        else:
            save_image_grid(x, path)

    def proxy_scores(self, state: TrainState) -> None:
        with self._sampling_nets(state) as nets:
            scores = self.proxy(state.method, nets, state.latent_shape, self.classes)
        self.logger.log({"step": state.step, "kimg": state.images_seen / 1000, **scores})

    def checkpoint(self, state: TrainState) -> Path | None:
        """Every rank averages its log sums and hands its RNG state over; rank 0 writes."""
        state.tally.reduce(self.rt.device)
        rng_ranks = dist.all_gather_objects(rng_state(self.rt.device)) if self.rt.world > 1 else None
        self.last_ckpt_step = state.step
        if not self.rt.main:
            dist.barrier()
            return None
        try:
            path = save_checkpoint(state.state_dict(rng_ranks), self.ckpt_dir, state.step, self.tcfg.keep_last,
                                   self.tcfg.keep_every)
            if self.on_checkpoint is not None:
                self.on_checkpoint()
            return path
        finally:
            dist.barrier()

    # ------------------------------------------------------------------ run.json, messages, end

    def write_info(self) -> None:
        if self.rt.main:
            write_run_json(self.run_dir, self.info)

    def warn(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def failed(self, err: Exception, state: TrainState) -> None:
        """Record why the run stopped (a non-finite stop has already done so)."""
        if self.info["status"] != "running":
            return
        what = err.line() if isinstance(err, GenbenchError) else f"{getattr(err, 'strerror', None) or err}"
        self.info.update({"status": f"failed: {what}", "step": state.step, "skipped_updates": state.skipped})
        try:
            self.write_info()
        except OSError:
            pass   # the disk may be full: the error itself still reaches the user

    def finished(self, state: TrainState, process_seconds: float) -> dict:
        self.info.update({"status": "finished", "step": state.step, "images_seen": state.images_seen,
                          "epochs": state.images_seen / self.n_data, "train_seconds": round(state.seconds, 2),
                          "skipped_updates": state.skipped, "process_seconds": round(process_seconds, 2)})
        self.write_info()
        return self.info

    def close(self) -> None:
        self.logger.close()
        if self.bar is not None:
            self.bar.close()
