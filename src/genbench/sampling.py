"""Generate samples from any method with per-sample seeds, in batches (sharded over the ranks under
torchrun), and resolve which solver, NFE and options a sampling command uses."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from genbench import dist
from genbench.config import CLIP_MODES, SEED_MAX, solvers_for
from genbench.errors import GenbenchError
from genbench.randomness import SeededNoise
from genbench.solvers import NFE_RULES, allowed_nfe

# CPU kernels pick their blocking by batch size (MKL sgemm by row count, oneDNN convolutions by
# batch), which changes the low bits of a sample with its batch-mates. Padding every CPU batch to
# a multiple of PAD_TO rows makes a seed's sample bitwise the same whatever the batch size; oneDNN's
# transposed convolutions stay batch-dependent even then, so nets that have one run on the native
# kernels (the UNets have none and keep the faster oneDNN ones).
PAD_TO = 16


def _has_transposed_conv(nets: dict[str, nn.Module]) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvTransposeNd) for net in nets.values() for m in net.modules())


@contextmanager
def fast_layout(nets: dict[str, nn.Module], image: bool):
    """Channels-last weights for image nets while sampling (oneDNN's and the GPU tensor cores'
    preferred layout). Each net gets its own layout back afterwards: a training loop's nets (and
    the optimiser state laid out like them, which fused Adam needs) are left as they were."""
    if not image:
        yield
        return
    before = {name: _layout(net) for name, net in nets.items()}
    for net in nets.values():
        net.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for name, net in nets.items():
            if before[name] is not None:
                net.to(memory_format=before[name])


def _layout(net: nn.Module) -> torch.memory_format | None:
    """The layout of a net's 4-D weights (None: it has none)."""
    for p in net.parameters():
        if p.dim() == 4:
            return torch.channels_last if p.is_contiguous(memory_format=torch.channels_last) \
                and not p.is_contiguous() else torch.contiguous_format
    return None


def resolve_batch_size(batch_size: int | None, device) -> int:
    """The sampling batch: ``batch_size``, refused unless positive, or when None 64 on the CPU and
    256 on a GPU. On the 2-core CPU the Fashion-MNIST UNet sampled 21.8 images/s at 64 against 17.2
    at 256 (the `speed` metric of `genbench study fmnist`, docs/BENCHMARKS.md); a GPU wants large
    batches. On the CPU the batch size does not change the samples (padded batches, per-seed streams)."""
    if batch_size is None:
        return 64 if torch.device(device).type == "cpu" else 256
    if batch_size < 1:
        raise GenbenchError(f"--batch-size must be positive (got {batch_size})", "e.g. --batch-size 64")
    return batch_size


def seed_labels(seeds: Sequence[int], classes: Sequence[int]) -> list[int]:
    """The class each seed's sample asks for: ``classes[seed % len(classes)]`` (balanced over consecutive
    seeds, and the same for a seed whatever -n or the batch)."""
    return [classes[s % len(classes)] for s in seeds]


def generate(method, nets: dict[str, nn.Module], latent_shape: Sequence[int], seeds: Sequence[int],
             device: torch.device, batch_size: int | None = None, solver: str | None = None,
             nfe: int | None = None, bitwise: bool = True, labels: Sequence[int] | None = None,
             **opts) -> tuple[Tensor, int | float]:
    """Samples for ``seeds`` (model range, on the CPU) and the NFE per sample: an int, or for an
    adaptive solver (or guidance inside an interval) whose batches took different counts, their mean
    over samples (one decimal). ``labels`` (a conditional model's) gives the class of each seed's sample;
    ``opts`` may hold ``guidance`` (:class:`genbench.methods.guidance.Guidance`) and solver options.

    Sample k depends only on seeds[k]: its initial and per-step noise come from its own stream
    (as EDM's generate script does). With ``bitwise`` (CPU only) it is also bitwise independent of
    the batch size; timing code passes ``bitwise=False`` to measure the plain batch.
    """
    device = torch.device(device)
    batch_size = resolve_batch_size(batch_size, device)
    pad = bitwise and device.type == "cpu"
    native = pad and _has_transposed_conv(nets)
    image = len(latent_shape) == 3
    out, used = [], []
    for start in range(0, len(seeds), batch_size):
        chunk = list(seeds[start:start + batch_size])
        n = len(chunk)
        y = None if labels is None else list(labels[start:start + batch_size])
        if pad and n % PAD_TO:
            chunk += [-1 - k for k in range(PAD_TO - n % PAD_TO)]  # dummy streams, dropped below
            y = None if y is None else y + [y[0]] * (PAD_TO - n % PAD_TO)
        if y is not None:
            opts["y"] = torch.tensor(y, dtype=torch.long, device=device)
        noise = SeededNoise(chunk, device)
        x_init = noise.randn(latent_shape)
        if image:
            x_init = x_init.contiguous(memory_format=torch.channels_last)
        was = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = was and not native
        try:
            with fast_layout(nets, image):
                result = method.sample(nets, x_init, solver=solver, nfe=nfe, noise=noise.randn_like, **opts)
        finally:
            torch.backends.mkldnn.enabled = was
        out.append(result.x[:n].float().cpu())
        used += [result.nfe] * n
    mean_nfe = used[0] if len(set(used)) == 1 else round(sum(used) / len(used), 1)
    return torch.cat(out), mean_nfe


def generate_sharded(method, nets, latent_shape, seeds: list[int], device, batch_size: int | None = None,
                     solver: str | None = None, nfe: int | None = None, labels: Sequence[int] | None = None,
                     **opts):
    """:func:`generate` with the seeds split over the ranks (contiguous shares) and the samples
    gathered on rank 0 in seed order: bitwise what one process makes on the CPU (per-seed
    streams, padded batches). Rank 0 gets (samples, nfe), the others (None, their nfe)."""
    if dist.world_size() == 1:
        return generate(method, nets, latent_shape, seeds, device, batch_size, solver, nfe, labels=labels, **opts)
    mine = dist.shard(seeds)
    my_labels = None if labels is None else dist.shard(list(labels))
    x, used = (generate(method, nets, latent_shape, mine, device, batch_size, solver, nfe, labels=my_labels, **opts)
               if mine else (None, None))
    return dist.gather_samples(x), used


def resolve_solver(cfg, solver: str | None, nfe: int | None) -> tuple[str | None, int | None]:
    """The solver and NFE to use: the command line's, else the run's ``sample`` section, else the
    method's own; checked against what the method and the solver allow."""
    kind = cfg.method.kind
    valid = solvers_for(kind)
    if nfe is not None and nfe < 1:
        raise GenbenchError(f"--nfe must be at least 1 (got {nfe})", "e.g. --nfe 50, or leave it out for the run's own")
    if kind == "gan":
        if solver not in (None, "default", "generator") or nfe not in (None, 1):
            raise GenbenchError("a GAN samples in one generator pass (NFE 1): it takes no --solver or --nfe",
                                "drop --solver/--nfe")
        return None, None
    if solver not in (None, "default") and solver not in valid:
        raise GenbenchError(f"method '{kind}' has no solver '{solver}'", f"choose one of {', '.join(valid)}")
    solver = solver if solver not in (None, "default") else (
        cfg.sample.solver if cfg.sample.solver != "default" else cfg.method.solver)
    if solver == "dopri5":  # the run's own NFE (for its default solver) does not apply
        if nfe is not None:
            raise GenbenchError("dopri5 chooses its own steps: it takes no --nfe", "drop --nfe for dopri5")
        return solver, None
    nfe = nfe or cfg.sample.nfe or cfg.method.nfe
    if solver == "ddpm" and nfe is None:
        nfe = cfg.method.T
    if nfe is not None and not allowed_nfe(solver, nfe):
        raise GenbenchError(f"solver '{solver}' cannot make exactly {nfe} network evaluations: "
                            f"{NFE_RULES[solver].describe(nfe)}", "choose an allowed --nfe")
    return solver, nfe


def check_seeds(seed: int, n: int) -> None:
    """Refuse the seeds ``seed .. seed+n-1`` unless all lie in 0..2^63-1 (a larger one would wrap
    and repeat another seed's samples)."""
    if seed < 0 or seed + n - 1 > SEED_MAX:
        raise GenbenchError(f"--seed {seed} with -n {n} gives seeds outside 0..2^63-1 (0..{SEED_MAX})",
                            f"choose --seed between 0 and {SEED_MAX - n + 1}")


DOPRI5_TOL = 1e-5  # sample_dopri5's default rtol = atol


def solver_options(solver: str | None, tol: float | None, clip: str | None = None,
                   data_kind: str = "image") -> dict:
    """Extra solver options from the command line: dopri5's tolerance (rtol = atol) and x0 clipping
    (``static`` or ``dynamic``, :func:`genbench.methods.model_fn.clip_x0`), checked here."""
    opts: dict = {}
    if tol is not None:
        if solver != "dopri5":
            raise GenbenchError(f"--tol is dopri5's tolerance; solver '{solver}' takes a fixed --nfe",
                                "drop --tol, or use --solver dopri5")
        if not 0 < tol < 1:
            raise GenbenchError(f"--tol must be between 0 and 1 (got {tol})", "e.g. --tol 1e-4")
        opts.update(rtol=tol, atol=tol)
    if clip not in (None, "none"):
        if clip not in CLIP_MODES:
            raise GenbenchError(f"unknown --clip {clip!r}", f"choose none, {' or '.join(CLIP_MODES)}")
        if solver is None:
            raise GenbenchError("a GAN's generator forms no x0 prediction to clip", "drop --clip")
        if data_kind != "image":
            raise GenbenchError("--clip keeps x0 in the image range [-1, 1]; 2-D points have no such range",
                                "drop --clip for 2-D data")
        opts["clip"] = clip
    return opts


def options_tag(opts: dict) -> str:
    """File-name tag of non-default solver options ('' for none): a dopri5 tolerance, x0 clipping."""
    return (f"-tol{opts['rtol']:g}" if "rtol" in opts else "") + (f"-clip{opts['clip']}" if "clip" in opts else "")
