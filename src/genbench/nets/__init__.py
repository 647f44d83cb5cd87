"""Networks: every net is called as ``forward(x, t=None, y=None)``.

Model nets (``unet``, ``mlp``) map x of the data shape and times t in [0, 1] to the data shape;
generators (``dcgan_g``, ``resnet_g``, ``r3gan_g``, ``mlp_g``) map latents (N, z_dim) to samples and
expose ``z_dim``; discriminators (``dcgan_d``, ``resnet_d``, ``r3gan_d``, ``mlp_d``) map samples to logits (N,).
"""

from __future__ import annotations

import torch
from torch import nn

from genbench.config import NetConfig
from genbench.errors import GenbenchError
from genbench.limits import check_memory
from genbench.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genbench.nets.mlp import MLP, MLPDiscriminator, MLPGenerator
from genbench.nets.r3gan import R3GANDiscriminator, R3GANGenerator
from genbench.nets.sngan import ResNetDiscriminator, ResNetGenerator
from genbench.nets.unet import UNet

# kind -> class. Which role (player) each kind may fill is genbench.config.NET_ROLES (torch-free, so that
# configs validate without torch); tests/test_registries.py holds the kinds of the two equal.
NETS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "mlp": MLP,
    "dcgan_g": DCGANGenerator,
    "dcgan_d": DCGANDiscriminator,
    "resnet_g": ResNetGenerator,
    "resnet_d": ResNetDiscriminator,
    "r3gan_g": R3GANGenerator,
    "r3gan_d": R3GANDiscriminator,
    "mlp_g": MLPGenerator,
    "mlp_d": MLPDiscriminator,
}


def build_net(cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int | None = None) -> nn.Module:
    """Build the network that ``cfg.kind`` names for data of shape ``data_shape`` (no batch axis)."""
    cls = NETS.get(cfg.kind)
    if cls is None:
        raise GenbenchError(f"unknown network kind '{cfg.kind}'", f"choose one of {sorted(NETS)}")
    return cls(cfg, tuple(int(s) for s in data_shape), num_classes)


def count_params(module: nn.Module) -> int:
    """Number of parameters (each shared tensor once; spectral-norm's u/v buffers are not parameters)."""
    return sum(p.numel() for p in module.parameters())


# bytes of memory per parameter: float32 weights (and the EMA); training adds the gradient and Adam's two moments
BYTES_PER_PARAM = {"sampling": 2 * 4, "training": 5 * 4}


def check_nets_fit(nets: dict[str, NetConfig], data_shape: tuple[int, ...], num_classes: int | None,
                   device: torch.device, purpose: str, shape_of=None) -> None:
    """Refuse networks whose parameters would not fit in the memory of ``device`` (for ``purpose``
    "sampling" or "training"), before any is allocated (``shape_of(player, data_shape)``: a net's own
    input shape, if not the data's): their parameters are counted on PyTorch's
    meta device (shapes only, no memory, no random numbers drawn from the real generators)."""
    counts = {}
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            for player, cfg in nets.items():
                # spectral norm adds buffers only (and would import torch._dynamo on meta: 1 s)
                plain = cfg.model_copy(update={"spectral_norm": False}) if hasattr(cfg, "spectral_norm") else cfg
                shape = shape_of(player, data_shape) if shape_of is not None else data_shape
                counts[player] = count_params(build_net(plain, shape, num_classes))
    except GenbenchError:
        raise
    except Exception:   # a net that cannot be built on the meta device is not checked here
        return
    need = sum(counts.values()) * BYTES_PER_PARAM[purpose]
    available = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    sizes = ", ".join(f"nets.{p} {n:,}" for p, n in counts.items())
    knobs = sorted({f"nets.{p}.{k}" for p, c in nets.items() for k in type(c).model_fields
                    if k in ("ch", "ch_mult", "num_res_blocks", "hidden", "depth", "z_dim")})
    check_memory(need, f"{purpose} networks of {sum(counts.values()):,} parameters ({sizes})",
                 f"make the networks smaller: {', '.join(knobs) or 'see the nets section of the config'}",
                 available=available, where=f"{device.type} memory")


__all__ = [
    "MLP",
    "NETS",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "R3GANDiscriminator",
    "R3GANGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "UNet",
    "build_net",
    "check_nets_fit",
    "count_params",
]
