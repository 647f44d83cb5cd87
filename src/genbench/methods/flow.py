"""Flow matching on the linear (conditional-OT / rectified-flow) path with velocity regression.

Lipman et al. 2022 (Eq. 22-23, with sigma_min) and Liu et al. 2022: regress
u_t = d/dt x_t = -x_0 + (1 - sigma_min) eps at x_t = (1 - t) x_0 + (sigma_min + (1 - sigma_min) t) eps,
t ~ U(0, 1); sample by integrating dx/dt = u(x, t) from t=1 (noise) to t=0 (data).
"""

from __future__ import annotations

from torch import Tensor, nn

from genbench.config import PLAYERS, FlowConfig
from genbench.methods.guidance import counted, guide
from genbench.methods.labels import drop_labels
from genbench.methods.model_fn import ModelFn, per_sample_mse, with_clip
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
        self.num_classes: int | None = None   # a conditional run's class count, set by the training state

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return tuple(data_shape)

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        t = self.draws.rand(x0)
        eps = self.draws.randn(x0)
        c = self.path.coeffs(t)
        x_t = q_sample(x0, eps, c)
        target = from_x0_eps(x0, eps, "velocity", c)
        y = drop_labels(y, self.cfg.label_dropout, self.num_classes, self.draws)
        return {"loss": per_sample_mse(nets["model"](x_t, t, y), target).mean()}

    def model_fn(self, net: nn.Module, y: Tensor | None = None) -> ModelFn:
        return ModelFn(net, self.path, "velocity", y)

    def denoiser(self, net: nn.Module, y: Tensor | None = None, clip: str | None = None):
        """``denoise(x_t, t) -> (x0, eps)`` for the solvers, with x0 clipping if asked (:func:`clip_x0`)."""
        return with_clip(self.model_fn(net, y).denoise, self.path, clip)

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """Integrate from t=1 to 0 with any ODE/SDE solver of :mod:`genbench.solvers` (default Euler)."""
        solver = self.cfg.solver if solver in (None, "default") else solver
        model = guide(self.model_fn, nets["model"], y, opts.pop("guidance", None), self.path)
        return counted(solve(solver, with_clip(model.denoise, self.path, opts.pop("clip", None)), self.path, x_init,
                             None if solver == "dopri5" else (nfe or self.cfg.nfe), noise or default_noise, **opts),
                       model)
