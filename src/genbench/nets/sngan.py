"""The ResNet GAN of Miyato et al. 2018 (SNGAN), Table 4 (CIFAR-10) and Appendix B.4.

Generator: Linear(z -> base x base x ch), up-ResBlocks to the image size, BN, ReLU, conv3x3, tanh.
Discriminator: an "optimised" first down block, down-ResBlocks to twice the base resolution
(as in the CIFAR-10 model, which ends at 8x8), two ResBlocks without resampling, ReLU, global
sum pooling and a linear logit; every conv/linear of D is spectrally normalised. Base 4 for
32x32 (3 up blocks), 7 for 28x28 (2 up blocks; D then has only the optimised down block).

Initialisation is the SNGAN reference code's: Xavier-uniform with gain sqrt(2) on the residual
convs, gain 1 on shortcuts and linear layers, zero biases.

Class-conditional (``num_classes``): D is the projection discriminator of Miyato & Koyama 2018 (Eq. 3,
their ResNet models), logit = linear(phi) + <embed(y), phi> on the pooled features phi, the embedding
spectrally normalised with the rest; G takes [z, embed(y)] as input (a simplification: their G uses
class-conditional BatchNorm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genbench.config import ResNetDConfig, ResNetGConfig
from genbench.nets.classes import LabelInput, Projection
from genbench.nets.shapes import base_resolution, square_size


def _conv(c_in: int, c_out: int, k: int, gain: float) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    nn.init.zeros_(conv.bias)
    return conv


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class GBlock(nn.Module):
    """BN, ReLU, 2x nearest upsample, conv3x3, BN, ReLU, conv3x3; shortcut upsample + conv1x1."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = _conv(c_in, c_out, 3, math.sqrt(2))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv(c_out, c_out, 3, math.sqrt(2))
        self.skip = _conv(c_in, c_out, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_up(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.skip(_up(x))


class DBlock(nn.Module):
    """ReLU, conv3x3, ReLU, conv3x3, optional 2x2 avgpool; 1x1 shortcut (then pool) if the shape changes."""

    def __init__(self, c_in: int, c_out: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = _conv(c_in, c_out, 3, math.sqrt(2))
        self.conv2 = _conv(c_out, c_out, 3, math.sqrt(2))
        self.skip = _conv(c_in, c_out, 1, 1.0) if (c_in != c_out or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        s = x if self.skip is None else self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class OptimizedDBlock(nn.Module):
    """D's first block: no ReLU on the raw image; shortcut pools before its 1x1 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = _conv(c_in, c_out, 3, math.sqrt(2))
        self.conv2 = _conv(c_out, c_out, 3, math.sqrt(2))
        self.skip = _conv(c_in, c_out, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.skip(F.avg_pool2d(x, 2))


class ResNetGenerator(nn.Module):
    """``forward(z, t=None, y=None)``: z of shape (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: ResNetGConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, size = square_size(data_shape, "resnet_g")
        self.base, steps = base_resolution(size, "resnet_g")
        self.z_dim, self.ch = cfg.z_dim, cfg.ch
        self.num_classes = num_classes or None
        self.linear = nn.Linear(cfg.z_dim * (2 if num_classes else 1), self.base * self.base * cfg.ch)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.blocks = nn.Sequential(*[GBlock(cfg.ch, cfg.ch) for _ in range(steps)])
        self.bn = nn.BatchNorm2d(cfg.ch)
        self.conv_out = _conv(cfg.ch, c_img, 3, 1.0)
        self.labels = LabelInput(num_classes, cfg.z_dim) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        z = x if self.labels is None else self.labels(x, y)
        h = self.linear(z).view(-1, self.ch, self.base, self.base)
        h = F.relu(self.bn(self.blocks(h)))
        return torch.tanh(self.conv_out(h))


class ResNetDiscriminator(nn.Module):
    """``forward(x, t=None, y=None)``: images (N, C, H, W) -> logits (N,)."""

    def __init__(self, cfg: ResNetDConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, size = square_size(data_shape, "resnet_d")
        _, steps = base_resolution(size, "resnet_d")
        downs = max(steps - 1, 1)
        ch = cfg.ch
        blocks: list[nn.Module] = [OptimizedDBlock(c_img, ch)]
        blocks += [DBlock(ch, ch, down=True) for _ in range(downs - 1)]
        blocks += [DBlock(ch, ch, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(ch, 1)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        if cfg.spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    spectral_norm(m)
        self.num_classes = num_classes or None
        self.projection = Projection(num_classes, ch, normalise=cfg.spectral_norm) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        # Global sum pooling (not mean), as in Miyato et al.'s Table 4.
        phi = F.relu(self.blocks(x)).sum(dim=(2, 3))
        logit = self.linear(phi).flatten()
        return logit if self.projection is None else logit + self.projection(phi, y)
