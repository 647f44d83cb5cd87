"""Run directories: create them safely, and load a trained run back for sampling.

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (provenance and
status), ``checkpoints/``, ``samples/``, ``metrics.jsonl`` and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genbench.config import RunConfig, build_config, dump_config, read_yaml
from genbench.dist import pick_device
from genbench.errors import GenbenchError
from genbench.files import atomic_write_bytes
from genbench.train.checkpoint import list_checkpoints, load_checkpoint

# keys that may change when a run is resumed: how long it runs and how it reports
RESUMABLE_KEYS = ("train.budget", "train.ckpt_every", "train.sample_every", "train.log_every",
                  "train.device", "train.keep_last", "train.keep_every", "train.tensorboard", "train.divergence_window",
                  "train.divergence_threshold", "train.channels_last", "train.tf32", "train.cudnn_benchmark",
                  "train.compile")


def prepare_run_dir(path: Path, cfg: RunConfig, resume: bool, overwrite: bool) -> RunConfig:
    """Create (or, with ``resume``, reopen) a run directory; never clobber one unasked.

    Returns the config to train with: on resume, the run's own config with only the
    :data:`RESUMABLE_KEYS` taken from ``cfg``.
    """
    # a temp file left by a kill during our own config write does not make the folder a run
    exists = (any(not (p.name.startswith(".") and p.name.endswith(".tmp")) for p in path.iterdir())
              if path.is_dir() else path.exists())
    if path.exists() and not path.is_dir():
        raise GenbenchError(f"run directory {path} is a file", "choose another --out")
    if resume:
        if not (path / "config.yaml").is_file():
            raise GenbenchError(f"cannot resume: {path} is not a genbench run (no config.yaml)",
                                "give the run directory of an earlier `genbench train`, or drop --resume")
        saved = build_config(read_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
        return _merge_resumable(saved, cfg)
    if exists:
        if not overwrite:
            raise GenbenchError(f"run directory {path} already exists",
                                "add --resume to continue it, --overwrite to replace it, or choose --out")
        if not (path / "config.yaml").is_file():
            raise GenbenchError(f"refusing to overwrite {path}: it is not a genbench run directory",
                                "choose another --out")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # atomic: a kill here leaves no half-written config that --resume would trip over
        atomic_write_bytes(path / "config.yaml", dump_config(cfg).encode())
    except OSError as err:
        raise GenbenchError(f"cannot create run directory {path}: {err.strerror or err}",
                            "choose a writable --out") from None
    return cfg


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _merge_resumable(saved: RunConfig, given: RunConfig) -> RunConfig:
    a, b = _flatten(saved.model_dump(mode="json")), _flatten(given.model_dump(mode="json"))
    tree = saved.model_dump(mode="json")
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if not key.startswith(RESUMABLE_KEYS):
            raise GenbenchError(
                f"cannot resume with a different '{key}' ({a.get(key)!r} in the run, {b.get(key)!r} given)",
                f"only {', '.join(RESUMABLE_KEYS)} may change on resume; start a new run for other changes",
            )
    for key in RESUMABLE_KEYS:
        section = key.split(".", 1)[1]
        tree["train"][section] = given.model_dump(mode="json")["train"][section]
    return build_config(tree)


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
    dev = pick_device(device)
    path = ckpts[checkpoint]
    sd = load_checkpoint(path, map_location=dev)
    check_checkpoint(sd, cfg, path, training=False)
    state = TrainState.for_sampling(cfg, build_method(cfg.method), sd["data_shape"], sd["data_kind"], dev)
    state.load_state_dict(sd, source=path)
    return LoadedRun(cfg, state.method, state.nets, state.ema.module if state.ema is not None else None,
                     state.step, state.images_seen, state.latent_shape, state.data_shape, state.data_kind, dev)
