"""Differentiable augmentation for a GAN's discriminator, applied to reals and fakes in both players'
updates: DiffAugment (Zhao et al. 2020) and ADA (Karras et al. 2020). ``build_augment(cfg)`` gives an
object with ``__call__(x, draws)``, ``observe(signs, global_batch)`` (ADA's p controller), ``log()``
(values for the training log) and ``state_dict``/``load_state_dict`` (part of the checkpoint).

:data:`OPS` names each kind's operations; ``genbench.config.AUGMENT_OPS`` is its torch-free mirror
(tests/test_gan_stability.py holds the two equal).
"""

from __future__ import annotations

from genbench.augment.ada import GROUPS, AdaptiveAugment
from genbench.augment.base import NoAugment
from genbench.augment.diffaug import POLICY, DiffAugment
from genbench.config import AugmentConfig

OPS: dict[str, tuple[str, ...]] = {"diffaug": tuple(POLICY), "ada": tuple(GROUPS)}


def build_augment(cfg: AugmentConfig) -> NoAugment | DiffAugment | AdaptiveAugment:
    if cfg.kind == "diffaug":
        return DiffAugment(cfg.ops, cfg.p)
    if cfg.kind == "ada":
        return AdaptiveAugment(cfg)
    return NoAugment()


__all__ = ["OPS", "AdaptiveAugment", "DiffAugment", "NoAugment", "build_augment"]
