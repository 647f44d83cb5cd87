"""Run directories: create them safely, and load a trained run back for sampling.

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (provenance and
status), ``checkpoints/``, ``samples/``, ``metrics.jsonl`` and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genbench.config import RunConfig, build_config, dump_config, read_yaml
from genbench.errors import GenbenchError
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
        from genbench.train.checkpoint import atomic_write_bytes

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


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise GenbenchError("train.device=cuda but no CUDA device is available", "use train.device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":   # under torchrun: this process's own GPU, cuda:LOCAL_RANK
        from genbench import dist

        return dist.cuda_device() if dist.is_initialized() else torch.device("cuda")
    return torch.device(name)


def environment() -> dict:
    import numpy

    import genbench

    return {
        "genbench": genbench.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
    }


def write_run_json(path: Path, info: dict) -> None:
    from genbench.train.checkpoint import atomic_write_bytes

    atomic_write_bytes(path / "run.json", (json.dumps(info, indent=2) + "\n").encode())


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
    from genbench.nets import build_net

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
    state = load_checkpoint(ckpts[checkpoint], map_location=dev)
    if state.get("method") != cfg.method.kind:
        raise GenbenchError(f"checkpoint {ckpts[checkpoint]} is from method {state.get('method')!r}, "
                            f"but the run is {cfg.method.kind!r}", "use the checkpoint's own run directory")
    method = build_method(cfg.method)
    data_shape = tuple(state["data_shape"])
    nets = {p: build_net(cfg.nets[p], data_shape, state.get("num_classes")).to(dev) for p in cfg.players()}
    for p, net in nets.items():
        _load_state(net, state["nets"][p], f"{p} network", ckpts[checkpoint])
    ema = None
    if state.get("ema") is not None:
        import copy

        ema = copy.deepcopy(nets[method.sample_player])
        prefix = "module."
        _load_state(ema, {k[len(prefix):]: v for k, v in state["ema"].items() if k.startswith(prefix)},
                    "EMA", ckpts[checkpoint])
    return LoadedRun(cfg, method, nets, ema, int(state["step"]), int(state["images_seen"]),
                     tuple(state["latent_shape"]), data_shape, state["data_kind"], dev)


def _load_state(net: nn.Module, sd: dict, what: str, path: Path) -> None:
    try:
        net.load_state_dict(sd)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise GenbenchError(f"checkpoint {path} does not fit the {what} of this run's config: {first[:160]}",
                            "the config was changed after training; restore the run's config.yaml") from None
