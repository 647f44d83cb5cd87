"""DDPM (Ho et al. 2020) with linear or cosine schedule and eps / x0 / v prediction."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genbench.config import DiffusionConfig
from genbench.methods.model_fn import ModelFn, default_noise, per_sample_mse
from genbench.methods.parametrization import from_x0_eps
from genbench.methods.path import DiscreteVP, cosine_betas, linear_betas, q_sample
from genbench.solvers import SolverResult, ddpm_timesteps, sample_ddim, sample_ddpm


class Diffusion:
    players = ("model",)
    updates = ("model",)      # one update of the model per training step
    data_players = ("model",)  # players whose updates consume real images
    sample_player = "model"

    def __init__(self, cfg: DiffusionConfig):
        self.cfg = cfg
        betas = (linear_betas(cfg.T, cfg.beta_start, cfg.beta_end) if cfg.schedule == "linear"
                 else cosine_betas(cfg.T, cfg.cosine_s))
        self.path = DiscreteVP(betas)

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return tuple(data_shape)

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        """Algorithm 1 of Ho et al.: t ~ U{1..T}, eps ~ N(0, I), regress the chosen target (L_simple)."""
        i = torch.randint(0, self.path.T, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        c = self.path.coeffs_at_index(i)
        x_t = q_sample(x0, eps, c)
        t = (i + 1).float() / self.path.T
        target = from_x0_eps(x0, eps, self.cfg.prediction, c)
        loss = per_sample_mse(nets["model"](x_t, t, y), target).mean()
        return {"loss": loss}

    def model_fn(self, net: nn.Module, y: Tensor | None = None) -> ModelFn:
        return ModelFn(net, self.path, self.cfg.prediction, y)

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               sampler: str | None = None, steps: int | None = None, noise=None) -> SolverResult:
        """Draw images from x_init ~ N(0, I): ``ancestral`` (Algorithm 2, T steps) or ``ddim``."""
        sampler = self.cfg.sampler if sampler in (None, "default") else sampler
        fn = self.model_fn(nets["model"], y)
        noise = noise or default_noise
        abar = self.path.alphas_cumprod
        if sampler == "ancestral":
            return sample_ddpm(fn.denoise, x_init, abar, noise)
        if sampler == "ddim":
            n = min(steps or self.cfg.sample_steps, self.path.T)
            return sample_ddim(fn.denoise, x_init, abar, ddpm_timesteps(self.path.T, n), self.cfg.eta, noise)
        raise ValueError(f"diffusion has no sampler {sampler!r}; choose ancestral or ddim")
