"""Any backbone as a denoiser, with one signature.

Like EDM's ``*Precond`` wrappers: the parameterisation lives here, not in the network or in
the solver, so a solver sees ``denoise(x_t, t) -> (x0, eps)`` for
every diffusion or flow model alike.
"""

from __future__ import annotations

from torch import Tensor, nn

from genbench.paths import Prediction, to_x0_eps


class ModelFn:
    def __init__(self, net: nn.Module, path, prediction: Prediction, y: Tensor | None = None):
        self.net, self.path, self.prediction, self.y = net, path, prediction, y

    def raw(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.net(x_t, t, self.y).float()

    def denoise(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return to_x0_eps(self.raw(x_t, t), self.prediction, x_t, self.path.coeffs(t))


def per_sample_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per sample, in float32 even under bf16 autocast."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(1)
