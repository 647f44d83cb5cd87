"""Easy Consistency Tuning (Geng et al. 2024, "Consistency Models Made Easy"): a consistency model
tuned from a trained flow or EDM run, no JVP.

The consistency function is the teacher's own x0 prediction, f(x_t, t) = x0_hat(x_t, t): for a flow
model x_t - t v(x_t, t), for EDM c_skip x + c_out F (Karras et al. 2022, Table 1). Both meet the
boundary condition f(x, 0) = x exactly (t v vanishes at t = 0; EDM's c_skip(0) = 1, c_out(0) = 0), and
here f is x itself at t = 0, so it holds whatever the network outputs there. Tuning starts from the
teacher's EMA weights (``train.init_from``), which already make f a good denoiser.

Training (ECT Sec. 3): noise levels sigma (sigma / alpha of the path) ~ log-normal(P_mean, P_std); the
earlier level r of the same trajectory from the mapping r = t (1 - n(t) / q^a), n(t) = 1 + k sigmoid(-b t),
a = step // stage_steps, clamped at 0, in sigma units (Eq. 11): at a = 0, r = 0 and the target is the
clean x0 (the diffusion loss); every stage halves t - r (q = 2), moving r towards t. The loss compares
f(x_t, t) with the stop-gradient f(x_r, r) on the same noise, x_t = alpha_t x0 + sigma_t n, by the
pseudo-Huber metric sqrt(||a - b||^2 + c^2) - c (Song & Dhariwal 2023, Sec. 3.3; c = 0.00054 sqrt(d)),
weighted by 1 / (t - r) in sigma units (ECT Sec. 3.3). Sampling: the ``consistency`` solver, one
evaluation (or k with re-noising); every other solver samples the tuned model as the teacher's kind.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genbench.config import PLAYERS, ECTConfig, EDMConfig, FlowConfig
from genbench.methods.edm import EDM
from genbench.methods.flow import Flow
from genbench.methods.guidance import counted, guide
from genbench.methods.labels import drop_labels
from genbench.methods.model_fn import with_clip
from genbench.paths import LinearPath, VEPath, q_sample
from genbench.randomness import LOCAL, default_noise
from genbench.solvers import SolverResult, solve

HUBER_C = 0.00054   # c = 0.00054 sqrt(d) (Song & Dhariwal 2023, Sec. 3.3)


def t_of_sigma(path, sigma: Tensor) -> Tensor:
    """The time of the path at which sigma_t / alpha_t = sigma (the flow path with sigma_min = 0:
    t / (1 - t); the VE path: sigma_max t), inside (0, t_max]."""
    if isinstance(path, VEPath):
        t = sigma / path.sigma_max
    elif isinstance(path, LinearPath) and path.sigma_min == 0:
        t = sigma / (1 + sigma)
    else:
        raise ValueError("consistency tuning needs the flow path with sigma_min = 0 or EDM's VE path")
    return t.clamp(max=path.t_max)


def ect_r(sigma_t: Tensor, stage: int, q: float, k: float, b: float) -> Tensor:
    """r = t (1 - n(t) / q^stage), n(t) = 1 + k sigmoid(-b t), clamped at 0 (ECT Eq. 11), in sigma units."""
    n = 1 + k * torch.sigmoid(-b * sigma_t)
    return (sigma_t * (1 - n / q**stage)).clamp(min=0)


def pseudo_huber(a: Tensor, b: Tensor, c: float) -> Tensor:
    """sqrt(||a - b||^2 + c^2) - c per sample (the squared norm over all dimensions), in float32."""
    d2 = (a.float() - b.float()).pow(2).flatten(1).sum(1)
    return (d2 + c * c).sqrt() - c


class ECT:
    players = PLAYERS["ect"]
    updates = ("model",)
    data_players = ("model",)
    sample_player = "model"
    draws = LOCAL             # per-sample noise; the training loop installs a rank-aware one
    step = 0                  # the training step, set by the loop before each update (the stage of r(t))

    def __init__(self, cfg: ECTConfig):
        self.cfg = cfg
        self.teacher = (Flow(FlowConfig(sigma_min=0.0)) if cfg.base == "flow" else
                        EDM(EDMConfig(sigma_data=cfg.sigma_data, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)))
        self.path = self.teacher.path
        self.scale = cfg.sigma_max if cfg.base == "edm" else 1.0   # x_init ~ N(0, I) times this at t = 1
        self.num_classes: int | None = None   # a conditional run's class count, set by the training state

    def latent_shape(self, data_shape: tuple[int, ...], nets: dict[str, nn.Module]) -> tuple[int, ...]:
        return tuple(data_shape)

    def consistency(self, net: nn.Module, x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        """f(x, t): the teacher-parameterised x0 prediction, exactly x at t = 0."""
        safe = torch.where(t > 0, t, torch.full_like(t, self.path.t_min))
        x0 = self.teacher.model_fn(net, y).denoise(x, safe)[0]
        return torch.where((t > 0).view(-1, *([1] * (x.dim() - 1))), x0.to(x.dtype), x)

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        c = self.cfg
        sigma = (c.P_mean + c.P_std * self.draws.randn(x0, ())).exp()
        t = t_of_sigma(self.path, sigma)
        ct = self.path.coeffs(t)
        sigma = ct.sigma / ct.alpha            # the level t stands for (after clamping at t_max)
        sigma_r = ect_r(sigma, self.step // c.stage_steps, c.q, c.k, c.b)
        r = torch.where(sigma_r > 0, t_of_sigma(self.path, sigma_r.clamp(min=1e-12)), torch.zeros_like(t))
        noise = self.draws.randn(x0)
        y = drop_labels(y, self.cfg.label_dropout, self.num_classes, self.draws)   # one label for f(x_t) and f(x_r)
        net = nets["model"]
        with torch.no_grad():
            target = self.consistency(net, q_sample(x0, noise, self.path.coeffs(r)), r, y)
        pred = self.consistency(net, q_sample(x0, noise, ct), t, y)
        c_huber = c.huber_c if c.huber_c is not None else HUBER_C * math.sqrt(x0[0].numel())
        dist = pseudo_huber(pred, target, c_huber)
        return {"loss": (dist / (sigma - sigma_r).clamp(min=1e-8)).mean(), "dt": (sigma - sigma_r).mean().detach()}

    def denoiser(self, net: nn.Module, y: Tensor | None = None, clip: str | None = None):
        """The teacher-kind denoiser (its x0 is the consistency function at t > 0)."""
        return self.teacher.denoiser(net, y, clip)

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """One consistency step from t_max (default), k with re-noising, or any solver of the teacher's path."""
        solver = self.cfg.solver if solver in (None, "default") else solver
        model = guide(self.teacher.model_fn, nets["model"], y, opts.pop("guidance", None), self.path)
        return counted(solve(solver, with_clip(model.denoise, self.path, opts.pop("clip", None)), self.path,
                             x_init * self.scale, None if solver == "dopri5" else (nfe or self.cfg.nfe),
                             noise or default_noise, **opts), model)
