"""DCGAN generator and discriminator (Radford et al. 2016, §3 and Fig. 1).

All-convolutional: the generator projects z to a small base map with a transposed conv and
doubles the resolution with stride-2 ``ConvTranspose2d(4, 2, 1)`` + BatchNorm + ReLU, ending in
Tanh; the discriminator mirrors it with stride-2 ``Conv2d(4, 2, 1)`` + LeakyReLU(0.2), BatchNorm
on every layer but the first. ``ch`` is the width of the feature map next to the image (the
reference implementation's ngf/ndf), doubling at every halving: at 32x32 the maps are
16x16xch, 8x8x2ch, 4x4x4ch. Base 4 for 32 and 64, base 7 for 28 (7 -> 14 -> 28).

Class-conditional (``num_classes``): G's input is [z, embed(y)] (an embedding of z_dim); D adds the
projection <embed(y), phi(x)> (Miyato & Koyama 2018, Eq. 3), phi(x) its last feature map summed over
positions (:mod:`genbench.nets.classes`).
"""

from __future__ import annotations

import torch
from torch import nn

from genbench.config import DCGANDConfig, DCGANGConfig
from genbench.nets.classes import LabelInput, Projection
from genbench.nets.shapes import base_resolution, square_size


def init_dcgan(module: nn.Module) -> None:
    """Weights from N(0, 0.02) as in Radford et al. §4; BatchNorm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """``forward(z, t=None, y=None)``: z of shape (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: DCGANGConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, size = square_size(data_shape, "dcgan_g")
        base, steps = base_resolution(size, "dcgan_g")
        self.z_dim = cfg.z_dim
        self.num_classes = num_classes or None
        width = cfg.ch * 2 ** (steps - 1)
        # Bias-free convs before BatchNorm: the norm's shift makes a bias redundant.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim * (2 if num_classes else 1), width, base, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, c_img, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)
        self.labels = LabelInput(num_classes, cfg.z_dim) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        z = x if self.labels is None else self.labels(x, y)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """``forward(x, t=None, y=None)``: images (N, C, H, W) -> logits (N,)."""

    def __init__(self, cfg: DCGANDConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, size = square_size(data_shape, "dcgan_d")
        base, steps = base_resolution(size, "dcgan_d")
        width = cfg.ch
        layers: list[nn.Module] = [nn.Conv2d(c_img, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(steps - 1):
            layers += [
                nn.Conv2d(width, 2 * width, 4, 2, 1, bias=cfg.norm == "none"),
                nn.BatchNorm2d(2 * width) if cfg.norm == "batch" else nn.Identity(),
                nn.LeakyReLU(0.2, True),
            ]
            width *= 2
        # A base x base conv reads the whole final map into one logit (no sigmoid: losses take logits).
        layers.append(nn.Conv2d(width, 1, base, 1, 0))
        self.net = nn.Sequential(*layers)
        init_dcgan(self)
        self.num_classes = num_classes or None
        self.projection = Projection(num_classes, width, std=0.02) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.projection is None:
            return self.net(x).flatten()
        phi = self.net[:-1](x)
        return self.net[-1](phi).flatten() + self.projection(phi.sum(dim=(2, 3)), y)
