"""``train.init_from=RUN``: start a run's networks from another run's EMA weights.

The use it serves: MeanFlow from a trained flow run (the flow model *is* MeanFlow at r = t, Geng et
al. 2025, Sec. 4.1), and consistency tuning from a diffusion or flow run (Geng et al. 2024). The
source run's last complete checkpoint is read (checksum and weights-only loading as for a resume);
its EMA (or, without one, its sample player's weights) is loaded into the new run's trained net
and EMA. Layers the source lacks may only be the second-time embedding (``interval.``), which starts
at zero output, so the new net computes at first exactly what the source computed; anything else
that does not match is refused in one line. The source's own training time and images are
returned, so that a report can charge them to the new run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genbench import dist
from genbench.errors import GenbenchError
from genbench.files import read_json
from genbench.train.checkpoint import list_checkpoints, load_checkpoint

NEW_LAYERS = ("interval.",)   # what a run started from another may add: MeanFlow's second time


def source_weights(ckpt: dict, player: str) -> dict[str, torch.Tensor]:
    """The EMA weights of ``player`` in a checkpoint (AveragedModel keeps them under ``module.``), else
    the player's own."""
    ema = ckpt.get("ema")
    if isinstance(ema, dict) and any(k.startswith("module.") for k in ema):
        return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
    return ckpt["nets"][player]


def init_from_run(state, source: str, world: int) -> dict:
    """Load ``source``'s weights into ``state``'s sample player (and its EMA); return what was loaded
    ({"run", "checkpoint", "step", "seconds", "images_seen"})."""
    run_dir = Path(source).expanduser()
    kept = list_checkpoints(run_dir / "checkpoints")
    if not kept:
        raise GenbenchError(f"train.init_from={source}: no complete checkpoint in {run_dir / 'checkpoints'}",
                            "give the folder of a run written by `genbench train`")
    path = kept[max(kept)]
    ckpt = dist.collective(lambda: load_checkpoint(path, "cpu")) if world > 1 else load_checkpoint(path, "cpu")
    player = state.method.sample_player
    if not isinstance(ckpt, dict) or player not in (ckpt.get("nets") or {}):
        raise GenbenchError(f"train.init_from={source}: its checkpoint has no {player!r} network",
                            "start from a diffusion, EDM or flow run (the same network as this run's)")
    net = state.nets[player]
    weights = source_weights(ckpt, player)
    missing, unexpected = _mismatch(net, weights)
    if unexpected or [k for k in missing if not k.startswith(NEW_LAYERS)]:
        first = (unexpected or [k for k in missing if not k.startswith(NEW_LAYERS)])[0]
        raise GenbenchError(f"train.init_from={source}: its {player} network does not fit this run's "
                            f"({'unexpected' if unexpected else 'missing'} weight {first!r})",
                            "use the same nets.model settings as that run (only second_time may differ)")
    with torch.no_grad():
        net.load_state_dict(weights, strict=False)
        if state.ema is not None:
            state.ema.module.load_state_dict(net.state_dict())
    info = _read_info(run_dir)
    return {"run": str(run_dir), "checkpoint": path.name, "step": int(ckpt.get("step", 0)),
            "seconds": float(ckpt.get("seconds", 0.0)) + float(info.get("init_from", {}).get("seconds", 0.0)),
            "images_seen": int(ckpt.get("images_seen", 0)), "method": ckpt.get("method")}


def _mismatch(net: torch.nn.Module, weights: dict) -> tuple[list[str], list[str]]:
    own = net.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own or tuple(weights[k].shape) != tuple(own[k].shape)]
    return missing, unexpected


def _read_info(run_dir: Path) -> dict:
    try:
        info = read_json(run_dir / "run.json", "the source's time is then not counted")
    except (GenbenchError, OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
