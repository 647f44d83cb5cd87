"""GAN objectives (Goodfellow et al. 2014) for a generator G and a discriminator D.

* ``bce``: the minimax game of the study, with D trained on binary cross-entropy (real = 1,
  fake = 0) and G on the non-saturating loss -log D(G(z)) (Goodfellow et al. 2014, Sec. 3).
* ``hinge``: D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G: -E[D(G(z))] (Lim & Ye 2017;
  Miyato et al. 2018).

D outputs logits, so BCE is computed stably with softplus: -log sigmoid(l) = softplus(-l).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genbench.config import PLAYERS, GANConfig
from genbench.randomness import LOCAL
from genbench.solvers import SolverResult


class GAN:
    players = PLAYERS["gan"]
    sample_player = "G"
    data_players = ("D",)  # the G update needs no real images
    draws = LOCAL           # per-sample noise; the training loop installs a rank-aware one

    def __init__(self, cfg: GANConfig):
        self.cfg = cfg
        self.updates = ("D",) * cfg.n_critic + ("G",)

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return (nets["G"].z_dim,)

    def loss(self, nets: dict[str, nn.Module], player: str, x: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        G, D = nets["G"], nets["D"]
        z = self.draws.randn(x, (G.z_dim,))
        if player == "D":
            with torch.no_grad():
                fake = G(z, None, y)
            real_logit, fake_logit = D(x, None, y).float(), D(fake, None, y).float()
            if self.cfg.loss == "bce":
                loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
            else:
                loss = F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean()
            return {"loss": loss, "D_real": torch.sigmoid(real_logit).mean().detach(),
                    "D_fake": torch.sigmoid(fake_logit).mean().detach()}
        fake_logit = D(G(z, None, y), None, y).float()
        loss = F.softplus(-fake_logit).mean() if self.cfg.loss == "bce" else -fake_logit.mean()
        return {"loss": loss}

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """One generator pass: NFE = 1."""
        with torch.inference_mode():
            return SolverResult(nets["G"](x_init, None, y).float(), 1)
