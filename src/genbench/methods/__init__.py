"""The families (GAN, DDPM and EDM diffusion, flow matching, MeanFlow, consistency tuning), each a small object: ``loss(nets, player, x, y)`` and ``sample(nets, x_init)``.

A method names its ``players`` (networks with their own optimiser; read from
:data:`genbench.config.PLAYERS`, the one definition), the ``updates`` made per training step (e.g.
n_critic D updates then one G update) and the ``sample_player`` whose EMA is sampled. The training
loop knows nothing else about it. :data:`METHODS` maps each ``method.kind`` to its class.
"""

from __future__ import annotations

from genbench.config import DiffusionConfig, ECTConfig, EDMConfig, FlowConfig, GANConfig, MeanFlowConfig
from genbench.methods.diffusion import Diffusion
from genbench.methods.ect import ECT
from genbench.methods.edm import EDM
from genbench.methods.flow import Flow
from genbench.methods.gan import GAN
from genbench.methods.meanflow import MeanFlow

Method = GAN | Diffusion | Flow | EDM | MeanFlow | ECT

METHODS: dict[str, type[Method]] = {"gan": GAN, "diffusion": Diffusion, "flow": Flow, "edm": EDM,
                                    "meanflow": MeanFlow, "ect": ECT}


def build_method(cfg: GANConfig | DiffusionConfig | FlowConfig | EDMConfig | MeanFlowConfig | ECTConfig) -> Method:
    return METHODS[cfg.kind](cfg)


__all__ = ["ECT", "EDM", "GAN", "METHODS", "Diffusion", "Flow", "MeanFlow", "Method", "build_method"]
