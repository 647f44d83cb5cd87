"""DDPM (Ho et al. 2020) with linear or cosine schedule and eps / x0 / v prediction."""

from __future__ import annotations

from torch import Tensor, nn

from genbench.config import PLAYERS, DiffusionConfig
from genbench.methods.guidance import counted, guide
from genbench.methods.labels import drop_labels
from genbench.methods.model_fn import ModelFn, per_sample_mse, with_clip
from genbench.paths import DiscreteVP, cosine_betas, from_x0_eps, linear_betas, q_sample
from genbench.randomness import LOCAL, default_noise
from genbench.solvers import SolverResult, solve


class Diffusion:
    players = PLAYERS["diffusion"]
    updates = ("model",)      # one update of the model per training step
    data_players = ("model",)  # players whose updates consume real images
    sample_player = "model"
    draws = LOCAL             # per-sample noise; the training loop installs a rank-aware one

    def __init__(self, cfg: DiffusionConfig):
        self.cfg = cfg
        betas = (linear_betas(cfg.T, cfg.beta_start, cfg.beta_end) if cfg.schedule == "linear"
                 else cosine_betas(cfg.T, cfg.cosine_s))
        self.path = DiscreteVP(betas)
        self.num_classes: int | None = None   # a conditional run's class count, set by the training state

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return tuple(data_shape)

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        """Algorithm 1 of Ho et al.: t ~ U{1..T}, eps ~ N(0, I), regress the chosen target (L_simple)."""
        i = self.draws.randint(self.path.T, x0)
        eps = self.draws.randn(x0)
        c = self.path.coeffs_at_index(i)
        x_t = q_sample(x0, eps, c)
        t = (i + 1).float() / self.path.T
        target = from_x0_eps(x0, eps, self.cfg.prediction, c)
        y = drop_labels(y, self.cfg.label_dropout, self.num_classes, self.draws)   # Ho & Salimans 2022, Alg. 1
        loss = per_sample_mse(nets["model"](x_t, t, y), target).mean()
        return {"loss": loss}

    def model_fn(self, net: nn.Module, y: Tensor | None = None) -> ModelFn:
        return ModelFn(net, self.path, self.cfg.prediction, y)

    def denoiser(self, net: nn.Module, y: Tensor | None = None, clip: str | None = None):
        """``denoise(x_t, t) -> (x0, eps)`` for the solvers, with x0 clipping if asked (:func:`clip_x0`)."""
        return with_clip(self.model_fn(net, y).denoise, self.path, clip)

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """Draw images from x_init ~ N(0, I) with any solver of :mod:`genbench.solvers`.

        Default: ancestral sampling over all T steps (Algorithm 2 of Ho et al.).
        """
        solver = self.cfg.solver if solver in (None, "default") else solver
        nfe = nfe or self.cfg.nfe or (self.path.T if solver == "ddpm" else None)
        if solver == "ddim":
            opts.setdefault("eta", self.cfg.eta)
        model = guide(self.model_fn, nets["model"], y, opts.pop("guidance", None), self.path)
        return counted(solve(solver, with_clip(model.denoise, self.path, opts.pop("clip", None)), self.path, x_init,
                             None if solver == "dopri5" else nfe, noise or default_noise, **opts), model)
