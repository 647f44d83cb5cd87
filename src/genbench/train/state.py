"""The training state: everything a run needs to continue exactly, in one object.

Nets, EMA, optimisers, lr schedules, the data position (sampler), the RNG streams, the counters,
the log sums and the GAN divergence watch. :meth:`TrainState.state_dict` is the checkpoint
layout, written here only; :meth:`TrainState.load_state_dict` reads it back, for ``--resume``
and, on a state built for sampling (nets and EMA only), for :func:`genbench.run.load_run`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genbench import dist
from genbench.config import RunConfig
from genbench.data.sampler import BatchSampler
from genbench.errors import GenbenchError
from genbench.nets import build_net, check_nets_fit
from genbench.randomness import derived_seed
from genbench.train.budget import Budget
from genbench.train.divergence import DivergenceWatch
from genbench.train.ema import make_ema
from genbench.train.lr import lr_factor
from genbench.train.tally import Tally

# what a checkpoint must hold to be loaded at all (for sampling); training needs the rest too
SAMPLING_KEYS = ("method", "step", "images_seen", "data_shape", "latent_shape", "data_kind", "nets")
TRAINING_KEYS = (*SAMPLING_KEYS, "seconds", "optim", "sched", "sampler", "rng")


def make_optimizer(net: nn.Module, cfg, device: torch.device, ratio: float = 1.0) -> torch.optim.Optimizer:
    """Adam/AdamW with the fused kernel (CUDA and CPU: one kernel for all tensors, ~3x the foreach
    path on CPU), which can also skip a step on the device (``found_inf``) without a host wait.
    ``ratio`` c < 1 (a GAN's lazily regularised D) takes lr x c and betas ** c (StyleGAN2, App. B)."""
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return cls(net.parameters(), lr=cfg.lr * ratio, betas=tuple(b ** ratio for b in cfg.betas), eps=cfg.eps,
               weight_decay=cfg.weight_decay, fused=True)


def net_shape(method):
    """``(player, data_shape) -> the input shape of player's net``: the data's, unless the method says
    otherwise (a packing GAN's D takes several samples at once)."""
    return getattr(method, "net_shape", lambda player, data_shape: tuple(data_shape))


class TrainState:
    """Build with :meth:`for_training` (what the loop runs) or :meth:`for_sampling` (what a
    loaded run needs); both build the nets the same way, so both read the same checkpoints."""

    def __init__(self, cfg: RunConfig, method, data_shape, data_kind: str, device: torch.device,
                 num_classes: int | None = None, class_names: list[str] | None = None):
        self.cfg, self.method, self.device = cfg, method, device
        self.data_shape, self.data_kind = tuple(data_shape), data_kind
        # a conditional run's classes (None: unconditional); the method's losses need the "no label" index
        self.num_classes, self.class_names = num_classes, class_names
        method.num_classes = num_classes
        shape = net_shape(method)
        self.nets = {p: build_net(cfg.nets[p], shape(p, self.data_shape), self.num_classes).to(device)
                     for p in cfg.players()}
        self.ema = None
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.scheds: dict = {}
        self.sampler: BatchSampler | None = None
        self.draws: torch.Generator | None = None
        self.layout: torch.memory_format | None = None
        self.step = self.images_seen = self.skipped = 0
        self.seconds = 0.0
        self.tally = Tally()
        self.watch = None
        self.latent_shape: tuple[int, ...] = ()
        self.init_from: dict | None = None   # the run whose weights this one started from (train.init_from)

    @property
    def training(self) -> bool:
        return self.sampler is not None

    @classmethod
    def for_sampling(cls, cfg: RunConfig, method, data_shape, data_kind: str, device: torch.device,
                     num_classes: int | None = None, class_names: list[str] | None = None) -> TrainState:
        check_nets_fit({p: cfg.nets[p] for p in cfg.players()}, tuple(data_shape), num_classes, device, "sampling",
                       net_shape(method))
        state = cls(cfg, method, data_shape, data_kind, device, num_classes, class_names)
        state.ema = make_ema(state.nets[method.sample_player], cfg.train.ema, cfg.train.batch_size)
        return state

    @classmethod
    def for_training(cls, cfg: RunConfig, method, data_shape, data_kind: str, n_data: int, budget: Budget,
                     runtime, num_classes: int | None = None, class_names: list[str] | None = None) -> TrainState:
        """Nets (drawing their initial weights from torch's generator seeded by the caller), EMA,
        one optimiser and LambdaLR schedule per player, the sampler and the draws generator.
        ``num_classes``/``class_names``: a conditional run's classes (:func:`run_classes`)."""
        tcfg = cfg.train
        check_nets_fit({p: cfg.nets[p] for p in cfg.players()}, tuple(data_shape), num_classes, runtime.device,
                       "training", net_shape(method))
        state = cls(cfg, method, data_shape, data_kind, runtime.device, num_classes, class_names)
        state.layout = runtime.layout
        state.apply_layout()
        state.sampler = BatchSampler(n_data, tcfg.batch_size, seed=cfg.seed)
        state.ema = make_ema(state.nets[method.sample_player], tcfg.ema, tcfg.batch_size)
        state.latent_shape = tuple(method.latent_shape(state.data_shape, state.nets))
        state.nets = runtime.prepare(state.nets, tcfg)
        ratio = getattr(method, "optim_ratio", lambda p: 1.0)
        state.opts = {p: make_optimizer(state.nets[p], cfg.optim[p], runtime.device, ratio(p)) for p in cfg.players()}
        state.scheds = {p: torch.optim.lr_scheduler.LambdaLR(
            state.opts[p], lr_factor(cfg.optim[p].schedule, budget.steps_per_epoch(), budget.total_steps()))
            for p in cfg.players()}
        state.draws = torch.Generator(runtime.device).manual_seed(derived_seed("draws", cfg.seed))
        if "D" in cfg.players():
            state.watch = DivergenceWatch(tcfg.divergence_window, tcfg.divergence_threshold)
        return state

    def apply_layout(self) -> None:
        """Set the nets' memory format (at the start and after a resume): the fused optimiser needs
        the parameters in the layout its state was made in. Sampling leaves layouts as they were
        (``sampling.fast_layout``)."""
        if self.layout is not None:
            for net in [*self.nets.values(), *([self.ema.module] if self.ema is not None else [])]:
                net.to(memory_format=self.layout)

    def sample_net(self) -> nn.Module:
        """The network that samples: the EMA of the sample player if the run keeps one."""
        return self.ema.module if self.ema is not None else self.nets[self.method.sample_player]

    # ------------------------------------------------------------------ the checkpoint layout

    def state_dict(self, rng_ranks: list | None = None) -> dict:
        state = {
            "method": self.cfg.method.kind, "step": self.step, "images_seen": self.images_seen,
            "seconds": self.seconds, "skipped": self.skipped, "data_shape": list(self.data_shape),
            "latent_shape": list(self.latent_shape), "data_kind": self.data_kind, "num_classes": self.num_classes,
            "class_names": self.class_names,
            "nets": {p: n.state_dict() for p, n in self.nets.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optim": {p: o.state_dict() for p, o in self.opts.items()},
            "sched": {p: s.state_dict() for p, s in self.scheds.items()},
            "sampler": self.sampler.state_dict(), "rng": rng_state(self.device), "draws": self.draws.get_state(),
            "log": self.tally.state_dict(),
        }
        if hasattr(self.method, "state_dict"):   # a method's own training state (a GAN's counters, ADA's p)
            state["method_state"] = self.method.state_dict()
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        if self.init_from is not None:
            state["init_from"] = self.init_from
        if self.watch is not None:
            state["divergence"] = self.watch.state_dict()
        return state

    def load_state_dict(self, state: dict, source: Path | str = "checkpoint") -> None:
        """Load a checkpoint: weights and EMA always; when training, also the optimisers,
        schedules, data position, RNG streams, counters, log sums and divergence watch."""
        check_checkpoint(state, self.cfg, source, self.training)
        for p, net in self.nets.items():
            _load_weights(net, state["nets"][p], f"{p} network", source)
        if self.ema is not None and state.get("ema") is not None:
            _load_weights(self.ema, state["ema"], "EMA", source)
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.latent_shape = tuple(state["latent_shape"])
        if not self.training:
            return
        try:
            for p in self.cfg.players():
                self.opts[p].load_state_dict(state["optim"][p])
                self.scheds[p].load_state_dict(state["sched"][p])
            self.sampler.load_state_dict(state["sampler"])
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise GenbenchError(f"checkpoint {source} does not fit this run's optimiser or data: "
                                f"{type(err).__name__}: {str(err)[:160]}",
                                "resume from the run's own checkpoints, or start a new run") from None
        world, rank = dist.world_size(), dist.rank()
        ranks = state.get("rng_ranks") or [state["rng"]]
        if len(ranks) == world:
            set_rng_state(ranks[rank], self.device)
        else:   # resumed on another number of processes: fresh per-rank streams (dropout only)
            torch.manual_seed(derived_seed("rank", self.cfg.seed, rank, self.step))
        if "draws" in state:
            self.draws.set_state(state["draws"])
        self.seconds, self.skipped = float(state["seconds"]), int(state.get("skipped", 0))
        self.init_from = state.get("init_from")
        self.tally.load_state_dict(state.get("log") or {}, self.device)
        if state.get("method_state") is not None and hasattr(self.method, "load_state_dict"):
            self.method.load_state_dict(state["method_state"])
        if self.watch is not None and "divergence" in state:
            self.watch.load_state_dict(state["divergence"])
        self.apply_layout()
        for opt in self.opts.values():
            _match_layout(opt)


def check_checkpoint(state, cfg: RunConfig, source, training: bool) -> None:
    """Refuse, in one line naming the file, a checkpoint that is not a genbench checkpoint of
    this run's method and players (before any network is built from it)."""
    if not isinstance(state, dict):
        raise GenbenchError(f"checkpoint {source} holds a {type(state).__name__}, not a genbench checkpoint",
                            "use a checkpoint written by `genbench train`")
    missing = [k for k in (TRAINING_KEYS if training else SAMPLING_KEYS) if k not in state]
    if missing:
        raise GenbenchError(f"checkpoint {source} lacks {', '.join(repr(k) for k in missing)}",
                            "it was not written by `genbench train` (or by an incompatible version); "
                            "use another checkpoint")
    if state["method"] != cfg.method.kind:
        raise GenbenchError(f"checkpoint {source} is from method {state['method']!r}, "
                            f"but the run is {cfg.method.kind!r}", "use the checkpoint's own run directory")
    if bool(state.get("num_classes")) != cfg.conditional:
        raise GenbenchError(f"checkpoint {source} is of an {'un' if cfg.conditional else ''}conditional model, "
                            f"but the run's config has conditional={str(cfg.conditional).lower()}",
                            "use the checkpoint's own run directory and config")
    nets = state["nets"]
    if not isinstance(nets, dict) or set(nets) != set(cfg.players()):
        found = sorted(nets) if isinstance(nets, dict) else type(nets).__name__
        raise GenbenchError(f"checkpoint {source} holds the networks {found}, this run has "
                            f"{list(cfg.players())}", "use the checkpoint's own run directory")


def run_classes(cfg: RunConfig, data) -> tuple[int | None, list[str] | None]:
    """(num_classes, class_names) of a conditional run on ``data`` (an InMemoryData), (None, None) for an
    unconditional one. The count is the whole dataset's: a class subset (``data.classes``) keeps the
    official indices. Data without class labels are refused in one line."""
    if not cfg.conditional:
        return None, None
    if data.y is None or not data.class_names:
        raise GenbenchError(f"conditional=true needs class labels, but dataset '{data.name}' ({data.source}) has none",
                            "set conditional=false, or give labelled data (an image folder: one sub-folder per class)")
    return len(data.class_names), list(data.class_names)


def _load_weights(net: nn.Module, sd, what: str, source) -> None:
    try:
        net.load_state_dict(sd)
    except (RuntimeError, TypeError, AttributeError, ValueError) as err:
        lines = str(err).splitlines()
        first = lines[1].strip() if len(lines) > 1 else str(err)
        raise GenbenchError(f"checkpoint {source} does not fit the {what} of this run's config: {first[:160]}",
                            "the config was changed after training; restore the run's config.yaml") from None


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if dist.world_size() > 1:   # this rank's own GPU only: never touch the other ranks' devices
        if device.type == "cuda":
            state["cuda_local"] = torch.cuda.get_rng_state(device)
    elif torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
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
