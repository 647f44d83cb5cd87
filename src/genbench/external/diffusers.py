"""A local diffusers pipeline folder as a genbench diffusion model, sampled by genbench's own solvers.

The folder is what ``pipeline.save_pretrained(dir)`` writes for an unconditional image pipeline
(``DDPMPipeline``, ``DDIMPipeline``, ...): ``unet/`` (a ``UNet2DModel``: ``config.json`` +
safetensors weights) and ``scheduler/scheduler_config.json``. Only the scheduler's *configuration*
is read — the betas and the prediction type; sampling is genbench's: every solver of
:mod:`genbench.solvers` and the NFE sweep run on it as on a genbench DDPM run.

Conventions (as in ``tests/test_diffusers_agreement.py``): diffusers' timestep k in {0..T-1} indexes
``alphas_cumprod`` as genbench's DDPM step i, which sits at continuous time t = (k + 1) / T; the
wrapper hands the UNet k = t T - 1 (fractional between the steps, as the Karras grid asks; the
UNet's sinusoidal embedding is defined there). The scheduler config maps to genbench's
:class:`~genbench.paths.DiscreteVP`:

- ``beta_schedule``: ``linear`` (linspace of betas), ``scaled_linear`` (linspace of sqrt(beta),
  squared), ``squaredcos_cap_v2`` (Nichol & Dhariwal 2021, Eq. 17, betas capped at 0.999 — genbench's
  ``cosine_betas``), or ``trained_betas``; others are refused, as is ``rescale_betas_zero_snr``
  (alpha_bar_T = 0 has no finite log-SNR on genbench's path);
- ``prediction_type``: ``epsilon`` -> eps, ``sample`` -> x0, ``v_prediction`` -> v (both libraries
  use v = alpha eps - sigma x0, Salimans & Ho 2022);
- ``clip_sample`` (True by default in DDPM/DDIM) -> the model's default ``--clip static``. genbench
  then recomputes eps from the clipped x0; diffusers' DDIM keeps the network's eps, so with
  clipping active the two differ (``--clip none`` removes the difference);
- ``variance_type`` ``learned``/``learned_range`` (a 2C-channel UNet): the first C channels are the
  prediction, the learned variance is not used (genbench's samplers use their own).

diffusers is imported only here, and only when such a folder is given: it stays an optional
dependency (``pip install diffusers``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from genbench.errors import GenbenchError
from genbench.files import read_json
from genbench.limits import CHECKPOINT_BYTES, check_file

PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
NOT_VP = ("FlowMatch", "ScoreSdeVe", "KarrasVe", "ScoreSdeVp", "CMStochastic", "EDM")
INSTALL_FIX = "pip install diffusers (genbench reads diffusers folders only through it)"


def import_diffusers():
    """The diffusers module, or one line saying how to get it."""
    try:
        import diffusers
    except ImportError:
        raise GenbenchError("reading a diffusers folder needs the diffusers package, which is not installed",
                            INSTALL_FIX) from None
    return diffusers


class DiffusersUNet(nn.Module):
    """genbench's ``net(x, t, y=None)`` around a diffusers ``UNet2DModel``: t = (k + 1) / T -> timestep k."""

    def __init__(self, unet: nn.Module, T: int, out_channels: int):
        super().__init__()
        self.unet, self.T, self.out_channels = unet, T, out_channels

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        k = t.double() * self.T - 1
        k = torch.where((k - k.round()).abs() < 1e-6, k.round(), k)   # on a step: the integer diffusers uses
        out = self.unet(x, k.float(), return_dict=False)[0]
        return out[:, :self.out_channels]


def betas_of(config: dict, where: str) -> Tensor:
    """The betas a diffusers scheduler config defines (float64), or a refusal naming the key."""
    from genbench.paths import cosine_betas

    T = int(config.get("num_train_timesteps", 1000))
    if T < 2:
        raise GenbenchError(f"{where}: num_train_timesteps {T} is not a schedule", "give a DDPM-type scheduler config")
    if config.get("rescale_betas_zero_snr"):
        raise GenbenchError(f"{where}: rescale_betas_zero_snr makes alpha_bar_T = 0, which genbench's discrete "
                            "VP path (finite log-SNR at every step) cannot represent",
                            "save the pipeline with rescale_betas_zero_snr=false to score it with genbench")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
        if betas.ndim != 1 or len(betas) != T:
            raise GenbenchError(f"{where}: trained_betas has {betas.numel()} values for {T} steps",
                                "give one beta per training step")
    else:
        kind = config.get("beta_schedule", "linear")
        start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
        if kind == "linear":
            betas = torch.linspace(start, end, T, dtype=torch.float64)
        elif kind == "scaled_linear":
            betas = torch.linspace(start**0.5, end**0.5, T, dtype=torch.float64) ** 2
        elif kind == "squaredcos_cap_v2":
            betas = cosine_betas(T, 0.008, 0.999)
        else:
            raise GenbenchError(f"{where}: beta_schedule {kind!r} is not one genbench maps",
                                f"use one of {', '.join(SCHEDULES)} or trained_betas")
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise GenbenchError(f"{where}: betas must lie in (0, 1)", "fix the scheduler config")
    return betas


def read_scheduler(folder: Path) -> tuple[dict, Tensor, str, str]:
    """(config, betas, genbench prediction, default clip) of ``folder/scheduler``."""
    path = folder / "scheduler" / "scheduler_config.json"
    fix = "give a folder written by a diffusers pipeline's save_pretrained (unet/ and scheduler/)"
    config = read_json(path, fix, "diffusers scheduler config")
    name = str(config.get("_class_name", ""))
    if any(name.startswith(p) for p in NOT_VP):
        raise GenbenchError(f"{path}: {name} is not a discrete variance-preserving (DDPM-type) schedule",
                            "genbench reads DDPM/DDIM/PNDM/DPM-Solver/Euler-type scheduler configs")
    pred = config.get("prediction_type", "epsilon")
    if pred not in PREDICTIONS:
        raise GenbenchError(f"{path}: prediction_type {pred!r} is not one genbench maps",
                            f"use one of {', '.join(PREDICTIONS)}")
    clip = "none"
    if config.get("thresholding"):
        clip = "dynamic"
    elif config.get("clip_sample", name in ("DDPMScheduler", "DDIMScheduler")):
        if float(config.get("clip_sample_range", 1.0)) != 1.0:
            raise GenbenchError(f"{path}: clip_sample_range {config['clip_sample_range']} is not genbench's [-1, 1]",
                                "save the scheduler with clip_sample_range=1 or clip_sample=false")
        clip = "static"
    return config, betas_of(config, str(path)), PREDICTIONS[pred], clip


def load_unet(folder: Path, shape: tuple[int, int, int] | None, device: torch.device) -> tuple[nn.Module, dict]:
    """The ``UNet2DModel`` of ``folder/unet`` (safetensors weights only), checked against the dataset's
    shape (None: the UNet's own)."""
    fix = "give a folder written by a diffusers pipeline's save_pretrained (unet/ and scheduler/)"
    cfg_path = folder / "unet" / "config.json"
    config = read_json(cfg_path, fix, "diffusers UNet config")
    if config.get("_class_name") != "UNet2DModel":
        raise GenbenchError(f"{cfg_path}: {config.get('_class_name')} is not a UNet2DModel",
                            "genbench reads unconditional image pipelines (UNet2DModel)")
    if config.get("num_class_embeds") is not None or config.get("class_embed_type") is not None:
        raise GenbenchError(f"{cfg_path}: a class-conditional UNet needs class labels on every call",
                            "score an unconditional pipeline")
    if config.get("time_embedding_type", "positional") != "positional":
        raise GenbenchError(f"{cfg_path}: time_embedding_type {config.get('time_embedding_type')!r} belongs to "
                            "score-SDE models, not a discrete DDPM schedule", "score a DDPM-type pipeline")
    weights = sorted((folder / "unet").glob("*.safetensors"))
    if not weights:
        raise GenbenchError(f"{folder / 'unet'} has no .safetensors weights; genbench does not unpickle .bin files",
                            "save the pipeline with safe_serialization=True (diffusers' default)")
    for w in weights:
        check_file(w, CHECKPOINT_BYTES, "diffusers weights", "give a smaller model")
    size = config.get("sample_size")
    size = tuple(size) if isinstance(size, list) else (size, size)
    c_in, c_out = int(config.get("in_channels", 3)), int(config.get("out_channels", 3))
    if not all(isinstance(v, int) and v > 0 for v in size):
        raise GenbenchError(f"{cfg_path}: sample_size {config.get('sample_size')!r} is not an image size",
                            "give a UNet2DModel config with its sample_size")
    c, h, w = shape if shape is not None else (c_in, *size)
    if c_in != c:
        raise GenbenchError(f"{cfg_path}: the UNet takes {c_in}-channel images, the dataset's have {c} "
                            "(wrong channel count)", "compare it with a dataset of its own channel count")
    if size != (h, w):
        raise GenbenchError(f"{cfg_path}: the UNet makes {size[0]}x{size[1]} images, the dataset's are {h}x{w}",
                            "compare it with a dataset of its own image size")
    if c_out not in (c, 2 * c):
        raise GenbenchError(f"{cfg_path}: out_channels {c_out} is neither {c} nor {2 * c} (a learned variance)",
                            "score a UNet that predicts one image-shaped output")
    unet = import_diffusers().UNet2DModel.from_pretrained(str(folder / "unet"), use_safetensors=True,
                                                          local_files_only=True, low_cpu_mem_usage=False)
    return unet.to(device).eval(), config


def load_diffusers(folder: Path, dataset: str | None, device: str = "auto", data_dir: str | None = None,
                   need_dataset: bool = True):
    """A :class:`~genbench.run.LoadedRun` whose model is the pipeline's UNet on its schedule's DiscreteVP path.
    ``dataset`` is what it will be compared with (its shape must be the UNet's); sampling alone
    (``need_dataset=False``) takes the UNet's own shape."""
    from genbench.config import DataConfig, DiffusionConfig, OptimConfig, RunConfig, SampleConfig, UNetConfig
    from genbench.dist import pick_device
    from genbench.external import dataset_shape
    from genbench.methods.diffusion import Diffusion
    from genbench.paths import DiscreteVP
    from genbench.run import LoadedRun

    folder = Path(folder)
    shape = dataset_shape(dataset, str(folder)) if need_dataset or dataset is not None else None
    sched, betas, prediction, clip = read_scheduler(folder)
    dev = pick_device(device, knob="--device")
    unet, config = load_unet(folder, shape, dev)
    size = config["sample_size"]
    shape = shape or (int(config.get("in_channels", 3)), *(size if isinstance(size, list) else (size, size)))
    T = len(betas)
    method_cfg = DiffusionConfig(T=T, prediction=prediction, solver="ddim", nfe=min(50, T),
                                 schedule="cosine" if sched.get("beta_schedule") == "squaredcos_cap_v2" else "linear")
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in folder.resolve().name) or "diffusers"
    # the nets entry is a placeholder the config's validation asks for: sampling uses the UNet below
    cfg = RunConfig(name=name, data=DataConfig(name=dataset or "folder", root=data_dir), method=method_cfg,
                    nets={"model": UNetConfig()}, optim={"model": OptimConfig()}, sample=SampleConfig(clip=clip))
    method = Diffusion(method_cfg)
    method.path = DiscreteVP(betas)      # the scheduler's own betas (also the ones DiffusionConfig cannot name)
    net = DiffusersUNet(unet, T, shape[0])
    loaded = LoadedRun(cfg, method, {"model": net}, None, 0, 0, shape, shape, "image", dev)
    loaded.source = {
        "kind": "diffusers", "unet": {k: config.get(k) for k in ("sample_size", "in_channels", "out_channels",
                                                                 "block_out_channels", "layers_per_block")},
        "scheduler": sched.get("_class_name"), "T": T,
        "beta_schedule": "trained_betas" if sched.get("trained_betas") is not None else sched.get("beta_schedule",
                                                                                                     "linear"),
        "prediction": prediction, "default_clip": clip,
        "params": sum(p.numel() for p in unet.parameters()),
    }
    return loaded
