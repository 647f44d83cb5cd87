"""GANs (Goodfellow et al. 2014) for a generator G and a discriminator D: the losses of
:mod:`genbench.methods.gan_losses` (``bce``, ``hinge``, ``rpgan``), the zero-centred gradient
penalties R1 and R2 with any of them, and D's differentiable augmentation (:mod:`genbench.augment`).

* Penalties (Mescheder et al. 2018; R3GAN, Huang et al. 2024): gamma/2 E||grad D||^2 on the inputs
  before augmentation (the gradient passes through it), gamma on a schedule (``gamma_at``). Lazy
  regularisation (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", App. B):
  the penalty only every k-th D update, multiplied by k, and D's Adam lr and betas rescaled by
  c = k/(k+1) (``optim_ratio``, read by the training state when it builds the optimisers).
* Augmentation (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020): every image D sees, real or
  fake, in D's update and in G's. ADA's p is adjusted from the signs of D on reals.
* Packing (PacGAN, Lin et al. 2018, Sec. 3): D decides on packs of m samples, all real or all fake,
  concatenated along channels (or a point's coordinates), so that its input dimension is m times the
  data's (:meth:`GAN.net_shape`); a collapsed G makes packs of look-alikes, which D can tell from
  packs of reals. Penalties, signs and pairs (rpgan) are then per pack, augmentation per sample.
* Logged per D update: ``D_sign_real`` (E[sign D(real)], ADA's overfitting signal, for every GAN),
  ``r1``/``r2`` (the last penalties), ``gamma``, and ADA's ``ada_p``.

The counters (D updates, images), the last penalties and ADA's state are :meth:`state_dict`, part of
the checkpoint, so that a resumed run continues bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genbench.augment import build_augment
from genbench.config import PLAYERS, GANConfig
from genbench.errors import GenbenchError
from genbench.methods.gan_losses import (
    d_loss,
    g_loss,
    gamma_at,
    gradient_penalty,
    needs_reals_for_g,
    real_signs,
)
from genbench.randomness import LOCAL
from genbench.solvers import SolverResult


class GAN:
    players = PLAYERS["gan"]
    sample_player = "G"
    data_players = ("D",)  # the G update needs no new real images (rpgan pairs G's fakes with D's last batch)
    draws = LOCAL           # per-sample noise; the training loop installs a rank-aware one

    def __init__(self, cfg: GANConfig):
        self.cfg = cfg
        self.updates = ("D",) * cfg.n_critic + ("G",)
        self.augment = build_augment(cfg.augment)
        self.d_updates = 0                       # lazy regularisation's clock
        self.nimg = 0                            # real images through D updates (all ranks): gamma's clock
        self.last_penalty: dict[str, Tensor] = {}

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return (nets["G"].z_dim,)

    def net_shape(self, player: str, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input shape of ``player``'s net: D's takes m = ``pack`` samples along the first axis."""
        m = self.cfg.pack if player == "D" else 1
        return (data_shape[0] * m, *data_shape[1:])

    def pack(self, x: Tensor) -> Tensor:
        """(N, C, ...) -> (N/m, m C, ...): consecutive samples i m .. i m + m - 1 form pack i."""
        m = self.cfg.pack
        return x if m == 1 else x.reshape(x.shape[0] // m, x.shape[1] * m, *x.shape[2:])

    def optim_ratio(self, player: str) -> float:
        """c = k/(k+1) for D under lazy regularisation every k updates (lr x c, betas ** c), else 1."""
        k = self.cfg.reg_every
        return k / (k + 1) if player == "D" and k > 1 and self.cfg.gamma > 0 else 1.0

    def loss(self, nets: dict[str, nn.Module], player: str, x: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        G, D = nets["G"], nets["D"]
        if self.cfg.augment.kind != "none" and x.dim() != 4:
            raise GenbenchError(f"method.augment.kind={self.cfg.augment.kind} augments images, but the data "
                                f"are points of shape {tuple(x.shape[1:])}", "set method.augment.kind=none")
        if x.shape[0] % self.cfg.pack:
            raise GenbenchError(f"a batch of {x.shape[0]} per process does not split into packs of "
                                f"method.pack={self.cfg.pack}",
                                f"make train.batch_size a multiple of {self.cfg.pack} x the number of processes")
        z = self.draws.randn(x, (G.z_dim,))
        return self.d_loss(G, D, x, y, z) if player == "D" else self.g_loss(G, D, x, y, z)

    def d_loss(self, G, D, x: Tensor, y, z: Tensor) -> dict[str, Tensor]:
        cfg, k = self.cfg, self.cfg.reg_every
        with torch.no_grad():
            fake = G(z, None, y)
        regularise = cfg.gamma > 0 and self.d_updates % k == 0
        r1, r2 = regularise and cfg.penalty != "r2", regularise and cfg.penalty != "r1"
        real, fake = x.detach().requires_grad_(r1), fake.detach().requires_grad_(r2)
        real_logit = D(self.pack(self.augment(real, self.draws)), None, y).float()
        fake_logit = D(self.pack(self.augment(fake, self.draws)), None, y).float()
        loss = d_loss(cfg.loss, real_logit, fake_logit)
        gamma = gamma_at(cfg, self.nimg / 1000)
        if regularise:
            penalties = {name: gradient_penalty(inputs, logits).mean()
                         for name, on, inputs, logits in (("r1", r1, real, real_logit), ("r2", r2, fake, fake_logit))
                         if on}
            loss = loss + gamma / 2 * k * sum(penalties.values())
            self.last_penalty = {name: p.detach() for name, p in penalties.items()}
        signs = real_signs(cfg.loss, real_logit, fake_logit)
        global_batch = x.shape[0] * self.draws.world
        self.augment.observe(signs, global_batch)
        self.d_updates += 1
        self.nimg += global_batch
        out = {"loss": loss, "D_real": torch.sigmoid(real_logit).mean().detach(),
               "D_fake": torch.sigmoid(fake_logit).mean().detach(), "D_sign_real": signs.mean(),
               **self.last_penalty, **self.augment.log()}
        if cfg.gamma > 0:
            out["gamma"] = torch.full((), gamma, device=loss.device)
        return out

    def g_loss(self, G, D, x: Tensor, y, z: Tensor) -> dict[str, Tensor]:
        fake_logit = D(self.pack(self.augment(G(z, None, y), self.draws)), None, y).float()
        real_logit = None
        if needs_reals_for_g(self.cfg.loss):   # D is frozen and the reals do not depend on G
            with torch.no_grad():
                real_logit = D(self.pack(self.augment(x, self.draws)), None, y).float()
        return {"loss": g_loss(self.cfg.loss, fake_logit, real_logit)}

    def state_dict(self) -> dict:
        return {"d_updates": self.d_updates, "nimg": self.nimg,
                "last_penalty": {k: v.clone() for k, v in self.last_penalty.items()},
                "augment": self.augment.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.d_updates, self.nimg = int(state["d_updates"]), int(state["nimg"])
        self.last_penalty = {k: v.clone() for k, v in state["last_penalty"].items()}
        self.augment.load_state_dict(state["augment"])

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """One generator pass: NFE = 1 (a conditional G takes the labels y; there is no guidance to apply)."""
        if opts.get("guidance") is not None:
            raise ValueError("a GAN's generator has no unconditional prediction to guide away from")
        with torch.inference_mode():
            return SolverResult(nets["G"](x_init, None, y).float(), 1)
