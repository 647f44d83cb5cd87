"""MeanFlow (Geng et al. 2025, "Mean Flows for One-step Generative Modeling"): one- and few-step
generation trained from scratch on genbench's linear flow path.

The average velocity of the flow between times r < t is u(z_t, r, t) = 1/(t - r) int_r^t v(z_s, s) ds
(Eq. 3); differentiating (t - r) u = int_r^t v ds in t gives the MeanFlow identity (Eq. 6)

    u(z_t, r, t) = v(z_t, t) - (t - r) d/dt u(z_t, r, t),

whose total derivative along the flow, d/dt u = v du/dz + du/dt (Eq. 8), is one Jacobian-vector
product of the network with tangent (v, 0, 1) in (z, r, t). Training regresses u_theta on the
stop-gradient target u_tgt = v - (t - r) sg(d/dt u_theta) (Eq. 10), with the conditional velocity
v = eps - x0 of the path standing in for the marginal one (Sec. 4.1). With r = t the target is v and
the loss is flow matching's, exactly.

(t, r): two logit-normal draws (r's may have its own mean and std), t the larger, and r = t for all
but a fraction ``ratio_r_neq_t`` of the batch (Sec. 4.3, Table 1a). Loss weight w = sg(1 / (||err||^2 + c)^p) (Sec. 4.3; ||.||^2 here is
the per-sample *mean* square, genbench's per_sample_mse), so p = 1 makes each sample's loss about 1.

Under torchrun the tangent is computed on the unwrapped module without gradient (torch.func.jvp
through DDP would either fail or skip the gradient all-reduce), and the gradient-carrying forward
goes through the DDP wrapper; both passes see the same dropout masks (the RNG is forked around the
first). One sampling step is z_r = z_t - (t - r) u(z_t, r, t) (Eq. 12): the ``meanflow`` solver;
every other solver samples the instantaneous velocity u(z, t, t), a flow model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from genbench.config import PLAYERS
from genbench.methods.flow import Flow
from genbench.methods.guidance import counted, guide
from genbench.methods.labels import drop_labels
from genbench.methods.model_fn import ModelFn, per_sample_mse
from genbench.paths import broadcast, from_x0_eps, q_sample
from genbench.randomness import default_noise
from genbench.solvers import SolverResult, solve


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the net itself)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


class MeanFlowFn(ModelFn):
    """A flow model at r = t for every denoising solver, and ``average(z, r, t)`` for the meanflow one."""

    def average(self, z: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self.net(z, t, self.y, r).float()


def total_derivative(net: nn.Module, z: Tensor, r: Tensor, t: Tensor, v: Tensor, y: Tensor | None) -> Tensor:
    """d/dt u(z_t, r, t) = v du/dz + du/dt: the JVP with tangent (v, 0, 1) in (z, r, t), computed without
    a graph (it only enters the target, under stop-gradient). The global RNG is forked, so dropout
    draws in the caller's next forward the masks drawn here. Attention runs on PyTorch's math kernel
    here: the fused CPU/GPU kernels have no forward-mode derivative."""
    devices = [z.device] if z.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        _, dudt = torch.func.jvp(lambda z_, r_, t_: net(z_, t_, y, r_), (z, r, t),
                                 (v, torch.zeros_like(r), torch.ones_like(t)))
    return dudt


class MeanFlow(Flow):
    """Flow matching's path, denoiser and solvers (MeanFlow at r = t is a flow model), with MeanFlow's loss
    and its own few-step sampler."""

    players = PLAYERS["meanflow"]

    def sample_times(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """(t, r) per sample: t >= r, both logit-normal, r = t outside a fraction ratio_r_neq_t."""
        c = self.cfg
        a = torch.sigmoid(c.time_mean + c.time_std * self.draws.randn(x0, ()))
        mean = c.time_mean if c.r_mean is None else c.r_mean
        b = torch.sigmoid(mean + (c.r_std or c.time_std) * self.draws.randn(x0, ()))
        keep = self.draws.rand(x0) < c.ratio_r_neq_t
        t = torch.maximum(a, b)
        return t, (torch.where(keep, torch.minimum(a, b), t) if c.ratio_r_neq_t > 0 else t)

    def adaptive_weight(self, err: Tensor) -> Tensor:
        """w = 1 / (err + c)^p, no gradient (p = 0: plain squared error)."""
        if self.cfg.adaptive_p == 0:
            return torch.ones_like(err)
        return (err.detach() + self.cfg.adaptive_c).pow(-self.cfg.adaptive_p)

    def loss_at(self, net: nn.Module, x0: Tensor, eps: Tensor, t: Tensor, r: Tensor,
                y: Tensor | None) -> dict[str, Tensor]:
        """The loss at given noise and times (``loss`` draws them); ``net`` may be DDP-wrapped."""
        c = self.path.coeffs(t)
        z = q_sample(x0, eps, c)
        v = from_x0_eps(x0, eps, "velocity", c)
        if r is t:   # r = t throughout (ratio_r_neq_t = 0): the target is v, flow matching's; no JVP
            target = v
        else:
            target = v - broadcast(t - r, v) * total_derivative(unwrap(net), z, r, t, v, y)
        u = net(z, t, y, r)
        err = per_sample_mse(u, target)
        return {"loss": (self.adaptive_weight(err) * err).mean(), "mse": err.mean().detach()}

    def loss(self, nets: dict[str, nn.Module], player: str, x0: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        t, r = self.sample_times(x0)
        eps = self.draws.randn(x0)
        y = drop_labels(y, self.cfg.label_dropout, self.num_classes, self.draws)
        return self.loss_at(nets["model"], x0, eps, t, r, y)

    def model_fn(self, net: nn.Module, y: Tensor | None = None) -> MeanFlowFn:
        return MeanFlowFn(net, self.path, "velocity", y)

    def sample(self, nets: dict[str, nn.Module], x_init: Tensor, y: Tensor | None = None,
               solver: str | None = None, nfe: int | None = None, noise=None, **opts) -> SolverResult:
        """One or a few MeanFlow steps (default: 1, the paper's 1-NFE generation), or any flow solver
        on the instantaneous velocity u(z, t, t)."""
        solver = self.cfg.solver if solver in (None, "default") else solver
        if solver != "meanflow":
            return super().sample(nets, x_init, y, solver, nfe, noise, **opts)
        if opts.pop("clip", None):
            raise ValueError("the meanflow solver forms no x0 prediction to clip; use clip none")
        model = guide(self.model_fn, nets["model"], y, opts.pop("guidance", None), self.path)
        return counted(solve(solver, model, self.path, x_init, nfe or self.cfg.nfe, noise or default_noise, **opts),
                       model)
