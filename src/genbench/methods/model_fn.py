"""Any backbone as a denoiser, with one signature.

Like EDM's ``*Precond`` wrappers: the parameterisation lives here, not in the network or in
the solver, so a solver sees ``denoise(x_t, t) -> (x0, eps)`` for
every diffusion or flow model alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genbench.config import CLIP_MODES
from genbench.paths import Prediction, broadcast, to_x0_eps


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


def edm_precond(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """c_skip, c_out, c_in, c_noise of Karras et al. 2022, Table 1 ("EDM" column), per sample."""
    var = sigma**2 + sigma_data**2
    return sigma_data**2 / var, sigma * sigma_data / var.sqrt(), 1 / var.sqrt(), sigma.log() / 4


# The VP column of Table 1 (Song et al. 2021's VP SDE): sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1).
VP_BETA_D, VP_BETA_MIN = 19.9, 0.1


def vp_sigma(t: Tensor) -> Tensor:
    return torch.expm1(0.5 * VP_BETA_D * t**2 + VP_BETA_MIN * t).sqrt()


def vp_sigma_inv(sigma: Tensor) -> Tensor:
    """t = sigma^-1(sigma) = (sqrt(beta_min^2 + 2 beta_d ln(sigma^2 + 1)) - beta_min) / beta_d (Table 1)."""
    return ((VP_BETA_MIN**2 + 2 * VP_BETA_D * torch.log1p(sigma**2)).sqrt() - VP_BETA_MIN) / VP_BETA_D


def precond(kind: str, sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """c_skip, c_out, c_in, c_noise of one column of Karras et al. 2022, Table 1: ``edm``, ``vp`` or ``ve``.

    VP: c_skip = 1, c_out = -sigma, c_in = 1 / sqrt(sigma^2 + 1), c_noise = (M - 1) sigma^-1(sigma) with
    M = 1000; genbench's networks take time in [0, 1] and scale it by 1000 themselves
    (:data:`genbench.nets.embedding.TIME_SCALE`), so they are given sigma^-1(sigma). VE: c_skip = 1,
    c_out = sigma, c_in = 1, c_noise = ln(sigma / 2).
    """
    one = torch.ones_like(sigma)
    if kind == "edm":
        return edm_precond(sigma, sigma_data)
    if kind == "vp":
        return one, -sigma, (sigma**2 + 1).rsqrt(), vp_sigma_inv(sigma)
    if kind == "ve":
        return one, sigma, one, (sigma / 2).log()
    raise ValueError(f"unknown preconditioning {kind!r}; choose edm, vp or ve")


def _eps_coeffs(kind: str, sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor]:
    """a, b with eps = (x - D) / sigma = a x - b F, in closed form (no cancellation at small sigma)."""
    if kind == "edm":
        var = sigma**2 + sigma_data**2
        return sigma / var, sigma_data / var.sqrt()
    zero, one = torch.zeros_like(sigma), torch.ones_like(sigma)
    return (zero, -one) if kind == "vp" else (zero, one)


class EDMPrecond:
    """EDM's preconditioned denoiser D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (Karras et al.
    2022, Eq. 7) around any backbone F = ``net(x, t, y)``, which receives c_noise as its time input, with
    the coefficients of one column of Table 1 (:func:`precond`; default ``edm``). On the VE path
    x = x_0 + sigma eps, so ``denoise`` also gives eps = (x - D) / sigma, formed without the cancellation
    of that difference at small sigma (for EDM: eps = sigma / (sigma^2 + sigma_data^2) x -
    sigma_data / sqrt(sigma^2 + sigma_data^2) F; for VP eps = F, for VE eps = -F)."""

    def __init__(self, net: nn.Module, path, sigma_data: float, y: Tensor | None = None, kind: str = "edm"):
        self.net, self.path, self.sigma_data, self.y, self.kind = net, path, sigma_data, y, kind

    def _net(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """F(c_in x; c_noise), with c_skip and c_out shaped to multiply x."""
        c_skip, c_out, c_in, c_noise = precond(self.kind, sigma.float(), self.sigma_data)
        out = self.net(broadcast(c_in, x) * x, c_noise, self.y).float()
        return out, broadcast(c_skip, x), broadcast(c_out, x)

    def denoise_sigma(self, x: Tensor, sigma: Tensor) -> Tensor:
        out, c_skip, c_out = self._net(x, sigma)
        return c_skip * x + c_out * out

    def denoise(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        sigma = self.path.sigma(t.float())
        out, c_skip, c_out = self._net(x_t, sigma)
        a, b = _eps_coeffs(self.kind, sigma.float(), self.sigma_data)
        eps = broadcast(a, x_t) * x_t - broadcast(b, x_t) * out
        return c_skip * x_t + c_out * out, eps


DYNAMIC_PERCENTILE = 0.995   # Saharia et al. 2022, Sec. 2.3 (their p)


def clip_x0(denoise, path, mode: str, percentile: float = DYNAMIC_PERCENTILE):
    """A denoiser whose x0 prediction is kept in the data range [-1, 1], for every solver that forms x0.

    ``static``: x0 clamped to [-1, 1], as Ho et al. 2020's sampler (``clip_denoised``) and diffusers'
    schedulers (``clip_sample``) do. ``dynamic``: dynamic thresholding (Saharia et al. 2022, Sec. 2.3):
    per sample s = max(1, the ``percentile`` quantile of |x0|), x0 clamped to [-s, s] and divided by s.
    eps is recomputed from the clipped x0 on the path, eps = (x_t - alpha_t x0) / sigma_t, so the solver
    moves towards the clipped prediction.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"unknown clip mode {mode!r}; choose from {CLIP_MODES}")

    def clipped(x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        x0, eps = denoise(x_t, t)
        if mode == "static":
            x0c = x0.clamp(-1, 1)
        else:
            s = x0.detach().abs().flatten(1).quantile(percentile, dim=1).clamp(min=1)
            s = broadcast(s, x0)
            x0c = torch.maximum(torch.minimum(x0, s), -s) / s
        c = path.coeffs(t)
        sigma = broadcast(c.sigma, x_t)
        eps = torch.where(sigma > 0, (x_t - broadcast(c.alpha, x_t) * x0c) / sigma.clamp(min=1e-20), eps)
        return x0c, eps

    return clipped


def with_clip(denoise, path, clip: str | None):
    """``denoise`` with its x0 kept in range by :func:`clip_x0` when ``clip`` names a mode."""
    return clip_x0(denoise, path, clip) if clip else denoise
