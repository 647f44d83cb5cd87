"""Flow matching on the linear (conditional-OT / rectified-flow) path with velocity regression.

Lipman et al. 2022 (Eq. 22-23, with sigma_min) and Liu et al. 2022: regress
u_t = d/dt x_t = -x_0 + (1 - sigma_min) eps at x_t = (1 - t) x_0 + (sigma_min + (1 - sigma_min) t) eps,
t ~ U(0, 1); sample by integrating dx/dt = u(x, t) from t=1 (noise) to t=0 (data).
"""

from __future__ import annotations

from torch import Tensor, nn

from genbench.config import PLAYERS, FlowConfig
from genbench.methods.model_fn import ModelFn, clip_x0, per_sample_mse
from genbench.paths import LinearPath, from_x0_eps, q_sample
from genbench.randomness import LOCAL, default_noise
from genbench.solvers import SolverResult, solve


class Flow:
    players = PLAYERS["flow"]
    updates = ("model",)
    data_players = ("model",)
    sample_player = "model"
    draws = LOCAL             # per-sample noise; the training loop installs a rank-aware one

    def __init__(self, cfg: FlowConfig):
        self.cfg = cfg
        self.path = LinearPath(cfg.sigma_min)

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return tuple(data_shape)

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        t = self.draws.rand(x0)
        eps = self.draws.randn(x0)
        c = self.path.coeffs(t)
        x_t = q_sample(x0, eps, c)
        target = from_x0_eps(x0, eps, "velocity", c)
        return {"loss": per_sample_mse(nets["model"](x_t, t, y), target).mean()}

    def model_fn(self, net: nn.Module, y: Tensor | None = None) -> ModelFn:
        return ModelFn(net, self.path, "velocity", y)

    def denoiser(self, net: nn.Module, y: Tensor | None = None, clip: str | None = None):
        """``denoise(x_t, t) -> (x0, eps)`` for the solvers, with x0 clipping if asked (:func:`clip_x0`)."""
        denoise = self.model_fn(net, y).denoise
        return clip_x0(denoise, self.path, clip) if clip else denoise

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """Integrate from t=1 to 0 with any ODE/SDE solver of :mod:`genbench.solvers` (default Euler)."""
        solver = self.cfg.solver if solver in (None, "default") else solver
        return solve(solver, self.denoiser(nets["model"], y, opts.pop("clip", None)), self.path, x_init,
                     None if solver == "dopri5" else (nfe or self.cfg.nfe), noise or default_noise, **opts)
