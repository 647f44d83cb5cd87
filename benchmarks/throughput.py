"""Training and sampling throughput, FLOPs and MFU of genbench beside peers of matched size.

For each preset (a diffusion or flow UNet preset, e.g. ``fmnist/ddpm``, ``cifar10/ddpm``) it
measures, in one process and on one device:

* genbench's real training step: ``genbench.train.loop.train`` itself (the preset's loop
  settings: fused Adam, channels-last, TF32, the sync-free non-finite checks, lr schedule, EMA)
  run for ``--warmup`` + ``--steps`` steps in a temporary run directory, with the preset's data
  replaced by the same synthetic batches the peers get; images/s over the logging intervals after
  the first (each interval ends on a device read, so CUDA time is synchronised); and the same
  network in a bare step (``method.loss``, backward, clip, Adam) like the peers';
* peers doing the same step at a matched parameter count (within ~10%): for diffusion,
  eps-prediction MSE on a noised batch with diffusers' ``UNet2DModel`` + ``DDPMScheduler.add_noise``
  and lucidrains' ``Unet`` inside ``GaussianDiffusion`` (``objective='pred_noise'``, linear
  betas; its forward returns the loss); for flow, torchcfm's ``ConditionalFlowMatcher`` with the
  diffusers UNet. Same batch size, image shape, batches, precision, Adam and grad clip 1.0;
* FLOPs per image of one forward+backward of the training loss
  (``torch.utils.flop_counter.FlopCounterMode``: matmuls, convolutions, attention; elementwise
  work is not counted), and MFU = FLOPs/image x images/s / the device's bf16 dense peak;
* sampling images/s with the preset's sampler (solver and NFE); peers with their own DDIM
  (diffusers ``DDIMScheduler``, lucidrains ``sampling_timesteps``) or Euler at the same NFE.

``--compile`` runs every row's network through ``torch.compile`` (genbench's loop through its
``train.compile`` setting), after the FLOPs are counted in eager mode; compilation falls in the
warm-up steps. Timings exclude ``--warmup`` steps and synchronise CUDA before reading the clock. Data are
image-shaped synthetic uint8 images in the preset's shape (throughput does not depend on the
pixels; ``--real-data`` loads the preset's dataset instead). Peers that are not installed are
skipped with a line saying so (``make bench-deps`` installs them).

    .venv/bin/python benchmarks/throughput.py fmnist/ddpm --steps 50
    .venv/bin/python benchmarks/throughput.py fmnist/ddpm cifar10/ddpm --device cuda --bf16 --json out.json
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
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # lucidrains' sampler draws a progress bar per call

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from genbench.config import load_config  # noqa: E402
from genbench.data.base import InMemoryData  # noqa: E402
from genbench.data.sampler import BatchSampler  # noqa: E402
from genbench.methods import build_method  # noqa: E402
from genbench.nets import build_net, count_params  # noqa: E402
from genbench.presets import resolve_config  # noqa: E402
from genbench.rundir import prepare_run_dir  # noqa: E402
from genbench.sampling import generate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import DiffusersVelocity, diffusers_unet, lucidrains_unet  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; the first
# entry whose key is in torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0), ("H100", 989.0),
    ("H800", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L4", 121.0),
]
IMAGE_SHAPES = {"fashion_mnist": (1, 28, 28), "mnist": (1, 28, 28), "stacked_fashion_mnist": (3, 28, 28),
                "cifar10": (3, 32, 32)}
GRAD_CLIP = 1.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak known for a CPU (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS:
        if key in name:
            return peak, f"{key} bf16 dense"
    return None, f"no peak known for {name!r} (pass --peak-tflops)"


def synthetic_data(shape: tuple[int, ...], n: int, device: torch.device) -> InMemoryData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    data = InMemoryData(x=x, y=None, kind="image", name="synthetic", class_names=None,
                        source="synthetic uint8 images", fingerprint="synthetic")
    data.x = data.x.to(device)
    return data


def data_for(cfg, device: torch.device, real: bool, batch_size: int) -> InMemoryData:
    if real:
        from genbench.data import load_dataset

        data = load_dataset(cfg.data)
        data.x = data.x.to(device)
        data.y = data.y.to(device) if data.y is not None else None
        return data
    if cfg.data.name not in IMAGE_SHAPES:
        raise SystemExit(f"throughput: no image shape known for dataset {cfg.data.name!r}; use --real-data")
    return synthetic_data(IMAGE_SHAPES[cfg.data.name], max(4 * batch_size, 256), device)


# ---------------------------------------------------------------------------------------------
# one row of the table

class Row:
    def __init__(self, library: str, model: str, params: int, loss_fn: Callable, opt_step: Callable | None,
                 sample_fn: Callable | None, sampler: str, nfe: int | None, note: str = "",
                 images_per_s: float | None = None, module: torch.nn.Module | None = None):
        self.module = module   # what --compile compiles (after the FLOPs are counted, in eager mode)
        self.library, self.model, self.params = library, model, params
        self.loss_fn, self.opt_step, self.sample_fn = loss_fn, opt_step, sample_fn
        self.sampler, self.nfe, self.note = sampler, nfe, note
        self.images_per_s = images_per_s   # measured elsewhere (the real training loop)


def flops_per_image(loss_fn: Callable, batch: int, autocast) -> float:
    """FLOPs of one forward + backward of the training loss, per image."""
    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss = loss_fn()
        loss.backward()
    return counter.get_total_flops() / batch


def timed(fn: Callable, n: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return time.perf_counter() - t0


def bare_step(net: torch.nn.Module, loss_fn: Callable, autocast, device: torch.device) -> Callable:
    """loss -> backward -> clip -> Adam, the step every peer runs."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True if device.type == "cuda" else None)

    def step():
        with autocast:
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
        opt.step()
    return step


def loop_images_per_s(preset: str, overrides: list[str], data: InMemoryData, args,
                      device: torch.device) -> tuple[float, str]:
    """images/s of ``genbench.train.loop.train`` on ``data`` (synthetic unless --real-data): the
    real loop for warmup + steps steps, logging every ``warmup`` steps; the first interval is the
    warm-up, the rate is images over time of the others (harmonic mean of their images/s)."""
    import genbench.train.loop as loop

    every = max(1, args.warmup)
    intervals = max(1, math.ceil(args.steps / every))
    cfg = load_config(resolve_config(preset), [
        *overrides, f"train.budget={{steps: {every * (intervals + 1)}}}", f"train.log_every={every}",
        "train.sample_every=1000000000", "train.ckpt_every=1000000000", "train.tensorboard=false",
        "train.grid_n=1", "sample.solver=euler", "sample.nfe=1",   # the grid drawn after the last step
        f"train.precision={'bf16' if args.bf16 else 'fp32'}", f"train.device={device.type}",
        f"train.compile={'true' if args.compile else 'false'}"])
    flags = ", ".join(f"{k} {getattr(cfg.train, k)}" for k in ("channels_last", "tf32", "cudnn_benchmark", "compile")
                      if hasattr(cfg.train, k))
    patched = not args.real_data
    original = loop.load_dataset
    if patched:   # the loop moves the data to the device itself
        loop.load_dataset = lambda _cfg: InMemoryData(x=data.x.cpu().clone(), y=None, kind="image", name=data.name,
                                                      class_names=None, source=data.source,
                                                      fingerprint=data.fingerprint)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            cfg = prepare_run_dir(run, cfg)
            loop.train(cfg, run, progress=False)
            rates = [json.loads(ln)["images_per_s"] for ln in (run / "metrics.jsonl").read_text().splitlines()
                     if "images_per_s" in ln][1:]
    finally:
        loop.load_dataset = original
    return len(rates) / sum(1 / r for r in rates), flags


def measure_preset(preset: str, args, device: torch.device) -> dict:
    overrides = ([f"train.batch_size={args.batch_size}"] if args.batch_size else []) + list(args.set)
    cfg = load_config(resolve_config(preset), overrides)
    if cfg.method.kind not in ("diffusion", "flow") or cfg.nets["model"].kind != "unet":
        raise SystemExit(f"throughput: {preset} is not a UNet diffusion or flow preset")
    batch = cfg.train.batch_size
    precision = "bf16" if args.bf16 else "fp32"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    torch.manual_seed(cfg.seed)
    data = data_for(cfg, device, args.real_data, batch)
    shape = tuple(data.shape)
    method = build_method(cfg.method)
    net_cfg = cfg.nets["model"]
    sampler_name = cfg.sample.solver or cfg.method.solver
    nfe = cfg.sample.nfe or cfg.method.nfe
    T = getattr(cfg.method, "T", 1000)
    sample_n = args.sample_n or batch
    feed = BatchSampler(len(data), batch, seed=cfg.seed)

    def next_batch():
        x, _ = data.batch(feed.next(), cfg.data.hflip, feed.generator)
        return x

    fixed_x = next_batch()
    rows: list[Row] = []

    # --- genbench, the real training loop
    loop_ips, loop_flags = loop_images_per_s(preset, overrides, data, args, device)
    net = build_net(net_cfg, shape, None).to(device)
    nets = {"model": net}
    n_params = count_params(net)

    def genbench_sample(n: int):
        net.eval()
        try:
            with autocast:
                generate(method, nets, shape, list(range(n)), device, batch_size=n, solver=sampler_name,
                         nfe=nfe, bitwise=False)
        finally:
            net.train()

    genbench_loss = lambda: method.loss(nets, "model", fixed_x, None)["loss"]  # noqa: E731
    rows.append(Row("genbench", f"UNet ch={net_cfg.ch} mult={net_cfg.ch_mult}", n_params, genbench_loss,
                    None, genbench_sample, sampler_name, nfe,
                    f"genbench.train.loop.train ({loop_flags}; + EMA, lr schedule, non-finite checks)",
                    images_per_s=loop_ips))
    bare_net = copy.deepcopy(net)
    bare_nets = {"model": bare_net}
    bare_loss = lambda: method.loss(bare_nets, "model", next_batch(), None)["loss"]  # noqa: E731
    rows.append(Row("genbench (bare)", "same UNet", n_params,
                    lambda: method.loss(bare_nets, "model", fixed_x, None)["loss"],
                    bare_step(bare_net, bare_loss, autocast, device), None, "", None,
                    "loss, backward, clip, Adam (the peers' step)", module=bare_net))

    skipped: list[str] = ["peers: not run (--no-peers)"] if args.no_peers else []
    # --- diffusers
    diffusers_ok = not args.no_peers
    try:
        import diffusers  # noqa: F401
    except ImportError:
        if diffusers_ok:
            skipped.append("diffusers: not installed (make bench-deps) -- skipped")
        diffusers_ok = False
    if diffusers_ok and cfg.method.kind == "diffusion":
        from diffusers import DDIMScheduler, DDPMScheduler

        sched_kw = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=cfg.method.beta_start,
                        beta_end=cfg.method.beta_end)
        if cfg.method.schedule != "linear":
            sched_kw["beta_schedule"] = "squaredcos_cap_v2"
        unet = diffusers_unet(net_cfg, shape).to(device)
        ddpm = DDPMScheduler(**sched_kw)
        ddpm.alphas_cumprod = ddpm.alphas_cumprod.to(device)

        def dif_loss(x=None):
            x = next_batch() if x is None else x
            noise = torch.randn_like(x)
            t = torch.randint(0, T, (x.shape[0],), device=device)
            return F.mse_loss(unet(ddpm.add_noise(x, noise, t), t).sample.float(), noise)

        ddim = DDIMScheduler(**sched_kw)

        @torch.inference_mode()
        def dif_sample(n: int):
            unet.eval()
            ddim.set_timesteps(nfe or 50)
            x = torch.randn(n, *shape, device=device)
            with autocast:
                for t in ddim.timesteps:
                    x = ddim.step(unet(x, t.to(device)).sample, t, x).prev_sample
            unet.train()

        rows.append(Row("diffusers", "UNet2DModel (genbench's layout) + DDPMScheduler", count_params(unet),
                        lambda: dif_loss(fixed_x), bare_step(unet, dif_loss, autocast, device), dif_sample,
                        "DDIMScheduler", nfe or 50, module=unet))
    if diffusers_ok and cfg.method.kind == "flow":
        try:
            from torchcfm import ConditionalFlowMatcher
        except ImportError:
            skipped.append("torchcfm: not installed (make bench-deps) -- skipped")
        else:
            unet = diffusers_unet(net_cfg, shape).to(device)
            vel = DiffusersVelocity(unet)
            fm = ConditionalFlowMatcher(sigma=getattr(cfg.method, "sigma_min", 0.0))

            def cfm_loss(x=None):
                x = next_batch() if x is None else x
                t, xt, ut = fm.sample_location_and_conditional_flow(torch.randn_like(x), x)
                return F.mse_loss(vel(t, xt).float(), ut)

            @torch.inference_mode()
            def cfm_sample(n: int):
                unet.eval()
                steps = nfe or 50
                x = torch.randn(n, *shape, device=device)
                with autocast:
                    for k in range(steps):
                        t = torch.full((n,), k / steps, device=device)
                        x = x + vel(t, x).float() / steps
                unet.train()

            rows.append(Row("torchcfm", "ConditionalFlowMatcher + diffusers UNet2DModel", count_params(unet),
                            lambda: cfm_loss(fixed_x), bare_step(unet, cfm_loss, autocast, device), cfm_sample,
                            "Euler", nfe or 50, module=unet))
    elif cfg.method.kind == "flow" and not args.no_peers:
        skipped.append("torchcfm: needs diffusers for its UNet (make bench-deps) -- skipped")

    # --- lucidrains
    if args.no_peers:
        pass
    elif cfg.method.kind == "diffusion":
        try:
            from denoising_diffusion_pytorch import GaussianDiffusion
        except ImportError:
            skipped.append("denoising-diffusion-pytorch: not installed (make bench-deps) -- skipped")
        else:
            luc_net, dim = lucidrains_unet(net_cfg, shape, n_params)
            if cfg.method.schedule != "linear":
                schedule = "cosine"
            else:
                schedule = "linear"
            gd = GaussianDiffusion(luc_net, image_size=tuple(shape[1:]), timesteps=T, objective="pred_noise",
                                   beta_schedule=schedule, auto_normalize=False,
                                   sampling_timesteps=min(nfe or 50, T)).to(device)

            @torch.inference_mode()
            def luc_sample(n: int):
                gd.eval()
                with autocast:
                    gd.sample(batch_size=n)
                gd.train()

            rows.append(Row("denoising-diffusion-pytorch", f"Unet dim={dim} mults={tuple(net_cfg.ch_mult)} "
                            "in GaussianDiffusion(pred_noise)", count_params(luc_net),
                            lambda: gd(fixed_x), bare_step(gd, lambda: gd(next_batch()), autocast, device),
                            luc_sample, "DDIM (sampling_timesteps)", min(nfe or 50, T),
                            "linear betas scaled to T=1000 by its own formula", module=luc_net))
    else:
        skipped.append("denoising-diffusion-pytorch: diffusion only -- skipped for a flow preset")

    peak, peak_src = peak_tflops(device, args.peak_tflops)
    results = []
    for row in rows:
        fpi = flops_per_image(row.loss_fn, fixed_x.shape[0], autocast)
        if args.compile and row.module is not None:   # compiled during the warm-up steps
            row.module.compile()
        if row.images_per_s is not None:
            ips = row.images_per_s
            secs = args.steps * batch / ips
        else:
            secs = timed(row.opt_step, args.steps, args.warmup, device)
            ips = args.steps * batch / secs
        achieved = fpi * ips / 1e12
        samp = None
        if row.sample_fn is not None and not args.no_sample:
            row.sample_fn(min(sample_n, 8))  # warm-up (kernels, allocator)
            sync(device)
            t0 = time.perf_counter()
            row.sample_fn(sample_n)
            sync(device)
            samp = sample_n / (time.perf_counter() - t0)
        results.append({
            "preset": preset, "library": row.library, "model": row.model, "params": row.params,
            "params_vs_genbench": row.params / n_params - 1, "batch_size": batch, "precision": precision,
            "compiled": bool(args.compile and (row.module is not None or row.images_per_s is not None)),
            "train_images_per_s": ips, "train_seconds": secs, "steps": args.steps, "warmup": args.warmup,
            "gflop_per_image": fpi / 1e9, "achieved_tflops": achieved,
            "mfu": achieved / peak if peak else None, "sampler": row.sampler, "nfe": row.nfe,
            "sample_n": sample_n if samp else None, "sample_images_per_s": samp, "note": row.note})
        print(f"  {preset} {row.library}: {ips:.1f} img/s", file=sys.stderr, flush=True)
    tf32 = (f"matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn {torch.backends.cudnn.allow_tf32}"
            if device.type == "cuda" else None)
    return {"preset": preset, "rows": results, "skipped": skipped, "peak_tflops": peak, "peak_source": peak_src,
            "tf32": tf32,
            "data": data.source, "image_shape": list(shape)}


def versions() -> dict:
    out = {"torch": torch.__version__, "python": platform.python_version()}
    for pkg in ("genbench", "diffusers", "denoising-diffusion-pytorch", "torchcfm"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def fmt(v, spec: str, none: str = "n/a") -> str:
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("presets", nargs="*", default=["fmnist/ddpm"], help="UNet presets (default fmnist/ddpm)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per row")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's train.batch_size")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for every row (default fp32)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for the preset (its net, so the peers' too, and genbench's loop), "
                        "e.g. --set train.channels_last=false; repeatable")
    p.add_argument("--no-peers", action="store_true", help="genbench's rows only")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every row's network (genbench's loop through train.compile); "
                        "compilation happens in the warm-up steps")
    p.add_argument("--sample-n", type=int, default=None, help="images per sampling measurement (default: batch)")
    p.add_argument("--no-sample", action="store_true", help="skip the sampling measurement")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: table, GPU only)")
    p.add_argument("--real-data", action="store_true", help="load the preset's dataset instead of synthetic images")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is available")
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    ver = versions()
    print(f"# throughput {dt.date.today()} on {dev_name}; torch {ver['torch']}, diffusers {ver['diffusers']}, "
          f"denoising-diffusion-pytorch {ver['denoising-diffusion-pytorch']}, torchcfm {ver['torchcfm']}")
    report = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": dev_name,
              "versions": ver, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "presets": []}
    for preset in args.presets:
        res = measure_preset(preset, args, device)
        report["presets"].append(res)
        compiled = ", torch.compile" if args.compile else ""
        print(f"\n## {preset} ({'x'.join(map(str, res['image_shape']))}, {res['data']}, batch "
              f"{res['rows'][0]['batch_size']}, {res['rows'][0]['precision']}{compiled}, {args.steps} timed steps after "
              f"{args.warmup} warm-up; MFU against {fmt(res['peak_tflops'], '.0f')} TFLOP/s: {res['peak_source']})")
        if args.set:
            print(f"overrides: {' '.join(args.set)}")
        for row in res["rows"]:
            print(f"params: {row['library']}: {row['model']}: {row['params']:,} "
                  f"({row['params_vs_genbench']:+.1%} vs genbench)")
        for row in res["rows"]:
            if row["note"]:
                print(f"note: {row['library']}: {row['note']}")
        if res["tf32"] is not None:
            print(f"CUDA TF32 for every row (as the loop's train.tf32 left it): {res['tf32']}")
        for line in res["skipped"]:
            print(line)
        print("\n| library | params | train img/s | GFLOP/img (fwd+bwd) | TFLOP/s | MFU | sampler | NFE | sample img/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in res["rows"]:
            print(f"| {r['library']} | {r['params'] / 1e6:.3f}M | {r['train_images_per_s']:,.1f} | "
                  f"{r['gflop_per_image']:.3f} | {r['achieved_tflops']:.3f} | {fmt(r['mfu'], '.1%')} | "
                  f"{r['sampler'] or '-'} | {r['nfe'] or '-'} | {fmt(r['sample_images_per_s'], ',.1f', '-')} |")
        sys.stdout.flush()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
