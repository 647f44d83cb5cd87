"""Classifier-free guidance (Ho & Salimans 2022) for every solver of the library, optionally only inside a
noise interval (Kynkaanniemi et al. 2024).

Convention (EDM2's and diffusers' ``guidance_scale``): with scale w the guided prediction is
D_w = D_u + w (D_c - D_u), where D_c is the model given the class and D_u the same network given the
"no label" token it learnt under label dropout. w = 1 is the conditional model and w = 0 the
unconditional one. Ho & Salimans' Eq. 6 writes the same rule as (1 + w') D_c - w' D_u, so their w' is
w - 1 here (their w' = 1, 3, 5 are w = 2, 4, 6).

What is guided is whatever the solvers read: x0 and eps of ``denoise(x_t, t)`` and MeanFlow's average
velocity ``average(z, r, t)``. Each is affine in the network output at fixed (x_t, t) with weights that sum
to one, so guiding them is guiding the network output, for DDPM, EDM, flow, MeanFlow and consistency
models alike. Inference-time guidance of MeanFlow's average velocity is genbench's extension (the MeanFlow
paper trains guidance into the network instead).

Interval: with ``interval = (lo, hi)`` guidance applies only where the noise level sigma = sigma_t / alpha_t
(EDM's sigma; for any Gaussian path, the noise level of x_t / alpha_t) lies in (lo, hi]; elsewhere the
conditional prediction alone is used (Kynkaanniemi et al. 2024, Eq. 2-3: EDM2-S on ImageNet-512 guided in
(0.28, 5.42]).

Cost, counted honestly: a guided call evaluates the network once on a batch of 2N (the N conditional rows
and the same x_t with the "no label" token), which costs two network evaluations per sample and is counted
as 2 NFE; a call outside the interval, or any call at w = 1 (the conditional model) or w = 0 (the
unconditional one), costs 1. A sample's reported NFE is the solver's plus the extra guided evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genbench.solvers import SolverResult


@dataclass(frozen=True)
class Guidance:
    scale: float                                  # w: 1 = conditional, 0 = unconditional
    null_label: int                               # the "no label" token (the net's num_classes)
    interval: tuple[float, float] | None = None   # guide only where sigma in (lo, hi]

    def describe(self) -> dict:
        return {"scale": self.scale, "interval_sigma": list(self.interval) if self.interval else None,
                "convention": "D_u + w (D_c - D_u); w = 1 conditional, w = 0 unconditional",
                "cost": "one batched call of 2N per guided step, counted as 2 NFE"}


class Guided:
    """A model function (``denoise`` and, if the wrapped one has it, ``average``) guided with scale w."""

    def __init__(self, make: Callable, net, y: Tensor, guidance: Guidance, path):
        self.cond = make(net, y)
        self.both = make(net, torch.cat([y, torch.full_like(y, guidance.null_label)]))
        self.w, self.interval, self.path = guidance.scale, guidance.interval, path
        self.extra = 0   # guided calls made, each one network evaluation more than the solver counts
        if callable(getattr(self.cond, "average", None)):
            self.average = self._average

    def _on(self, t: Tensor) -> bool:
        """Whether time t (shared by the batch, as every solver steps it) lies in the guidance interval."""
        if self.interval is None:
            return True
        c = self.path.coeffs(t[:1].double())
        sigma = float(c.sigma / c.alpha)
        return self.interval[0] < sigma <= self.interval[1]

    def _mix(self, both: Tensor) -> Tensor:
        cond, uncond = both.chunk(2)
        return uncond + self.w * (cond - uncond)

    def denoise(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if not self._on(t):
            return self.cond.denoise(x_t, t)
        self.extra += 1
        x0, eps = self.both.denoise(torch.cat([x_t, x_t]), torch.cat([t, t]))
        return self._mix(x0), self._mix(eps)

    def _average(self, z: Tensor, r: Tensor, t: Tensor) -> Tensor:
        if not self._on(t):
            return self.cond.average(z, r, t)
        self.extra += 1
        return self._mix(self.both.average(torch.cat([z, z]), torch.cat([r, r]), torch.cat([t, t])))


def guide(make: Callable, net, y: Tensor | None, guidance: Guidance | None, path):
    """``make(net, y)`` (a method's ``model_fn``), guided when ``guidance`` asks for it: w = 1 gives the
    conditional model itself and w = 0 the model given the "no label" token, each with one evaluation."""
    if guidance is None or guidance.scale == 1:
        return make(net, y)
    if y is None:
        raise ValueError("guidance needs the class labels of the samples")
    if guidance.scale == 0:
        return make(net, torch.full_like(y, guidance.null_label))
    return Guided(make, net, y, guidance, path)


def counted(result: SolverResult, model) -> SolverResult:
    """The solver's result with the guided calls' extra evaluations added to its NFE."""
    return SolverResult(result.x, result.nfe + getattr(model, "extra", 0))
