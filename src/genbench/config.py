"""Typed run configuration: YAML files plus ``key=value`` overrides, validated by pydantic.

A run is described by one :class:`RunConfig`; its resolved form is written to
``<run>/config.yaml`` so that every run can be reproduced from its own directory.
Units are in the names (``halflife_kimg``, ``minutes``); unknown keys and wrong types are
refused with the valid choices named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from genbench.errors import GenbenchError
from genbench.limits import CONFIG_FILE_BYTES, YAML_NODES, YamlTooLarge, load_yaml, read_bytes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# every seed (config and command line) lies in 0..2^63-1: torch seeds its generators with 64 bits and
# genbench's per-sample streams take seeds modulo 2^63, so a larger one would repeat another's samples
SEED_MAX = 2**63 - 1


def _seed(value: int) -> int:
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"a seed must lie in 0..2^63-1 (0..{SEED_MAX})")
    return value


Seed = Annotated[int, AfterValidator(_seed)]


def _label_dropout(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError("label_dropout is the share of labels dropped: it must lie in [0, 1), e.g. 0.1")
    return value


# The share of training labels replaced by the "no label" token (genbench.methods.labels.drop_labels), so
# that one network learns the conditional and the unconditional model at once, which classifier-free
# guidance mixes (Ho & Salimans 2022, Sec. 3.2: p_uncond 0.1 or 0.2). Used only by a run with
# conditional=true; a GAN has no such token (its G and D always see the class).
LabelDropout = Annotated[float, AfterValidator(_label_dropout)]


def unknown_user(path: str) -> str | None:
    """The user of a ``~user/...`` path that has no home directory here (None when the path is fine)."""
    import os

    if path.startswith("~") and os.path.expanduser(path) == path:
        return path[1:].split("/", 1)[0] or "(the current user)"
    return None


# ----------------------------------------------------------------------------- data

# The dataset names, defined here (torch-free) and imported everywhere else. Each of DOWNLOADABLE_SETS is
# a genbench.data source (official files, checksums, search order; tests/test_registries.py holds the two
# equal); TOY_SETS are generated (genbench.data.toy2d); folder and stacked_fashion_mnist are built from
# files the user points at or from Fashion-MNIST.
DOWNLOADABLE_SETS = ("fashion_mnist", "mnist", "cifar10")
TOY_SETS = ("ring", "grid")
DatasetName = Literal[(*DOWNLOADABLE_SETS, "folder", *TOY_SETS, "stacked_fashion_mnist")]


class DataConfig(_Strict):
    name: DatasetName = "fashion_mnist"
    root: str | None = None          # folder (or CIFAR .tar.gz) to read; None = search
    split: Literal["train", "test"] = "train"
    classes: list[int | str] | None = None   # class subset by index or name, e.g. [automobile]
    img_size: int | None = Field(None, ge=4)  # only image folders are resized
    channels: Literal[1, 3] = 3               # image folders only
    hflip: bool = False
    download: bool = True                     # allowed to download when not found locally
    limit: int | None = Field(None, ge=1)    # keep only the first N items (quick runs, tests)
    n_points: int = Field(100_000, ge=16)    # 2-D and stacked sets: size of the fixed generated set
    std: float | None = Field(None, gt=0)    # 2-D sets: per-mode std (default: ring 0.02, grid 0.05)

    @field_validator("root")
    @classmethod
    def _root(cls, root: str | None) -> str | None:
        if root is not None and not root.strip():
            raise ValueError("must be a non-empty path (or left out to search the usual places)")
        if root is not None and (user := unknown_user(root)):
            raise ValueError(f"'{root}' names the home of user '{user}', who is unknown here; write the full path")
        return root


# ----------------------------------------------------------------------------- networks


class UNetConfig(_Strict):
    """Time-conditioned UNet of Ho et al. 2020 (their CIFAR-10 model: ch=128, mult 1,2,2,2)."""

    kind: Literal["unet"] = "unet"
    ch: int = Field(128, ge=8)
    ch_mult: list[int] = [1, 2, 2, 2]
    num_res_blocks: int = Field(2, ge=1)
    attn_resolutions: list[int] = [16]
    dropout: float = Field(0.1, ge=0, lt=1)
    groups: int = Field(32, ge=1)            # GroupNorm groups
    num_heads: int = Field(1, ge=1)
    # MeanFlow's second time: an embedding of the interval t - r added to t's (zero at start, so the net
    # begins as the one-time net it may be loaded from); see genbench.nets.embedding
    second_time: bool = False
    time_scale: float = Field(1000.0, gt=0)   # t is embedded as sin/cos of time_scale * t * frequencies


class DCGANGConfig(_Strict):
    """DCGAN generator (Radford et al. 2016), the study's GAN."""

    kind: Literal["dcgan_g"] = "dcgan_g"
    z_dim: int = Field(100, ge=1)
    ch: int = Field(64, ge=4)


class DCGANDConfig(_Strict):
    kind: Literal["dcgan_d"] = "dcgan_d"
    ch: int = Field(64, ge=4)
    # batch: DCGAN's BatchNorm in D; none: no normalisation, for gradient penalties (R1/R2 and WGAN-GP
    # penalise each sample's own input gradient, which a batch statistic couples across the batch)
    norm: Literal["batch", "none"] = "batch"


class ResNetGConfig(_Strict):
    """SNGAN ResNet generator (Miyato et al. 2018, Table 4)."""

    kind: Literal["resnet_g"] = "resnet_g"
    z_dim: int = Field(128, ge=1)
    ch: int = Field(256, ge=4)


class ResNetDConfig(_Strict):
    """SNGAN ResNet discriminator with spectral normalisation (Miyato et al. 2018)."""

    kind: Literal["resnet_d"] = "resnet_d"
    ch: int = Field(128, ge=4)
    spectral_norm: bool = True


class _R3GANShape(_Strict):
    """R3GAN's G or D (Huang et al. 2024, Sec. 4, config E): stages of residual inverted-bottleneck blocks
    without normalisation. The paper's CIFAR-10 model: ch 768, 2 blocks, 96 groups, expansion 2."""

    ch: int = Field(128, ge=4)                # width of every stage
    blocks: int = Field(2, ge=1)              # residual blocks per stage
    groups: int = Field(8, ge=1)              # cardinality of each block's grouped 3x3 conv
    expansion: int = Field(2, ge=1)           # the blocks' inner width is ch * expansion

    @model_validator(mode="after")
    def _groups(self):
        if (self.ch * self.expansion) % self.groups:
            raise ValueError(f"groups ({self.groups}) must divide ch * expansion ({self.ch * self.expansion})")
        return self


class R3GANGConfig(_R3GANShape):
    kind: Literal["r3gan_g"] = "r3gan_g"
    z_dim: int = Field(64, ge=1)


class R3GANDConfig(_R3GANShape):
    kind: Literal["r3gan_d"] = "r3gan_d"


class MLPConfig(_Strict):
    """MLP for 2-D data: ``mlp`` is a time-conditioned model, ``mlp_g``/``mlp_d`` a GAN pair."""

    kind: Literal["mlp", "mlp_g", "mlp_d"] = "mlp"
    hidden: int = Field(256, ge=2)
    depth: int = Field(3, ge=1)
    z_dim: int = Field(2, ge=1)               # mlp_g only
    second_time: bool = False                 # mlp only: MeanFlow's second time (see UNetConfig)
    time_scale: float = Field(1000.0, gt=0)   # mlp only


NetConfig = Annotated[
    Union[UNetConfig, DCGANGConfig, DCGANDConfig, ResNetGConfig, ResNetDConfig, R3GANGConfig, R3GANDConfig,
          MLPConfig],
    Field(discriminator="kind"),
]

# which network kinds can fill which role (the roles are the players of PLAYERS); genbench.nets.NETS maps
# each kind to its class, and tests/test_registries.py holds the kinds of both (and of NetConfig) equal
NET_ROLES: dict[str, set[str]] = {
    "model": {"unet", "mlp"},
    "G": {"dcgan_g", "resnet_g", "r3gan_g", "mlp_g"},
    "D": {"dcgan_d", "resnet_d", "r3gan_d", "mlp_d"},
}

# ----------------------------------------------------------------------------- methods

# The solvers each method can sample with: a torch-free mirror of the registry, genbench.solvers.SOLVERS
# (``solver_names(path)``: all on diffusion's DiscreteVP, all but ddpm on flow's LinearPath), kept here so
# that configs validate without torch. tests/test_solver_library.py holds the two equal.
DiffusionSolver = Literal["ddpm", "ddim", "euler", "heun", "midpoint", "rk4", "heun_ve", "karras_sde",
                          "dpm++2m", "dpm++2s", "unipc", "euler_maruyama", "dopri5", "consistency"]
FlowSolver = Literal["ddim", "euler", "heun", "midpoint", "rk4", "heun_ve", "karras_sde",
                     "dpm++2m", "dpm++2s", "unipc", "euler_maruyama", "dopri5", "consistency"]
# MeanFlow's own few-step solver, z_r = z_t - (t - r) u(z_t, r, t), beside every flow solver (at r = t)
MeanFlowSolver = Literal[FlowSolver, "meanflow"]


# x0 clipping while sampling (genbench.methods.model_fn.clip_x0): static [-1, 1] or dynamic thresholding
CLIP_MODES = ("static", "dynamic")


def solvers_for(kind: str) -> tuple[str, ...]:
    """The solvers a method can sample with (a GAN has none: one generator pass; EDM's VE path, like
    flow's, has no DDPM steps for ancestral sampling)."""
    flow = get_args(FlowSolver)
    return {"gan": (), "diffusion": get_args(DiffusionSolver), "flow": flow, "edm": flow,
            "meanflow": (*flow, "meanflow"), "ect": flow}[kind]



# D's augmentations (genbench.augment): DiffAugment's policy (Zhao et al. 2020) and ADA's groups (Karras et
# al. 2020, App. B: pixel blitting, geometric, colour; plus cutout). Mirrored by genbench.augment.OPS.
AUGMENT_OPS: dict[str, tuple[str, ...]] = {"diffaug": ("color", "translation", "cutout"),
                                           "ada": ("blit", "geom", "color", "cutout")}


class AugmentConfig(_Strict):
    """Differentiable augmentation of every image D sees, real and fake, in both players' updates:
    ``diffaug`` (DiffAugment) or ``ada`` (adaptive discriminator augmentation); each operation is applied
    to a sample with probability p."""

    kind: Literal["none", "diffaug", "ada"] = "none"
    ops: list[Literal["color", "translation", "cutout", "blit", "geom"]] | None = None  # None: all of the kind's
    p: float | None = Field(None, ge=0, le=1)       # None: 1 for diffaug; ada's starting p, 0
    target: float | None = Field(0.6, gt=0, lt=1)   # ada: move p until E[sign D(real)] = target (None: p fixed)
    p_kimg: float | None = Field(None, gt=0)        # ada without target: p ramps from 0 over this many kimg (R3GAN)
    speed_kimg: float = Field(500.0, gt=0)          # ada: images over which p can go from 0 to 1
    interval: int = Field(4, ge=1)                  # ada: D updates between adjustments of p

    @model_validator(mode="after")
    def _ops(self) -> AugmentConfig:
        allowed = AUGMENT_OPS.get(self.kind, ())
        for op in self.ops or ():
            if op not in allowed:
                raise ValueError(f"augmentation '{op}' is not one of {self.kind}'s: choose from "
                                 + (", ".join(allowed) or "none (set augment.kind=diffaug or ada first)"))
        return self


class GANConfig(_Strict):
    """The GAN objective: the loss; the zero-centred gradient penalties R1 (reals) and R2 (fakes),
    gamma/2 E||grad D||^2, with any loss, optionally lazy and on a schedule; D's augmentation."""

    kind: Literal["gan"] = "gan"
    # bce = the study's minimax loss, non-saturating form; rpgan = the relativistic pairing loss of R3GAN
    loss: Literal["bce", "hinge", "rpgan"] = "bce"
    n_critic: int = Field(1, ge=1)            # D updates per G update
    gamma: float = Field(0.0, ge=0)           # penalty weight (0: no penalty)
    penalty: Literal["r1", "r2", "r1+r2"] = "r1+r2"
    gamma_final: float | None = Field(None, ge=0)   # gamma goes to gamma_final over gamma_kimg (None: constant)
    gamma_kimg: float | None = Field(None, gt=0)
    gamma_schedule: Literal["cosine", "linear"] = "cosine"
    reg_every: int = Field(1, ge=1)           # lazy: the penalty every k D updates, times k (StyleGAN2)
    augment: AugmentConfig = AugmentConfig()
    # PacGAN (Lin et al. 2018): D judges packs of this many samples, all real or all fake, concatenated
    # along channels (images) or features (points); 1 = one sample per decision
    pack: int = Field(1, ge=1, le=16)

    @model_validator(mode="after")
    def _schedule(self) -> GANConfig:
        if (self.gamma_final is None) != (self.gamma_kimg is None):
            raise ValueError("a gamma schedule needs both gamma_final and gamma_kimg (or neither: constant gamma)")
        return self


class DiffusionConfig(_Strict):
    kind: Literal["diffusion"] = "diffusion"
    schedule: Literal["linear", "cosine"] = "linear"
    T: int = Field(1000, ge=2)
    beta_start: float = Field(1e-4, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)
    cosine_s: float = Field(0.008, ge=0)
    prediction: Literal["eps", "x0", "v"] = "eps"
    solver: DiffusionSolver = "ddpm"          # ddpm = ancestral sampling, Algorithm 2 of Ho et al.
    nfe: int | None = Field(None, ge=1)       # network evaluations (None: T for ddpm; dopri5 adapts)
    eta: float = Field(0.0, ge=0)             # DDIM's eta
    label_dropout: LabelDropout = 0.1         # conditional runs: share of labels dropped (CFG)

    @model_validator(mode="after")
    def _check(self) -> DiffusionConfig:
        if self.beta_end <= self.beta_start:
            raise ValueError("beta_end must be larger than beta_start")
        return self


class FlowConfig(_Strict):
    kind: Literal["flow"] = "flow"
    sigma_min: float = Field(0.0, ge=0, lt=1)
    solver: FlowSolver = "euler"
    nfe: int | None = Field(100, ge=1)
    label_dropout: LabelDropout = 0.1         # conditional runs: share of labels dropped (CFG)


class EDMConfig(_Strict):
    """EDM diffusion (Karras et al. 2022): Table 1's preconditioning, log-normal noise levels
    (P_mean, P_std), sampled on the VE path sigma in [sigma_min, sigma_max] (default: Heun, 35 NFE)."""

    kind: Literal["edm"] = "edm"
    # Table 1's column: "edm" (the paper's), or "vp" / "ve" (Song et al. 2021's parameterisations and
    # training noise levels, weighting 1 / sigma^2; P_mean and P_std then do not apply)
    precond: Literal["edm", "vp", "ve"] = "edm"
    sigma_data: float = Field(0.5, gt=0)      # the data's standard deviation (0.5 for CIFAR-10 in [-1, 1])
    sigma_min: float = Field(0.002, gt=0)
    sigma_max: float = Field(80.0, gt=0)
    P_mean: float = -1.2                      # ln sigma ~ N(P_mean, P_std^2) in training
    P_std: float = Field(1.2, gt=0)
    solver: FlowSolver = "heun_ve"            # EDM's Algorithm 1 on the Karras grid (rho = 7)
    nfe: int | None = Field(35, ge=1)
    label_dropout: LabelDropout = 0.1         # conditional runs: share of labels dropped (CFG)

    @model_validator(mode="after")
    def _check(self) -> EDMConfig:
        if self.sigma_max <= self.sigma_min:
            raise ValueError("sigma_max must be larger than sigma_min")
        return self


class MeanFlowConfig(_Strict):
    """MeanFlow (Geng et al. 2025): the average velocity u(z, r, t) on the linear flow path, trained with the
    MeanFlow identity (Eq. 6) by a Jacobian-vector product; sampled in one or a few steps (Eq. 12)."""

    kind: Literal["meanflow"] = "meanflow"
    sigma_min: float = Field(0.0, ge=0, lt=1)
    # (t, r): two logit-normal draws, t the larger; a fraction ratio_r_neq_t keeps r != t (the rest r = t,
    # plain flow matching). The paper's best ImageNet setting: lognorm(-0.4, 1.0), 25% (Table 1a, 1d).
    time_mean: float = -0.4
    time_std: float = Field(1.0, gt=0)
    # r's own logit-normal (the official CIFAR-10 recipe draws t ~ (-0.6, 1.6), r ~ (-4.0, 1.6)); None: t's
    r_mean: float | None = None
    r_std: float | None = Field(None, gt=0)
    ratio_r_neq_t: float = Field(0.25, ge=0, le=1)
    # adaptive loss weight w = 1 / (||error||^2 + c)^p, stop-gradient (Sec. 4.3; p = 1 the paper's best)
    adaptive_p: float = Field(1.0, ge=0)
    adaptive_c: float = Field(1e-3, gt=0)
    solver: MeanFlowSolver = "meanflow"
    nfe: int | None = Field(1, ge=1)
    label_dropout: LabelDropout = 0.1         # conditional runs: share of labels dropped (CFG)


class ECTConfig(_Strict):
    """Easy Consistency Tuning (Geng et al. 2024, "Consistency Models Made Easy"): a consistency model tuned
    from a trained flow or EDM run (``train.init_from``, its EMA weights), whose parameterisation it keeps."""

    kind: Literal["ect"] = "ect"
    base: Literal["flow", "edm"] = "flow"     # the teacher's parameterisation and path
    sigma_data: float = Field(0.5, gt=0)      # edm base: its preconditioning
    sigma_min: float = Field(0.002, gt=0)     # edm base: its VE path
    sigma_max: float = Field(80.0, gt=0)
    # noise levels (as sigma = sigma/alpha of the path) ~ log-normal(P_mean, P_std) (ECT's CIFAR-10 values)
    P_mean: float = -1.1
    P_std: float = Field(2.0, gt=0)
    # the mapping r(t) = t (1 - n(t) / q^stage), n(t) = 1 + k sigmoid(-b t), r clamped at 0; a stage lasts
    # stage_steps steps, so t - r halves (q = 2) every stage (ECT Sec. 3.2, Eq. 11)
    q: float = Field(2.0, gt=1)
    k: float = Field(8.0, ge=0)
    b: float = Field(1.0, ge=0)
    stage_steps: int = Field(500, ge=1)
    huber_c: float | None = Field(None, gt=0)  # pseudo-Huber c; None: 0.00054 sqrt(dim) (Song & Dhariwal 2023)
    solver: FlowSolver = "consistency"
    nfe: int | None = Field(1, ge=1)
    label_dropout: LabelDropout = 0.1         # conditional runs: share of labels dropped (CFG)


MethodConfig = Annotated[Union[GANConfig, DiffusionConfig, FlowConfig, EDMConfig, MeanFlowConfig, ECTConfig],
                         Field(discriminator="kind")]

# The networks each method trains, each with its own optimiser: the one definition, read by RunConfig (the
# keys of nets/optim) and by each method class in genbench.methods (its ``players``).
PLAYERS: dict[str, tuple[str, ...]] = {"gan": ("G", "D"), "diffusion": ("model",), "flow": ("model",),
                                       "edm": ("model",), "meanflow": ("model",), "ect": ("model",)}

# The family each method belongs to in a comparison (EDM is a diffusion recipe, beside DDPM's; MeanFlow
# is the fourth family, the one- and few-step generators).
FAMILY_OF: dict[str, str] = {"gan": "gan", "diffusion": "diffusion", "edm": "diffusion", "flow": "flow",
                             "meanflow": "few-step", "ect": "few-step"}

# ----------------------------------------------------------------------------- optimisation


class LRScheduleConfig(_Strict):
    kind: Literal["constant", "warmup", "cosine", "step"] = "constant"
    warmup_steps: int = Field(0, ge=0)        # linear warm-up, used by every kind
    milestones_epochs: list[float] = []       # step: multiply by gamma at these epochs
    gamma: float = Field(0.1, gt=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # cosine: final lr / lr


class OptimConfig(_Strict):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)   # max global grad norm
    schedule: LRScheduleConfig = LRScheduleConfig()

    @field_validator("betas")
    @classmethod
    def _betas(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("each of betas must be in [0, 1), e.g. [0.9, 0.999]")
        return betas


# ----------------------------------------------------------------------------- training


class BudgetConfig(_Strict):
    """Training stops at the first of these limits that is reached."""

    steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    kimg: float | None = Field(None, gt=0)
    minutes: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _any(self) -> BudgetConfig:
        if all(v is None for v in (self.steps, self.epochs, self.kimg, self.minutes)):
            raise ValueError("set at least one of steps, epochs, kimg, minutes")
        return self

    def as_dict(self) -> dict:
        """The limits that are set, e.g. ``{"minutes": 10}``."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class EMAConfig(_Strict):
    """EMA of the sampled network: a fixed ``decay`` per step, or a half-life in images."""

    decay: float | None = Field(None, ge=0, lt=1)
    halflife_kimg: float | None = Field(None, gt=0)
    rampup: float | None = Field(None, gt=0)   # half-life at most rampup x images seen (StyleGAN2-ADA: 0.05)

    @model_validator(mode="after")
    def _one(self) -> EMAConfig:
        if self.decay is not None and self.halflife_kimg is not None:
            raise ValueError("give either decay or halflife_kimg, not both")
        if self.rampup is not None and self.halflife_kimg is None:
            raise ValueError("rampup ramps a half-life: set halflife_kimg too")
        return self


class TrainConfig(_Strict):
    batch_size: int = Field(128, ge=1)
    # start the nets from another run's EMA weights (e.g. MeanFlow from a flow run: the flow model is
    # MeanFlow at r = t); layers that run lacks (a second time embedding) keep their initialisation
    init_from: str | None = None
    budget: BudgetConfig = BudgetConfig(steps=1000)
    ema: EMAConfig = EMAConfig(halflife_kimg=10.0)
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    ckpt_every: int = Field(1000, ge=1)       # steps; a checkpoint is also written at the end
    keep_last: int = Field(3, ge=1)
    keep_every: int | None = Field(None, ge=1)  # steps: checkpoints at its multiples are never pruned
    log_every: int = Field(50, ge=1)
    sample_every: int = Field(1000, ge=1)     # steps between fixed-seed sample grids
    grid_n: int = Field(64, ge=1)
    grid_seed: Seed = 0
    nonfinite: Literal["stop", "skip"] = "stop"
    divergence_window: int = Field(10, ge=0)       # GAN: log lines with D loss below the threshold (0: off)
    divergence_threshold: float = Field(0.01, gt=0)  # GAN: mean D loss counted as "pinned at 0"
    proxy_every: int | None = Field(None, ge=1)   # steps between proxy FID/KID (None: off)
    proxy_n: int = Field(2000, ge=10)             # samples per proxy evaluation
    tensorboard: bool = True
    # speed (results change only in the last bits; the run stays bitwise resumable)
    channels_last: bool = True    # image nets and batches in NHWC (tensor cores; oneDNN on CPU)
    tf32: bool = True             # CUDA: TF32 matmuls and convolutions (Ampere and later)
    cudnn_benchmark: bool = True  # CUDA: cuDNN times its convolution algorithms for the fixed shapes
    compile: bool = False         # torch.compile the trained nets (minutes of compiling first)


class SampleConfig(_Strict):
    """How the in-training grids (and default `genbench sample`) are drawn."""

    solver: Literal["default", DiffusionSolver, "meanflow"] = "default"   # default: the method's solver
    nfe: int | None = Field(None, ge=1)                        # None: the method's nfe
    # x0 clipping while sampling (CLIP_MODES): the default of grids, `genbench sample` and `eval` (--clip)
    clip: Literal["none", "static", "dynamic"] = "none"

    def clip_options(self) -> dict:
        """The solver options this section adds (none, or {"clip": mode})."""
        return {} if self.clip == "none" else {"clip": self.clip}


class RunConfig(_Strict):
    name: str = "run"
    seed: Seed = 0
    data: DataConfig = DataConfig()
    method: MethodConfig = DiffusionConfig()
    nets: dict[str, NetConfig] = {"model": UNetConfig()}
    optim: dict[str, OptimConfig] = {"model": OptimConfig()}
    train: TrainConfig = TrainConfig()
    sample: SampleConfig = SampleConfig()
    # class-conditional training: the nets take the data's class (or 2-D mode) labels y; diffusion, flow
    # and few-step models also learn the "no label" token (method.label_dropout) for guidance
    conditional: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError("run names are names, not paths; use letters, digits, '-' and '_', "
                             "and --out DIR to choose where the run goes")
        return name

    @model_validator(mode="after")
    def _players(self) -> RunConfig:
        players = PLAYERS[self.method.kind]
        for field in ("nets", "optim"):
            keys = set(getattr(self, field))
            if keys != set(players):
                raise ValueError(
                    f"{field} must have exactly the keys {list(players)} for method "
                    f"'{self.method.kind}', got {sorted(keys)}"
                )
        for player, net in self.nets.items():
            if net.kind not in NET_ROLES[player]:
                raise ValueError(
                    f"network '{net.kind}' cannot be the {player} of method '{self.method.kind}'; "
                    f"choose one of {sorted(NET_ROLES[player])}"
                )
        solvers = solvers_for(self.method.kind)
        if self.sample.solver != "default" and self.sample.solver not in solvers:
            raise ValueError(f"sample.solver '{self.sample.solver}' does not fit method "
                             f"'{self.method.kind}'; choose default or one of {sorted(solvers)}")
        toy = self.data.name in TOY_SETS
        for net in self.nets.values():
            if toy != net.kind.startswith("mlp"):
                raise ValueError(
                    f"network '{net.kind}' does not fit dataset '{self.data.name}': "
                    + ("2-D sets need mlp, mlp_g, mlp_d" if toy else "images need unet/dcgan/resnet/r3gan")
                )
        if self.method.kind == "ect" and not self.train.init_from:
            raise ValueError("method ect tunes a trained model: set train.init_from=RUN (a flow or EDM run)")
        if self.method.kind == "meanflow" and not self.nets["model"].second_time:
            raise ValueError("method meanflow needs a network of two times: set nets.model.second_time=true")
        if self.method.kind == "gan" and self.method.pack > 1:
            if self.conditional:
                raise ValueError(f"method.pack={self.method.pack} packs samples of different classes into one "
                                 "input of D, which a conditional D cannot project: set method.pack=1 or conditional=false")
            if self.train.batch_size % self.method.pack:
                raise ValueError(f"train.batch_size={self.train.batch_size} is not a multiple of "
                                 f"method.pack={self.method.pack}: D judges whole packs")
        if self.sample.clip != "none" and (toy or self.method.kind == "gan"):
            raise ValueError(f"sample.clip={self.sample.clip} keeps x0 predictions in the image range; "
                             + ("2-D points have no such range" if toy else "a GAN forms no x0 prediction")
                             + ": use sample.clip=none")
        return self

    def players(self) -> tuple[str, ...]:
        return PLAYERS[self.method.kind]


# ----------------------------------------------------------------------------- loading


def set_dotted(tree: dict, key: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``key='a.b'``, creating dicts on the way."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise GenbenchError(
                f"override '{key}': '{part}' is a value, not a section", "check the key's spelling"
            )
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``['train.batch_size=64', 'data.classes=[automobile]']`` -> typed (key, value) pairs."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise GenbenchError(f"override '{item}' is not key=value", "write e.g. train.batch_size=64")
        try:
            value = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        except YamlTooLarge as err:
            raise GenbenchError(f"override '{item[:60]}{'...' if len(item) > 60 else ''}' is refused: {err}",
                                f"give the value without aliases; {YAML_NODES.raise_hint()}") from None
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string; numbers written so are meant as numbers
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "+inf") else value
            except ValueError:
                pass
        out.append((key.strip(), value))
    return out


def _valid_keys(loc: tuple) -> list[str]:
    """Field names that are valid at the parent of a pydantic error location."""
    ann: Any = RunConfig
    for part in loc[:-1]:
        ann = _step(ann, part)
        if ann is None:
            return []
    ann = _step(ann, None) if get_origin(ann) is not None else ann
    fields = getattr(ann, "model_fields", None)
    return sorted(fields) if fields else []


def _step(ann: Any, part: Any) -> Any:
    """Walk one location part into an annotation: a model field, a dict value or a union tag."""
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    origin = get_origin(ann)
    if origin is dict:
        return get_args(ann)[1]
    if origin in (list, tuple):
        return get_args(ann)[0]
    if origin is Union:
        for member in get_args(ann):
            fields = getattr(member, "model_fields", {})
            if "kind" in fields and part in get_args(fields["kind"].annotation):
                return member
        return None
    fields = getattr(ann, "model_fields", None)
    return fields[part].annotation if fields and part in fields else None


def validation_message(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = tuple(first["loc"])
    dotted = ".".join(str(p) for p in loc if not isinstance(p, int))
    if first["type"] == "extra_forbidden":
        valid = _valid_keys(loc)
        return f"{source}: unknown key '{dotted}'; valid keys here: {', '.join(valid)}"
    if first["type"] == "union_tag_invalid":
        return f"{source}: '{dotted}': {first['msg']}"
    msg = first["msg"].removeprefix("Value error, ")   # pydantic's prefix for our own checks
    got = first.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    where = f"'{dotted}': " if dotted else ""
    return f"{source}: {where}{msg}{shown}"


def build_config(tree: dict, source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise GenbenchError(
            validation_message(err, source), "edit the config file or the key=value override"
        ) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise GenbenchError(
            f"config file '{path}' not found", "give a YAML file, e.g. configs/fmnist/ddpm.yaml"
        )
    try:
        tree = load_yaml(read_bytes(path, CONFIG_FILE_BYTES, "config file", "give a YAML config file").decode("utf-8"))
    except YamlTooLarge as err:
        raise GenbenchError(f"config file '{path}' is refused: {err}",
                            f"write the values out without aliases; {YAML_NODES.raise_hint()}") from None
    except UnicodeDecodeError as err:
        raise GenbenchError(f"config file '{path}' is not text: byte {err.start} is not UTF-8 (a binary or "
                            "damaged file)", "give a YAML text file; restore a run's config.yaml from a copy") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise GenbenchError(f"config file '{path}' is not valid YAML{where}",
                            "fix the YAML syntax (restore a run's config.yaml from a copy)") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise GenbenchError(f"config file '{path}' must hold a mapping of keys", "see configs/ for examples")
    return tree


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    tree = read_yaml(path) if path is not None else {}
    for key, value in parse_overrides(list(overrides)):
        set_dotted(tree, key, value)
    return build_config(tree, source=str(path) if path else "config")


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
