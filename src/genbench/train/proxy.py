"""Cheap quality-over-training scores: FID/KID on a few thousand samples every N steps.

These are *proxies*, logged as ``proxy/fid@<n>`` and ``proxy/kid@<n>`` (2-D sets:
``proxy/modes@<n>``, ``proxy/hq@<n>``): few samples bias FID upwards, so they are comparable
only within one run, never to a full `genbench eval`. They follow the evaluation protocol of
`genbench eval` (:mod:`genbench.metrics.protocol`) with their own, smaller numbers.
"""

from __future__ import annotations

import torch

from genbench.config import RunConfig
from genbench.metrics.protocol import ImageProtocol, PointProtocol
from genbench.sampling import generate, seed_labels

REFERENCE_N = 10_000      # real training images in the reference
KID_SUBSETS = 20          # KID subsets (of min(1000, n) samples)
FIRST_SEED = 10**9        # the proxy's seeds, far from those of `genbench eval` and `genbench sample`
BATCH_SIZE = 256


class ProxyEval:
    def __init__(self, cfg: RunConfig, device: torch.device, data_kind: str):
        self.cfg, self.device, self.data_kind = cfg, device, data_kind
        self.n = cfg.train.proxy_n
        self._protocol: ImageProtocol | PointProtocol | None = None

    def _setup(self) -> None:
        if self.data_kind == "points":
            self._protocol = PointProtocol(self.cfg.data)
            return
        self._protocol = ImageProtocol.for_data(self.cfg.data, self.device, ref_split="train", ref_n=REFERENCE_N,
                                                kid_subsets=KID_SUBSETS)
        self._protocol.reference()   # computed (or read from the cache) before the first samples

    def __call__(self, method, nets, latent_shape, classes: list[int] | None = None) -> dict:
        """Proxy scores of samples of seeds FIRST_SEED...; a conditional model's ask for ``classes`` in turn."""
        if self._protocol is None:
            self._setup()
        seeds = list(range(FIRST_SEED, FIRST_SEED + self.n))
        x, _ = generate(method, nets, latent_shape, seeds, self.device, BATCH_SIZE, self.cfg.sample.solver,
                        self.cfg.sample.nfe, labels=seed_labels(seeds, classes) if classes else None,
                        **self.cfg.sample.clip_options())
        tag = f"@{self.n}"
        if self.data_kind == "points":
            s = self._protocol.scores(["modes"], x)
            return {f"proxy/modes{tag}": float(s["modes"]), f"proxy/hq{tag}": float(s["hq_fraction"])}
        s = self._protocol.scores(["fid", "kid"], x)
        return {f"proxy/fid{tag}": s["fid"], f"proxy/kid{tag}": s["kid"]}
