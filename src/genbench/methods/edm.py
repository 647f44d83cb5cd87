"""EDM diffusion (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models"): a preconditioned denoiser trained at log-normal noise levels, sampled with Heun's method
on the Karras grid.

Training (Table 1, "EDM" column; Sec. 5): ln sigma ~ N(P_mean, P_std^2), n ~ N(0, I),
loss = lambda(sigma) ||D(x_0 + sigma n; sigma) - x_0||^2 with lambda = (sigma^2 + sigma_data^2) /
(sigma sigma_data)^2, which makes the loss of every noise level start at 1 (App. B.6). The
preconditioning is the wrapper :class:`~genbench.methods.model_fn.EDMPrecond`; the path is the
variance-exploding :class:`~genbench.paths.VEPath`, so every solver of the library samples it
(default: ``heun_ve``, EDM's Algorithm 1, 35 NFE on CIFAR-10).

``precond: vp`` and ``precond: ve`` give the paper's other two columns of Table 1 (the VP and VE
parameterisations of Song et al. 2021 in EDM's framework): their c_skip/c_out/c_in/c_noise, their
training noise levels (VP: t ~ U(eps_t, 1), sigma = sigma_VP(t); VE: ln sigma ~ U(ln 0.02, ln 100)) and
their weighting lambda = 1 / sigma^2, sampled on the same VE path by the same solvers (Sec. 5 isolates
the training choices in exactly this way).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genbench.config import PLAYERS, EDMConfig
from genbench.methods.guidance import counted, guide
from genbench.methods.labels import drop_labels
from genbench.methods.model_fn import EDMPrecond, per_sample_mse, vp_sigma, with_clip
from genbench.paths import VEPath, broadcast
from genbench.randomness import LOCAL, default_noise
from genbench.solvers import SolverResult, solve

VP_EPS_T = 1e-5                 # Table 1, VP training: t ~ U(eps_t, 1)
VE_TRAIN_SIGMA = (0.02, 100.0)  # Table 1, VE training: ln sigma ~ U(ln sigma_min, ln sigma_max)


class EDM:
    players = PLAYERS["edm"]
    updates = ("model",)
    data_players = ("model",)
    sample_player = "model"
    draws = LOCAL             # per-sample noise; the training loop installs a rank-aware one

    def __init__(self, cfg: EDMConfig):
        self.cfg = cfg
        self.path = VEPath(cfg.sigma_min, cfg.sigma_max)
        self.num_classes: int | None = None   # a conditional run's class count, set by the training state

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return tuple(data_shape)

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """lambda(sigma) of Table 1: (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 for EDM, 1 / sigma^2 for
        VP and VE."""
        if self.cfg.precond != "edm":
            return sigma.pow(-2)
        sd = self.cfg.sigma_data
        return (sigma**2 + sd**2) / (sigma * sd) ** 2

    def train_sigma(self, x0: Tensor) -> Tensor:
        """The training noise levels of Table 1, one per sample, from the method's per-sample draws."""
        if self.cfg.precond == "edm":
            return (self.cfg.P_mean + self.cfg.P_std * self.draws.randn(x0, ())).exp()
        u = self.draws.rand(x0)
        if self.cfg.precond == "vp":
            return vp_sigma(VP_EPS_T + (1 - VP_EPS_T) * u)
        return torch.exp(math.log(VE_TRAIN_SIGMA[0]) + u * math.log(VE_TRAIN_SIGMA[1] / VE_TRAIN_SIGMA[0]))

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        sigma = self.train_sigma(x0)
        noise = self.draws.randn(x0)
        x = x0 + broadcast(sigma, x0) * noise
        y = drop_labels(y, self.cfg.label_dropout, self.num_classes, self.draws)
        denoised = self.model_fn(nets["model"], y).denoise_sigma(x, sigma)
        return {"loss": (self.loss_weight(sigma) * per_sample_mse(denoised, x0)).mean()}

    def model_fn(self, net: nn.Module, y: Tensor | None = None) -> EDMPrecond:
        return EDMPrecond(net, self.path, self.cfg.sigma_data, y, self.cfg.precond)

    def denoiser(self, net: nn.Module, y: Tensor | None = None, clip: str | None = None):
        """``denoise(x_t, t) -> (x0, eps)`` for the solvers, with x0 clipping if asked (:func:`clip_x0`)."""
        return with_clip(self.model_fn(net, y).denoise, self.path, clip)

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """Start from sigma_max times x_init ~ N(0, I) and solve down to sigma = 0 with any solver of
        :mod:`genbench.solvers` (default: Heun on the Karras grid, EDM's Algorithm 1)."""
        solver = self.cfg.solver if solver in (None, "default") else solver
        x = x_init * self.path.sigma_max
        model = guide(self.model_fn, nets["model"], y, opts.pop("guidance", None), self.path)
        return counted(solve(solver, with_clip(model.denoise, self.path, opts.pop("clip", None)), self.path, x,
                             None if solver == "dopri5" else (nfe or self.cfg.nfe), noise or default_noise, **opts),
                       model)
