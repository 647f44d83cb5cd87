"""Cheap quality-over-training scores: FID/KID on a few thousand samples every N steps.

These are *proxies*, logged as ``proxy/fid@<n>`` and ``proxy/kid@<n>`` (2-D sets:
``proxy/modes@<n>``, ``proxy/hq@<n>``): few samples bias FID upwards, so they are comparable
only within one run, never to a full `genbench eval`.
"""

from __future__ import annotations

import torch

from genbench.config import RunConfig
from genbench.sampling import generate


class ProxyEval:
    def __init__(self, cfg: RunConfig, device: torch.device, data_kind: str):
        self.cfg, self.device, self.data_kind = cfg, device, data_kind
        self.n = cfg.train.proxy_n
        self._ref = None
        self._extractor = None

    def _setup(self) -> None:
        if self.data_kind == "points":
            return
        from genbench.evaluate import ChannelStacked
        from genbench.metrics.features import build_extractor, default_extractor_kind
        from genbench.metrics.reference import reference_features

        stacked = self.cfg.data.name == "stacked_fashion_mnist"
        base = "fashion_mnist" if stacked else self.cfg.data.name
        ex = build_extractor(default_extractor_kind(base), base, None, device=str(self.device))
        self._extractor = ChannelStacked(ex) if stacked else ex
        self._ref = reference_features(self._extractor, self.cfg.data, "train", 10_000)

    def __call__(self, method, nets, latent_shape) -> dict:
        if self._ref is None and self.data_kind == "image":
            self._setup()
        x, _ = generate(method, nets, latent_shape, list(range(10**9, 10**9 + self.n)), self.device,
                        256, self.cfg.sample.solver, self.cfg.sample.nfe)
        tag = f"@{self.n}"
        if self.data_kind == "points":
            from genbench.data.toy2d import default_std, mode_centers
            from genbench.metrics.modes import toy_mode_stats

            std = self.cfg.data.std or default_std(self.cfg.data.name)
            s = toy_mode_stats(x.double().numpy(), mode_centers(self.cfg.data.name).numpy(), std)
            return {f"proxy/modes{tag}": float(s["modes"]), f"proxy/hq{tag}": float(s["hq_fraction"])}
        from genbench.data.transforms import to_uint8
        from genbench.metrics.fid import fid_from_features, kid

        fake = self._extractor.extract(to_uint8(x), batch_size=500).features
        size = min(1000, len(fake), len(self._ref.features))
        k, _ = kid(self._ref.features, fake, subsets=20, subset_size=size)
        return {f"proxy/fid{tag}": fid_from_features(self._ref.features, fake), f"proxy/kid{tag}": k}
