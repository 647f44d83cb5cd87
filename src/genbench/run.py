"""Load a trained run back for sampling (creating run directories safely is :mod:`genbench.rundir`).

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (provenance and
status), ``checkpoints/``, ``samples/``, ``metrics.jsonl`` and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genbench.config import RunConfig, build_config, read_yaml
from genbench.dist import pick_device
from genbench.errors import GenbenchError
from genbench.train.checkpoint import list_checkpoints, load_checkpoint


@dataclass
class LoadedRun:
    cfg: RunConfig
    method: object
    nets: dict[str, nn.Module]      # raw weights
    ema: nn.Module | None           # EMA copy of the sample player, if the run kept one
    step: int
    images_seen: int
    latent_shape: tuple[int, ...]
    data_shape: tuple[int, ...]
    data_kind: str
    device: torch.device
    # for a model from outside genbench (a diffusers folder, a `genbench export`): what it is, for the record
    source: dict | None = None
    # a class-conditional run's classes (labels 0..num_classes-1; num_classes is also the "no label" token of
    # diffusion/flow/few-step nets); None for an unconditional run and for checkpoints older than conditioning
    num_classes: int | None = None
    class_names: list[str] | None = None

    def sampling_nets(self, use_ema: bool = True) -> dict[str, nn.Module]:
        nets = dict(self.nets)
        if use_ema and self.ema is not None:
            nets[self.method.sample_player] = self.ema
        for net in nets.values():
            net.eval()
        return nets


def load_run(run_dir: Path, checkpoint: int | None = None, device: str = "auto") -> LoadedRun:
    from genbench.methods import build_method
    from genbench.train.state import TrainState, check_checkpoint

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise GenbenchError(f"{run_dir} is not a genbench run (no config.yaml)",
                            "give a directory made by `genbench train`")
    cfg = build_config(read_yaml(run_dir / "config.yaml"), source=str(run_dir / "config.yaml"))
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if not ckpts:
        unverified = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
        if unverified:   # a writer killed between the rename and the checksum
            raise GenbenchError(f"run {run_dir} has no complete checkpoint: {unverified[-1].name} has no "
                                ".sha256 checksum (its writer was interrupted)",
                                "resume the run with `genbench train ... --resume` to write a verified one")
        raise GenbenchError(f"run {run_dir} has no checkpoint yet", "train it first, or wait for its first checkpoint")
    if checkpoint is None:
        checkpoint = max(ckpts)
    elif checkpoint not in ckpts:
        raise GenbenchError(f"run {run_dir} has no checkpoint at step {checkpoint}",
                            f"choose one of {list(ckpts)}")
    dev = pick_device(device, knob="--device")
    path = ckpts[checkpoint]
    sd = load_checkpoint(path, map_location=dev)
    check_checkpoint(sd, cfg, path, training=False)
    state = TrainState.for_sampling(cfg, build_method(cfg.method), sd["data_shape"], sd["data_kind"], dev,
                                    sd.get("num_classes"), sd.get("class_names"))
    state.load_state_dict(sd, source=path)
    return LoadedRun(cfg, state.method, state.nets, state.ema.module if state.ema is not None else None,
                     state.step, state.images_seen, state.latent_shape, state.data_shape, state.data_kind, dev,
                     num_classes=state.num_classes, class_names=state.class_names)
