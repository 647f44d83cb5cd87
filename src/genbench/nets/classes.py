"""Class conditioning shared by the nets: the generators' label input and the projection discriminator.

* A conditional generator G(z, y) takes a learned class embedding beside its latent (Mirza & Osindero
  2014's conditioning of the input, in embedding form). A GAN has no "no label" token: its G and D see
  the class in every call. A G called without labels (nothing in training does; only a sampler that
  passes none) takes the class from its own latent, y = floor(K Phi(z_1)) with Phi the normal CDF:
  uniform over the K classes, fixed by the sample's seed, independent of the batch.
* The projection discriminator (Miyato & Koyama 2018, "cGANs with Projection Discriminator", Eq. 3):
  logit = psi(phi(x)) + <embed(y), phi(x)>, with phi(x) D's last feature vector and psi its
  unconditional linear head, so an unconditional D is the same net without the embedding. Where D is
  spectrally normalised, so is the embedding (as in the paper's models). A conditional D refuses
  y = None: it has no unconditional logit to fall back on.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def latent_labels(z: Tensor, num_classes: int) -> Tensor:
    """Classes drawn from the latent itself: floor(K Phi(z_1)), uniform when z_1 ~ N(0, 1)."""
    u = 0.5 * (1 + torch.erf(z[:, 0].double() / math.sqrt(2)))
    return (u * num_classes).long().clamp(0, num_classes - 1)


class LabelInput(nn.Module):
    """A generator's class input: ``embed(y)`` (N(0, 1) rows, the scale of z) to concatenate to z."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, dim)

    def forward(self, z: Tensor, y: Tensor | None) -> Tensor:
        """``[z, embed(y)]``; without y, the classes of :func:`latent_labels`."""
        labels = latent_labels(z, self.num_classes) if y is None else y
        return torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)


class Projection(nn.Module):
    """The class term of Miyato & Koyama's Eq. 3, <embed(y), phi(x)>, one per sample."""

    def __init__(self, num_classes: int, dim: int, std: float | None = None, normalise: bool = False):
        super().__init__()
        self.embed = nn.Embedding(num_classes, dim)
        if std is None:
            nn.init.xavier_uniform_(self.embed.weight)
        else:
            nn.init.normal_(self.embed.weight, 0.0, std)
        if normalise:
            spectral_norm(self.embed)

    def forward(self, phi: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("this discriminator is class-conditional (projection): pass the labels y of x")
        return (self.embed(y).to(phi.dtype) * phi).sum(dim=1)

