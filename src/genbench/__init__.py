"""genbench: train, sample and compare GANs, diffusion and flow-matching models on one footing."""

__version__ = "0.1.0"
