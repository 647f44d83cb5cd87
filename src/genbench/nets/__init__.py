"""Networks: every net is called as ``forward(x, t=None, y=None)``.

Model nets (``unet``, ``mlp``) map x of the data shape and times t in [0, 1] to the data shape;
generators (``dcgan_g``, ``resnet_g``, ``mlp_g``) map latents (N, z_dim) to samples and expose
``z_dim``; discriminators (``dcgan_d``, ``resnet_d``, ``mlp_d``) map samples to logits (N,).
"""

from __future__ import annotations

from torch import nn

from genbench.config import NetConfig
from genbench.errors import GenbenchError
from genbench.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genbench.nets.mlp import MLP, MLPDiscriminator, MLPGenerator
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


__all__ = [
    "MLP",
    "NETS",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "UNet",
    "build_net",
    "count_params",
]
