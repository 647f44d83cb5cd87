"""Multi-layer perceptrons for 2-D toy data (ring / grid of Gaussians).

``MLP`` is the time-conditioned model of diffusion and flow matching: x concatenated with a
sinusoidal embedding of t (Vaswani et al. 2017; Ho et al. 2020 §B), SiLU hidden layers.
``MLPGenerator`` and ``MLPDiscriminator`` are the GAN pair of the 2-D mixture experiments
(Metz et al. 2017, "Unrolled GANs", §3.1): ReLU generator, LeakyReLU(0.2) discriminator.
With ``num_classes`` (the mixture's modes as classes) the model adds a learned class embedding to
the time features, as the UNet does, with a "no label" last row; G takes a class embedding beside
z and D is a projection discriminator (:mod:`genbench.nets.classes`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genbench.config import MLPConfig
from genbench.errors import GenbenchError
from genbench.nets.classes import LabelInput, Projection
from genbench.nets.embedding import IntervalEmbedding, as_time, refuse_second_time, timestep_embedding

# Width of the sinusoidal time features; 32 frequencies span 1 .. 1/10000 of the 1000-step range.
TIME_DIM = 64


def _vector_dim(data_shape: tuple[int, ...], kind: str) -> int:
    if len(data_shape) != 1:
        raise GenbenchError(
            f"network '{kind}' is for vector (2-D) data, got data of shape {tuple(data_shape)}",
            "use unet, dcgan_g/dcgan_d or resnet_g/resnet_d for images",
        )
    return int(data_shape[0])


def _stack(d_in: int, hidden: int, depth: int, d_out: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with activation ``act``, then a linear output."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), act()]
    layers.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """``forward(x, t, y=None, r=None)``: x of shape (N, D), t of shape (N,) in [0, 1] -> (N, D); r only
    with ``second_time`` (MeanFlow, :class:`IntervalEmbedding` added to t's features). With
    ``num_classes`` a class embedding is added to t's features; its last row is the "no label" token,
    used when y is None (classifier-free guidance). An unconditional net ignores y."""

    def __init__(self, cfg: MLPConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        dim = _vector_dim(data_shape, "mlp")
        self.net = _stack(dim + TIME_DIM, cfg.hidden, cfg.depth, dim, nn.SiLU)
        self.time_scale = cfg.time_scale
        self.num_classes = num_classes or None
        # before the interval embedding (built last), so a one-time net starts as its two-time twin
        self.class_emb = nn.Embedding(num_classes + 1, TIME_DIM) if num_classes else None
        self.interval = IntervalEmbedding(TIME_DIM, TIME_DIM, cfg.time_scale) if cfg.second_time else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | float | None = None, y: torch.Tensor | None = None,
        r: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        t = as_time(t, x.shape[0], x.device)
        temb = timestep_embedding(t, TIME_DIM, self.time_scale).to(x.dtype)
        if self.interval is not None:
            temb = temb + self.interval(t, r)
        else:
            refuse_second_time(r)
        if self.class_emb is not None:
            labels = y if y is not None else torch.full((x.shape[0],), self.num_classes, device=x.device)
            temb = temb + self.class_emb(labels).to(temb.dtype)
        return self.net(torch.cat([x, temb.to(x.dtype)], dim=1))


class MLPGenerator(nn.Module):
    """``forward(z, t=None, y=None)``: z of shape (N, z_dim) -> points (N, D), unbounded (no tanh); with
    ``num_classes``, [z, embed(y)] (an embedding of z_dim) is the input."""

    def __init__(self, cfg: MLPConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        dim = _vector_dim(data_shape, "mlp_g")
        self.z_dim = cfg.z_dim
        self.num_classes = num_classes or None
        self.net = _stack(cfg.z_dim * (2 if num_classes else 1), cfg.hidden, cfg.depth, dim, nn.ReLU)
        self.labels = LabelInput(num_classes, cfg.z_dim) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.net(x if self.labels is None else self.labels(x, y))


class MLPDiscriminator(nn.Module):
    """``forward(x, t=None, y=None)``: points (N, D) -> logits (N,); with ``num_classes`` plus the
    projection <embed(y), phi(x)> of the last hidden layer phi (Miyato & Koyama 2018, Eq. 3)."""

    def __init__(self, cfg: MLPConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        dim = _vector_dim(data_shape, "mlp_d")
        self.num_classes = num_classes or None
        self.net = _stack(dim, cfg.hidden, cfg.depth, 1, lambda: nn.LeakyReLU(0.2))
        self.projection = Projection(num_classes, cfg.hidden) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.projection is None:
            return self.net(x).flatten()
        phi = self.net[:-1](x)
        return self.net[-1](phi).flatten() + self.projection(phi, y)
