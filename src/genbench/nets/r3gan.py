"""R3GAN's generator and discriminator (Huang et al. 2024, "The GAN is dead; long live the GAN! A
Modern GAN Baseline", Sec. 4, config E), at Fashion-MNIST / CIFAR-10 scale.

- No normalisation layers anywhere; residual blocks in the ConvNeXt-style inverted bottleneck
  1x1 conv -> leaky ReLU(0.2) -> grouped 3x3 conv -> leaky ReLU -> 1x1 conv, added to the input, the
  convolutions bias-free and each activation with its own learned bias.
- Fix-up-style initialisation (Zhang et al. 2019, as the paper): He (MSR) normal weights, the first two
  convs of each branch scaled by L^(-1/(2m-2)) = L^(-1/4) (L residual blocks in the net, m = 3 layers
  per branch) and the last conv zero, so that every block starts as the identity.
- Resampling between stages outside the residual blocks: bilinear, by the [1, 2, 1] filter (zero
  insertion then the filter to go up; the filter then every other pixel to go down).
- G: a learned base x base basis scaled per channel by a linear map of z (its "generative basis"),
  stages of blocks at doubling resolutions, a 1x1 conv to the image, no tanh (as the paper; samples are
  clamped when converted to images). D: a 1x1 conv from the image, stages of blocks each followed by
  a 2x downsampling, and at the base resolution a depthwise base x base conv and a linear logit.

Every stage has width ``ch`` (the paper's CIFAR-10 model: 768 with 2 blocks per stage, 96 groups,
expansion 2). Base 4 for 32 (stages 4, 8, 16, 32), 7 for 28 (7, 14, 28).

Class-conditional (``num_classes``; the paper's CIFAR-10 model is conditional): the class enters G
through its input, a learned embedding (of z_dim) concatenated to z before the linear map to the
basis's channel scales, as R3GAN's released code does; D is a projection discriminator (Miyato &
Koyama 2018, Eq. 3) on the feature vector before its linear logit. (R3GAN's code keeps the projection
term alone; here psi, the unconditional head, stays as well, as in every genbench D.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genbench.config import R3GANDConfig, R3GANGConfig
from genbench.nets.classes import LabelInput, Projection
from genbench.nets.shapes import base_resolution, square_size

SLOPE = 0.2
ACT_GAIN = math.sqrt(2 / (1 + SLOPE**2))   # He's gain for leaky ReLU(0.2)


def msr_init(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Module:
    """Weights from N(0, gain^2 / fan_in) (He et al. 2015); gain 0 gives zeros."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    return layer


def _conv(c_in: int, c_out: int, k: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    return msr_init(nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), SLOPE)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))), starting as the identity."""

    def __init__(self, ch: int, groups: int, expansion: int, n_blocks: int):
        super().__init__()
        inner = ch * expansion
        gain = ACT_GAIN * n_blocks ** (-1 / (2 * 3 - 2))
        self.branch = nn.Sequential(_conv(ch, inner, gain=gain), BiasedLeakyReLU(inner),
                                    _conv(inner, inner, 3, groups, gain), BiasedLeakyReLU(inner),
                                    _conv(inner, ch, gain=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Resample(nn.Module):
    """2x up or down with the separable [1, 2, 1] filter, per channel."""

    def __init__(self, ch: int, up: bool):
        super().__init__()
        f = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(f, f) / 16
        # a fixed filter, not a weight: rebuilt from code, not saved in checkpoints
        self.register_buffer("kernel", (kernel * (4 if up else 1)).expand(ch, 1, 3, 3).clone(), persistent=False)
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel.to(x.dtype)
        if self.up:   # zero insertion and the filter: (H, W) -> (2H, 2W)
            return F.conv_transpose2d(x, k, stride=2, padding=1, output_padding=1, groups=x.shape[1])
        return F.conv2d(x, k, stride=2, padding=1, groups=x.shape[1])


def _stage(cfg, n_blocks: int) -> list[nn.Module]:
    return [ResidualBlock(cfg.ch, cfg.groups, cfg.expansion, n_blocks) for _ in range(cfg.blocks)]


class R3GANGenerator(nn.Module):
    """``forward(z, t=None, y=None)``: z of shape (N, z_dim) -> images (N, C, H, W), unbounded."""

    def __init__(self, cfg: R3GANGConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, size = square_size(data_shape, "r3gan_g")
        self.base, steps = base_resolution(size, "r3gan_g")
        self.z_dim = cfg.z_dim
        self.num_classes = num_classes or None
        n_blocks = (steps + 1) * cfg.blocks
        self.basis = nn.Parameter(torch.randn(cfg.ch, self.base, self.base))
        self.linear = msr_init(nn.Linear(cfg.z_dim * (2 if num_classes else 1), cfg.ch, bias=False))
        layers = _stage(cfg, n_blocks)
        for _ in range(steps):
            layers += [Resample(cfg.ch, up=True), *_stage(cfg, n_blocks)]
        self.stages = nn.Sequential(*layers)
        self.to_image = _conv(cfg.ch, c_img)
        self.labels = LabelInput(num_classes, cfg.z_dim) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        z = x if self.labels is None else self.labels(x, y)
        h = self.basis.unsqueeze(0) * self.linear(z)[:, :, None, None]
        return self.to_image(self.stages(h))


class R3GANDiscriminator(nn.Module):
    """``forward(x, t=None, y=None)``: images (N, C, H, W) -> logits (N,)."""

    def __init__(self, cfg: R3GANDConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, size = square_size(data_shape, "r3gan_d")
        base, steps = base_resolution(size, "r3gan_d")
        n_blocks = (steps + 1) * cfg.blocks
        self.from_image = _conv(c_img, cfg.ch)
        layers: list[nn.Module] = []
        for _ in range(steps):
            layers += [*_stage(cfg, n_blocks), Resample(cfg.ch, up=False)]
        self.stages = nn.Sequential(*layers, *_stage(cfg, n_blocks))
        self.basis = msr_init(nn.Conv2d(cfg.ch, cfg.ch, base, groups=cfg.ch, bias=False))
        self.linear = msr_init(nn.Linear(cfg.ch, 1, bias=False))
        self.num_classes = num_classes or None
        # the head's He scale, N(0, 1 / ch), for each class's projection vector
        self.projection = Projection(num_classes, cfg.ch, std=cfg.ch ** -0.5) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        phi = self.basis(self.stages(self.from_image(x))).flatten(1)
        logit = self.linear(phi).flatten()
        return logit if self.projection is None else logit + self.projection(phi, y)
