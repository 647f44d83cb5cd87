"""Fashion-MNIST under one training budget: genbench's presets beside the peers' own recipes.

Every entry trains for the same wall-clock budget (``--minutes``, default 10) on the same real
Fashion-MNIST training images (genbench's loader, ``genbench.data.load_dataset``, scaled to
[-1, 1]; epoch permutations from genbench's ``BatchSampler``), then draws ``-n`` samples that are
scored with genbench's domain FID (and KID) against the same reference (10,000 training images,
genbench's Fashion-MNIST classifier features), exactly as ``genbench eval`` scores a run.

Entries (``--only`` picks some, e.g. ``--only ddpm`` or ``--only ddpm/diffusers,gan/genbench``):

| family | library | recipe |
|---|---|---|
| gan | genbench | ``genbench train fmnist/gan train.budget.minutes=M`` (DCGAN, Radford et al. lr/betas, EMA) |
| gan | seed-recipe | no packaged GAN peer exists among the peers; the seed study's GAN recipe in plain PyTorch (see below) |
| ddpm | genbench | ``genbench train fmnist/ddpm``, sampled with the preset's DDIM 50 |
| ddpm | diffusers | ``UNet2DModel`` + ``DDPMScheduler`` (linear betas, eps) + AdamW as diffusers' unconditional training example, sampled by ``DDIMPipeline`` 50 steps |
| ddpm | denoising-diffusion-pytorch | ``Unet`` in ``GaussianDiffusion`` with its defaults (pred_v, sigmoid schedule) and its Trainer's optimiser/EMA, sampled with its DDIM ``sampling_timesteps=50`` |
| flow | genbench | ``genbench train fmnist/flow``, sampled with the preset's Euler 50 |
| flow | torchcfm | ``ConditionalFlowMatcher(sigma=0)`` as torchcfm's MNIST example (Adam, lr 1e-3), sampled with torchdiffeq Euler 50 |

Recipe details (each peer keeps its own optimiser, schedule and EMA; what is matched is the
budget, the data, the batch size, the network size and the evaluation):

* Networks: the diffusers UNet is laid out as genbench's fmnist UNet (627,433 parameters, equal);
  lucidrains' Unet keeps its own blocks, width chosen to match (dim 20: 599,089, -4.5%); torchcfm
  uses the same diffusers UNet by default (``--cfm-net torchcfm`` uses torchcfm's own
  ``UNetModel`` from its MNIST example instead: 32 channels, the least its GroupNorm(32) allows,
  1,112,801 parameters, +77%).
* Batch size: genbench's preset batch (64) for every diffusion/flow entry (``--batch-size``); the
  peers' examples use 16 (diffusers, lucidrains) and 128 (torchcfm).
* diffusers (examples/unconditional_image_generation/train_unconditional.py defaults): AdamW lr
  1e-4, betas (0.95, 0.999), weight decay 1e-6, eps 1e-8, 500 warm-up steps then cosine decay
  (here over the time budget, since a time budget fixes no step count), grad clip 1.0, EMAModel
  with warm-up (inv_gamma 1, power 3/4, max decay 0.9999), MSE on eps, 1000 linear-beta steps.
* denoising-diffusion-pytorch (its ``Trainer`` defaults): Adam lr 1e-4, betas (0.9, 0.99), grad
  clip 1.0, ``ema_pytorch.EMA`` beta 0.995 every 10 steps; GaussianDiffusion(timesteps=1000,
  sampling_timesteps=50) with its default objective and schedule; ``auto_normalize=False``
  because the batches already are in [-1, 1] (the same as feeding [0, 1] with its default).
* torchcfm (examples/images/conditional_mnist): Adam with torch's defaults (lr 1e-3), no EMA,
  unconditional here; Euler with 50 steps of torchdiffeq's ``odeint`` from t=0 (noise) to 1.
* seed-recipe GAN (/work/shared/seeds: the study this project grows from): minimax BCE with the
  non-saturating G loss, Adam lr G 5e-5 / D 5e-6 with default betas, batch 200, no EMA; a DCGAN
  layout (the post's unnamed tutorial architecture) at genbench's fmnist widths (z 64, 32
  channels next to the image) so that the parameter counts match.
* genbench entries run ``genbench train`` in a subprocess with the preset unchanged except
  ``train.budget.minutes`` and no mid-run sample grids (``train.sample_every``), since the peers
  draw none either; they are scored by ``genbench.evaluate.evaluate_run`` with the preset's
  sampler and EMA weights.

Usage (runs go to --out, which must not exist yet):

    .venv/bin/python benchmarks/quality_budget.py --out runs/budget10            # 10 min each, n=5000
    .venv/bin/python benchmarks/quality_budget.py --out /tmp/qb --minutes 0.1 -n 200   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # lucidrains' sampler draws a progress bar per call

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from genbench.config import DataConfig, load_config  # noqa: E402
from genbench.data import load_dataset  # noqa: E402
from genbench.data.sampler import BatchSampler  # noqa: E402
from genbench.data.transforms import to_uint8  # noqa: E402
from genbench.metrics.protocol import FID_REFERENCE_N, image_scores  # noqa: E402
from genbench.nets import build_net, count_params  # noqa: E402
from genbench.presets import resolve_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import DiffusersVelocity, diffusers_unet, lucidrains_unet  # noqa: E402

ENTRIES = [("gan", "genbench"), ("gan", "seed-recipe"),
           ("ddpm", "genbench"), ("ddpm", "diffusers"), ("ddpm", "denoising-diffusion-pytorch"),
           ("flow", "genbench"), ("flow", "torchcfm")]
PEER_PACKAGES = {"diffusers": ["diffusers"], "denoising-diffusion-pytorch": ["denoising_diffusion_pytorch", "ema_pytorch"],
                 "torchcfm": ["torchcfm", "torchdiffeq", "diffusers"]}
SHAPE = (1, 28, 28)
METRICS = ["fid", "kid"]


class Skipped(Exception):
    pass


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def need(library: str, extra: list[str] | None = None) -> None:
    import importlib

    for mod in PEER_PACKAGES.get(library, []) + (extra or []):
        try:
            importlib.import_module(mod)
        except ImportError:
            raise Skipped(f"{mod} is not installed (make bench-deps)") from None


class Data:
    """Fashion-MNIST train images on the device, drawn in epoch permutations, in [-1, 1]."""

    def __init__(self, data_dir: str | None, device: torch.device, seed: int = 0):
        self.data = load_dataset(DataConfig(name="fashion_mnist", split="train", root=data_dir))
        self.data.x = self.data.x.to(device)
        self.seed = seed

    def sampler(self, batch: int) -> Callable[[], torch.Tensor]:
        s = BatchSampler(len(self.data), batch, seed=self.seed)
        return lambda: self.data.batch(s.next())[0]


def train_for(seconds: float, step: Callable[[], None], device: torch.device) -> tuple[int, float]:
    """Run ``step`` until ``seconds`` of training time have passed; (steps, seconds used)."""
    sync(device)
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        if device.type == "cuda" and steps % 10 == 0:
            sync(device)   # keep the clock honest: no more than 10 steps queued ahead
    sync(device)
    return steps, time.perf_counter() - t0


def seeded_batches(n: int, batch: int, device: torch.device, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """Samples in [-1, 1] (CPU float), batch b seeded with its first sample index."""
    out = []
    for start in range(0, n, batch):
        torch.manual_seed(start)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(start)
        out.append(draw(min(batch, n - start)).float().cpu())
    return torch.cat(out)


# ------------------------------------------------------------------------------ peers' recipes

def run_diffusers(args, data: Data, device, net_cfg) -> dict:
    need("diffusers")
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    unet = diffusers_unet(net_cfg, SHAPE).to(device)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    warmup, budget = 500, args.minutes * 60
    t_start = [0.0]

    def lr_lambda(step: int) -> float:   # the example's cosine-with-warm-up, over the time budget
        if step < warmup:
            return step / warmup
        frac = min(1.0, (time.perf_counter() - t_start[0]) / budget)
        return 0.5 * (1 + math.cos(math.pi * frac))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75,
                   model_cls=UNet2DModel, model_config=unet.config)
    ema.to(device)
    next_batch = data.sampler(args.batch_size)

    def step():
        x = next_batch()
        noise = torch.randn_like(x)
        t = torch.randint(0, sched.config.num_train_timesteps, (x.shape[0],), device=device).long()
        pred = unet(sched.add_noise(x, noise, t), t).sample
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        opt.zero_grad()
        ema.step(unet.parameters())

    t_start[0] = time.perf_counter()
    steps, secs = train_for(budget, step, device)
    ema_unet = copy.deepcopy(unet)
    ema.copy_to(ema_unet.parameters())
    ema_unet.eval()
    pipe = DDIMPipeline(unet=ema_unet, scheduler=DDIMScheduler.from_config(sched.config))
    pipe.set_progress_bar_config(disable=True)

    def draw(b: int) -> torch.Tensor:
        imgs = pipe(batch_size=b, num_inference_steps=args.nfe, output_type="np").images   # [0, 1], NHWC
        return torch.from_numpy(imgs).permute(0, 3, 1, 2) * 2 - 1

    x = seeded_batches(args.n, args.sample_batch, device, draw)
    return {"params": {"model": count_params(unet)}, "steps": steps, "images_seen": steps * args.batch_size,
            "train_seconds": secs, "sampler": "DDIMPipeline (eta 0), EMA", "nfe": args.nfe, "samples": x,
            "recipe": "UNet2DModel (genbench layout) + DDPMScheduler linear eps; AdamW 1e-4 (0.95, 0.999) wd 1e-6; "
                      "500 warm-up + cosine over the budget; clip 1; EMAModel warm-up 0.9999"}


def run_lucidrains(args, data: Data, device, net_cfg, target: int) -> dict:
    need("denoising-diffusion-pytorch")
    from denoising_diffusion_pytorch import GaussianDiffusion
    from ema_pytorch import EMA

    torch.manual_seed(0)
    unet, dim = lucidrains_unet(net_cfg, SHAPE, target)
    gd = GaussianDiffusion(unet, image_size=SHAPE[1], timesteps=1000, sampling_timesteps=args.nfe,
                           auto_normalize=False).to(device)
    opt = torch.optim.Adam(gd.parameters(), lr=1e-4, betas=(0.9, 0.99))
    ema = EMA(gd, beta=0.995, update_every=10).to(device)
    next_batch = data.sampler(args.batch_size)

    def step():
        loss = gd(next_batch())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gd.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        ema.update()

    steps, secs = train_for(args.minutes * 60, step, device)
    ema.ema_model.eval()
    with torch.inference_mode():
        x = seeded_batches(args.n, args.sample_batch, device, lambda b: ema.ema_model.sample(batch_size=b))
    return {"params": {"model": count_params(unet)}, "steps": steps, "images_seen": steps * args.batch_size,
            "train_seconds": secs, "sampler": f"its DDIM (sampling_timesteps={args.nfe}), EMA", "nfe": args.nfe,
            "samples": x,
            "recipe": f"Unet(dim={dim}, dim_mults={tuple(net_cfg.ch_mult)}) in GaussianDiffusion (objective "
                      f"{gd.objective}, sigmoid schedule); Adam 1e-4 (0.9, 0.99); clip 1; EMA 0.995 every 10"}


def run_torchcfm(args, data: Data, device, net_cfg) -> dict:
    need("torchcfm")
    import torchdiffeq
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    torch.manual_seed(0)
    if args.cfm_net == "torchcfm":
        from torchcfm.models.unet import UNetModel

        net = UNetModel(dim=SHAPE, num_channels=32, num_res_blocks=1).to(device)
        net_desc = "torchcfm UNetModel(num_channels=32, num_res_blocks=1) as its MNIST example"
    else:
        net = DiffusersVelocity(diffusers_unet(net_cfg, SHAPE)).to(device)
        net_desc = "diffusers UNet2DModel (genbench layout)"
    fm = ConditionalFlowMatcher(sigma=0.0)
    opt = torch.optim.Adam(net.parameters())
    next_batch = data.sampler(args.batch_size)

    def step():
        x1 = next_batch()
        t, xt, ut = fm.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
        loss = torch.mean((net(t, xt) - ut) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    steps, secs = train_for(args.minutes * 60, step, device)
    net.eval()
    t_span = torch.linspace(0, 1, args.nfe + 1, device=device)

    def draw(b: int) -> torch.Tensor:
        x0 = torch.randn(b, *SHAPE, device=device)
        return torchdiffeq.odeint(lambda t, x: net(t, x), x0, t_span, method="euler")[-1]

    with torch.inference_mode():
        x = seeded_batches(args.n, args.sample_batch, device, draw)
    return {"params": {"model": count_params(net)}, "steps": steps, "images_seen": steps * args.batch_size,
            "train_seconds": secs, "sampler": "torchdiffeq odeint euler, raw weights", "nfe": args.nfe,
            "samples": x, "recipe": f"ConditionalFlowMatcher(sigma=0) + {net_desc}; Adam 1e-3; no EMA"}


class SeedG(nn.Module):
    """DCGAN generator for 28x28: z -> 7x7x2ngf -> 14x14xngf -> 28x28 (ConvTranspose + BatchNorm + ReLU, Tanh)."""

    def __init__(self, nz: int, ngf: int, nc: int = 1):
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.main(z[:, :, None, None])


class SeedD(nn.Module):
    """DCGAN discriminator for 28x28: Conv(4, 2, 1) + LeakyReLU(0.2), BatchNorm after the first; logits."""

    def __init__(self, ndf: int, nc: int = 1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 7, 1, 0))

    def forward(self, x):
        return self.main(x).flatten()


def dcgan_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def run_seed_gan(args, data: Data, device, gan_cfg) -> dict:
    torch.manual_seed(0)
    nz, width = gan_cfg.nets["G"].z_dim, gan_cfg.nets["G"].ch
    G, D = SeedG(nz, width).to(device), SeedD(gan_cfg.nets["D"].ch).to(device)
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=5e-5), torch.optim.Adam(D.parameters(), lr=5e-6)
    bce = nn.BCEWithLogitsLoss()
    batch = 200
    next_batch = data.sampler(batch)

    def step():
        real = next_batch()
        b = real.shape[0]
        ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
        fake = G(torch.randn(b, nz, device=device))
        opt_d.zero_grad()
        loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = bce(D(fake), ones)   # non-saturating: G maximises log D(G(z))
        loss_g.backward()
        opt_g.step()

    steps, secs = train_for(args.minutes * 60, step, device)
    G.eval()
    with torch.inference_mode():
        x = seeded_batches(args.n, args.sample_batch, device, lambda b: G(torch.randn(b, nz, device=device)))
    return {"params": {"G": count_params(G), "D": count_params(D)}, "steps": steps, "images_seen": steps * batch,
            "train_seconds": secs, "sampler": "generator, raw weights", "nfe": 1, "samples": x,
            "recipe": f"seed study: BCE minimax (non-saturating G), Adam G 5e-5 / D 5e-6, batch 200, no EMA; "
                      f"DCGAN 28x28 z {nz}, width {width}"}


# ------------------------------------------------------------------------------ genbench's presets

def run_genbench(args, family: str, run_dir: Path, device: torch.device) -> dict:
    from genbench.evaluate import evaluate_run

    cmd = [sys.executable, "-m", "genbench", "train", f"fmnist/{family}", "--out", str(run_dir), "--no-progress"]
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    cmd += [f"train.budget={{minutes: {args.minutes}}}", "train.sample_every=1000000000", f"train.device={device.type}"]
    print("  $ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (run_dir.parent / f"{run_dir.name}.train.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"genbench train failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-400:]}")
    info = json.loads((run_dir / "run.json").read_text())
    _, record = evaluate_run(run_dir, metrics=",".join(METRICS), n=args.n, floor=False, device=device.type,
                             progress=False, batch_size=args.sample_batch)
    return {"params": info["params"], "steps": info["step"], "images_seen": info["images_seen"],
            "train_seconds": info["train_seconds"],
            "sampler": f"{record['sampling']['solver']}, {record['weights']}", "nfe": record["sampling"]["nfe"],
            "scores": {k: record["metrics"][k] for k in ("fid", "kid", "kid_std") if k in record["metrics"]},
            "recipe": f"genbench train fmnist/{family} (the preset; budget and no mid-run grids overridden)"}


# ------------------------------------------------------------------------------ main

def fmt_params(params: dict) -> str:
    return " + ".join(f"{k} {v / 1e6:.3f}M" if k != "model" else f"{v / 1e6:.3f}M" for k, v in params.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder for the runs and results (must not exist)")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per entry (default 10)")
    p.add_argument("-n", type=int, default=5000, help="samples for FID/KID per entry (default 5000)")
    p.add_argument("--only", default=None, help="comma list of families or family/library (default: all)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--batch-size", type=int, default=64, help="diffusion/flow peers' batch (default 64, the presets')")
    p.add_argument("--nfe", type=int, default=50, help="peers' sampling steps (default 50, as the presets)")
    p.add_argument("--sample-batch", type=int, default=500, help="sampling batch size")
    p.add_argument("--cfm-net", choices=["diffusers", "torchcfm"], default="diffusers",
                   help="torchcfm's network: the matched diffusers UNet or torchcfm's own UNetModel")
    p.add_argument("--data-dir", default=None, help="folder holding the Fashion-MNIST files (default: search)")
    args = p.parse_args(argv)
    if args.out.exists():
        p.error(f"{args.out} already exists; give a new --out folder (nothing is overwritten)")
    if args.n < 2 or args.minutes <= 0:
        p.error("-n must be >= 2 and --minutes > 0")
    chosen = ENTRIES
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        chosen = [e for e in ENTRIES if e[0] in wanted or "/".join(e) in wanted]
        if not chosen:
            p.error(f"--only {args.only!r} matches none of {', '.join('/'.join(e) for e in ENTRIES)}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    args.out.mkdir(parents=True)

    from genbench.metrics.extractors import build_extractor
    from genbench.metrics.reference import reference_features

    data_cfg = DataConfig(name="fashion_mnist", split="train", root=args.data_dir)
    extractor = build_extractor("domain", "fashion_mnist", device=str(device))
    ref = reference_features(extractor, data_cfg, "train", FID_REFERENCE_N)
    data = Data(args.data_dir, device)
    diff_cfg = load_config(resolve_config("fmnist/ddpm"), [])
    gan_cfg = load_config(resolve_config("fmnist/gan"), [])
    target = count_params(build_net(diff_cfg.nets["model"], SHAPE))

    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for pkg in ("genbench", "diffusers", "denoising-diffusion-pytorch", "torchcfm", "torchdiffeq"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    report = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": device_name,
              "versions": versions, "minutes": args.minutes, "n": args.n,
              "reference": ref.info, "args": {k: str(v) for k, v in vars(args).items()}, "entries": []}

    # the floor: held-out real images (test split) against the same reference, same n
    held = reference_features(extractor, data_cfg, "test", min(args.n, FID_REFERENCE_N))
    report["floor"] = {"split": "test", "n": held.info["n"], **image_scores(METRICS, ref.features, held.features, None)}

    print(f"# quality budget: {args.minutes:g} min of training each on {device_name}; n={args.n}; out {args.out}",
          flush=True)
    for family, library in chosen:
        name = f"{family}-{library}"
        print(f"== {family} / {library}", flush=True)
        entry = {"family": family, "library": library}
        t0 = time.perf_counter()
        try:
            if library == "genbench":
                res = run_genbench(args, family, args.out / name, device)
            elif library == "seed-recipe":
                res = run_seed_gan(args, data, device, gan_cfg)
            elif library == "diffusers":
                res = run_diffusers(args, data, device, diff_cfg.nets["model"])
            elif library == "denoising-diffusion-pytorch":
                res = run_lucidrains(args, data, device, diff_cfg.nets["model"], target)
            else:
                res = run_torchcfm(args, data, device, diff_cfg.nets["model"])
            samples = res.pop("samples", None)
            if samples is not None:
                from genbench.viz import save_image_grid

                folder = args.out / name
                folder.mkdir(exist_ok=True)
                images = to_uint8(samples)
                np.savez_compressed(folder / "samples.npz", images=images.numpy())
                save_image_grid(samples[:64], folder / "grid.png")
                feats = extractor.extract(images, batch_size=500)
                res["scores"] = image_scores(METRICS, ref.features, feats.features, feats.logits)
            entry.update(res, status="done")
        except Skipped as why:
            entry.update(status=f"skipped: {why}")
        except Exception as err:   # one entry failing must not lose the others
            entry.update(status=f"failed: {type(err).__name__}: {err}")
            (args.out / f"{name}.error.txt").write_text(traceback.format_exc())
        entry["wall_seconds"] = time.perf_counter() - t0
        report["entries"].append(entry)
        print(f"   {entry['status']}" + (f": FID {entry['scores']['fid']:.2f}" if "scores" in entry else ""),
              flush=True)
        (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")

    lines = [f"Fashion-MNIST, {args.minutes:g} min of training per entry on {device_name}; FID/KID with genbench's "
             f"domain features ({extractor.name}), n={args.n}, reference: {ref.info['n']} training images.",
             "", "| family | library | params | steps | images seen | train s | sampler | NFE | FID | KID |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["entries"]:
        if e["status"] != "done":
            lines.append(f"| {e['family']} | {e['library']} | {e['status']} | | | | | | | |")
            continue
        s = e["scores"]
        lines.append(f"| {e['family']} | {e['library']} | {fmt_params(e['params'])} | {e['steps']:,} | "
                     f"{e['images_seen']:,} | {e['train_seconds']:.0f} | {e['sampler']} | {e['nfe']} | "
                     f"{s['fid']:.2f} | {s['kid']:.3f} |")
    fl = report["floor"]
    lines.append(f"| floor | test split vs reference | | | | | | | {fl['fid']:.2f} | {fl['kid']:.3f} |")
    lines += ["", "Recipes:"] + [f"- {e['family']}/{e['library']}: {e.get('recipe', e['status'])}"
                                 for e in report["entries"]]
    if args.n < 10_000:
        lines += ["", f"FID from n={args.n} < 10k samples is biased upwards; compare rows only with each other."]
    md = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(md)
    print("\n" + md + f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
