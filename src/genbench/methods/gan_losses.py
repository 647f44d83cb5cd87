"""GAN losses and zero-centred gradient penalties, as pure functions of D's logits.

* ``bce``: D on binary cross-entropy (real = 1, fake = 0), G on the non-saturating -log D(G(z))
  (Goodfellow et al. 2014, Sec. 3); -log sigmoid(l) = softplus(-l), stable on logits.
* ``hinge``: D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G: -E[D(G(z))] (Lim & Ye 2017; Miyato et al. 2018).
* ``rpgan``: the relativistic pairing loss (Jolicoeur-Martineau 2019; Huang et al. 2024, Eq. 2): D:
  E[f(D(x) - D(G(z)))], G: E[f(D(G(z)) - D(x))], f(t) = softplus(-t), the i-th real paired with
  the i-th fake of the batch.
* R1 / R2 (Mescheder et al. 2018, Eq. 9; Huang et al. 2024, Eq. 5-6): gamma/2 E||grad_x D(x)||^2 on
  real data (R1) and on fakes (R2), zero-centred; R3GAN uses both with the RpGAN loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genbench.config import GANConfig


def d_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """D's loss from its logits on a batch of reals and one of fakes."""
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-(real - fake)).mean()


def g_loss(kind: str, fake: Tensor, real: Tensor | None = None) -> Tensor:
    """G's loss from D's logits on its fakes (and, for ``rpgan``, on the paired reals)."""
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-(fake - real)).mean()


def real_signs(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """sign(D(x)) per real sample: ADA's overfitting signal r_t = E[sign(D(x_real))] (Karras et al.
    2020, Eq. 1). An RpGAN D is defined only up to a constant (its loss sees differences), so there the
    sign is that of the pair's relativistic logit D(x) - D(G(z))."""
    return torch.sign(real - fake if kind == "rpgan" else real).detach()


def needs_reals_for_g(kind: str) -> bool:
    return kind == "rpgan"


def gradient_penalty(inputs: Tensor, logits: Tensor) -> Tensor:
    """||grad_x D(x)||^2 per sample (N,), kept in the graph so that D can be trained on it."""
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return grad.float().square().flatten(1).sum(1)


def gamma_at(cfg: GANConfig, kimg: float) -> float:
    """The penalty weight after ``kimg`` thousand images of D updates: ``gamma`` decayed to
    ``gamma_final`` over ``gamma_kimg`` (cosine as R3GAN's schedules, or linear), then held."""
    if cfg.gamma_final is None or cfg.gamma_kimg is None:
        return cfg.gamma
    frac = min(kimg / cfg.gamma_kimg, 1.0)
    done = frac if cfg.gamma_schedule == "linear" else 0.5 * (1 - math.cos(math.pi * frac))
    return cfg.gamma + done * (cfg.gamma_final - cfg.gamma)
