"""ADA: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data").

The pipeline (Sec. 2, Fig. 2; App. B.1 for the distributions), every operation drawn per sample with
the same probability p, images in [-1, 1]:

- ``blit``: x-flip, rotation by a multiple of 90 degrees, integer translation by up to 1/8 of the
  image (reflected border);
- ``geom``: isotropic scaling 2^N(0, 0.2^2), rotation U(-pi, pi), anisotropic scaling 2^N(0, 0.2^2),
  rotation again, fractional translation N(0, 0.125^2) of the image; the two rotations are each drawn
  with probability 1 - sqrt(1 - p), so that some rotation happens with probability p (App. B.1). The
  composed affine map is applied in one bilinear resampling with reflected borders (the paper
  resamples with a wavelet filter at 2x; bilinear keeps this small and differentiable);
- ``color``: brightness + N(0, 0.2^2), contrast x 2^N(0, 0.5^2), luma flip, hue rotation U(-pi, pi)
  about the luma axis and saturation x 2^N(0, 1) (both RGB only), one colour matrix per sample;
- ``cutout``: a square of half the image side set to zero (App. B.1's corruptions).

p is adjusted by the overfitting heuristic r_t = E[sign(D(x_real))] (Sec. 3, Eq. 1): every
``interval`` D updates, p += sign(r_t - target) * (images in those updates) / (speed_kimg * 1000),
kept in [0, 1]. With ``target`` None p is fixed, or, with ``p_kimg``, ramped from 0 to ``p`` over
that many images by a half cosine (R3GAN's augmentation schedule). p and the running sums are tensors on the device (no host wait) and part of the
checkpoint; under torchrun the sums are added over the ranks, so that every rank keeps the same p.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.augment.ops import choose, colour_transform, cutout, flip_rotate, translate, warp
from genbench.config import AugmentConfig
from genbench.randomness import BatchDraws


def _drawn(draws: BatchDraws, x: Tensor, p: Tensor) -> Tensor:
    return draws.rand(x) < p


def _normal(draws: BatchDraws, x: Tensor, std: float) -> Tensor:
    return draws.randn(x, (1,)).float().view(-1) * std


def blit(x: Tensor, draws: BatchDraws, p: Tensor) -> Tensor:
    flip = _drawn(draws, x, p) & (draws.randint(2, x) == 1)
    turns = torch.where(_drawn(draws, x, p), draws.randint(4, x), 0)
    if x.shape[2] != x.shape[3]:
        turns = torch.zeros_like(turns)   # quarter turns keep only a square image's shape
    moved = _drawn(draws, x, p)
    h, w = x.shape[2:]
    ty = torch.where(moved, ((draws.rand(x) * 2 - 1) * 0.125 * h).round().long(), 0)
    tx = torch.where(moved, ((draws.rand(x) * 2 - 1) * 0.125 * w).round().long(), 0)
    out = translate(flip_rotate(x, flip, turns), ty, tx, pad="reflect")
    return choose(flip | (turns > 0) | moved, out, x)


def _affine(n: int, device, a=None, b=None, c=None, d=None, tx=None, ty=None) -> Tensor:
    """(n, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] (missing entries from the identity)."""
    m = torch.eye(3, device=device).repeat(n, 1, 1)
    for (i, j), v in {(0, 0): a, (0, 1): b, (1, 0): c, (1, 1): d, (0, 2): tx, (1, 2): ty}.items():
        if v is not None:
            m[:, i, j] = v
    return m


def _rotation(theta: Tensor) -> Tensor:
    cos, sin = theta.cos(), theta.sin()
    return _affine(len(theta), theta.device, cos, -sin, sin, cos)


def geom(x: Tensor, draws: BatchDraws, p: Tensor) -> Tensor:
    n, dev = x.shape[0], x.device
    p_rot = 1 - torch.sqrt(1 - p)
    one = torch.ones(n, device=dev)

    def draw(prob: Tensor, value: Tensor, neutral: Tensor) -> tuple[Tensor, Tensor]:
        chosen = _drawn(draws, x, prob)
        return chosen, torch.where(chosen, value, neutral)

    s_on, s = draw(p, torch.exp2(_normal(draws, x, 0.2)), one)
    r1_on, r1 = draw(p_rot, (draws.rand(x) * 2 - 1) * math.pi, 0 * one)
    a_on, a = draw(p, torch.exp2(_normal(draws, x, 0.2)), one)
    r2_on, r2 = draw(p_rot, (draws.rand(x) * 2 - 1) * math.pi, 0 * one)
    t_on, t = draw(p, _normal(draws, x, 0.125), 0 * one)
    t2 = torch.where(t_on, _normal(draws, x, 0.125), 0 * one)
    # in normalised coordinates a shift of a fraction f of the image is 2 f
    forward = (_affine(n, dev, tx=2 * t, ty=2 * t2) @ _rotation(r2) @ _affine(n, dev, a=a, d=1 / a)
               @ _rotation(r1) @ _affine(n, dev, a=s, d=s))
    return choose(s_on | r1_on | a_on | r2_on | t_on, warp(x, forward), x)


def colour(x: Tensor, draws: BatchDraws, p: Tensor) -> Tensor:
    """One homogeneous (C+1)x(C+1) colour matrix per sample, the drawn operations composed in order."""
    n, c, dev = x.shape[0], x.shape[1], x.device
    eye = torch.eye(c + 1, device=dev).repeat(n, 1, 1)
    last = torch.zeros(c + 1, c + 1, device=dev)
    last[c, c] = 1
    colours = eye - last                         # projects onto the colour coordinates
    v = torch.zeros(c + 1, device=dev)
    v[:c] = 1 / math.sqrt(c)                     # the luma axis (grey images: the one channel)
    vv = torch.outer(v, v)
    m, selected = eye, torch.zeros(n, dtype=torch.bool, device=dev)

    def then(op: Tensor) -> None:
        nonlocal m, selected
        on = _drawn(draws, x, p)
        m = torch.where(on.view(-1, 1, 1), op, eye) @ m
        selected = selected | on

    shift = eye.clone()
    shift[:, :c, c] = _normal(draws, x, 0.2).view(-1, 1)
    then(shift)                                                                        # brightness
    then(eye + (torch.exp2(_normal(draws, x, 0.5)) - 1).view(-1, 1, 1) * colours)      # contrast
    then(eye - 2 * vv * (draws.randint(2, x) == 1).float().view(-1, 1, 1))             # luma flip
    if c == 3:
        k = torch.zeros(4, 4, device=dev)        # [v]_x, the cross product with the luma axis
        k[0, 1], k[0, 2], k[1, 2] = -v[2], v[1], -v[0]
        k = k - k.T
        theta = ((draws.rand(x) * 2 - 1) * math.pi).view(-1, 1, 1)
        then(eye + theta.sin() * k + (1 - theta.cos()) * (k @ k))                     # hue (Rodrigues)
        sat = torch.exp2(_normal(draws, x, 1.0)).view(-1, 1, 1)
        then(vv + (colours - vv) * sat + last)                                         # saturation
    return choose(selected, colour_transform(x, m), x)


def cutout_half(x: Tensor, draws: BatchDraws, p: Tensor) -> Tensor:
    h, w = x.shape[2:]
    on = _drawn(draws, x, p)
    return choose(on, cutout(x, draws.randint(h, x), draws.randint(w, x), int(min(h, w) * 0.5 + 0.5)), x)


GROUPS = {"blit": blit, "geom": geom, "color": colour, "cutout": cutout_half}


class AdaptiveAugment:
    """``augment(x, draws)`` with the current p; ``observe`` feeds D's signs on reals and adjusts p."""

    def __init__(self, cfg: AugmentConfig):
        self.ops = [op for op in GROUPS if op in (cfg.ops or ("blit", "geom", "color"))]
        self.target, self.interval = cfg.target, cfg.interval
        self.speed_nimg = cfg.speed_kimg * 1000
        self.p_final, self.ramp_nimg = float(cfg.p or 0.0), (cfg.p_kimg * 1000 if cfg.p_kimg else None)
        self.p = torch.tensor(0.0 if self.ramp_nimg and self.target is None else self.p_final)
        self.sign_sum, self.sign_n = torch.zeros(()), torch.zeros(())
        self.updates = self.nimg = 0

    def _on(self, device: torch.device) -> None:
        if self.p.device != device:
            self.p, self.sign_sum, self.sign_n = (t.to(device) for t in (self.p, self.sign_sum, self.sign_n))

    def __call__(self, x: Tensor, draws: BatchDraws) -> Tensor:
        self._on(x.device)
        for op in self.ops:
            x = GROUPS[op](x, draws, self.p)
        return x

    def observe(self, signs: Tensor, global_batch: int) -> None:
        """Add one D update's sign(D(real)) (this rank's slice); every ``interval`` updates move p."""
        self._on(signs.device)
        self.nimg += global_batch
        if self.target is None:
            if self.ramp_nimg:
                frac = min(self.nimg / self.ramp_nimg, 1.0)
                self.p.fill_(self.p_final * 0.5 * (1 - math.cos(math.pi * frac)))
            return
        self.sign_sum += signs.detach().float().sum()
        self.sign_n += signs.numel()
        self.updates += 1
        if self.updates % self.interval:
            return
        sums = torch.stack([self.sign_sum, self.sign_n])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        r_t = sums[0] / sums[1].clamp(min=1)
        step = global_batch * self.interval / self.speed_nimg
        self.p = (self.p + torch.sign(r_t - self.target) * step).clamp(0.0, 1.0)
        self.sign_sum, self.sign_n = torch.zeros_like(self.sign_sum), torch.zeros_like(self.sign_n)

    def log(self) -> dict[str, Tensor]:
        return {"ada_p": self.p}

    def state_dict(self) -> dict:
        return {"p": self.p.clone(), "sign_sum": self.sign_sum.clone(), "sign_n": self.sign_n.clone(),
                "updates": self.updates, "nimg": self.nimg}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.sign_sum, self.sign_n = state["p"].clone(), state["sign_sum"].clone(), state["sign_n"].clone()
        self.updates, self.nimg = int(state["updates"]), int(state["nimg"])
