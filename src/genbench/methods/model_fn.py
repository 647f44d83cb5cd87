"""Any backbone as a denoiser and a velocity field, with one signature.

Like EDM's ``*Precond`` wrappers: the parameterisation lives here, not in the network or in
the solver, so a solver sees ``denoise(x_t, t) -> (x0, eps)`` and ``velocity(x_t, t)`` for
every diffusion or flow model alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genbench.methods.parametrization import Prediction, from_x0_eps, to_x0_eps


class ModelFn:
    def __init__(self, net: nn.Module, path, prediction: Prediction, y: Tensor | None = None):
        self.net, self.path, self.prediction, self.y = net, path, prediction, y

    def raw(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.net(x_t, t, self.y).float()

    def denoise(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return to_x0_eps(self.raw(x_t, t), self.prediction, x_t, self.path.coeffs(t))

    def velocity(self, x_t: Tensor, t: Tensor) -> Tensor:
        pred = self.raw(x_t, t)
        if self.prediction == "velocity":
            return pred
        c = self.path.coeffs(t)
        return from_x0_eps(*to_x0_eps(pred, self.prediction, x_t, c), "velocity", c)


def per_sample_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per sample, in float32 even under bf16 autocast."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(1)


def no_noise(x: Tensor) -> Tensor:  # pragma: no cover - guard for deterministic solvers
    raise RuntimeError("this sampler needs a noise source")


def default_noise(x: Tensor) -> Tensor:
    return torch.randn_like(x)
