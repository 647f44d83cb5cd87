"""Inception-v3 features for FID (Heusel et al. 2017) through torch-fidelity, offline only.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` ("inception-v3-compat"), a port
of the TensorFlow graph ``inception-2015-12-05`` used by the original FID code (TTUR), including
TF1-compatible bilinear resizing to 299x299 inside its ``forward``. Features are the 2048-d pool
activations; logits are torch-fidelity's ``logits_unbiased`` (1008 classes, no bias), which its
Inception Score uses. Sources: torch-fidelity 0.4.0 (``feature_extractor_inceptionv3.py``,
``registry.py``) and pytorch-fid (Seitzer 2020), which hosts byte-identical weights.

The weights are never downloaded here. They are looked up, in order, at the path given, at
``$GENBENCH_INCEPTION_WEIGHTS``, then in torch hub's checkpoint cache (``torch.hub.get_dir()/checkpoints``)
under torch-fidelity's and pytorch-fid's file names. :func:`check_inception_weights` runs this
check alone so that commands can fail before spending time on sampling.

The file is checked against its full sha256 (whose prefix ``6726825d`` is in its name, the torch
hub convention) before torch-fidelity unpickles it, and torch-fidelity is handed the verified
bytes rather than the path, so nothing unverified is ever unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch
from torch import Tensor

from genbench.errors import GenbenchError
from genbench.limits import WEIGHTS_FILE_BYTES, check_file
from genbench.metrics.features import Features, batched, check_uint8_images

ENV_VAR = "GENBENCH_INCEPTION_WEIGHTS"
TORCH_FIDELITY_NAME = "weights-inception-2015-12-05-6726825d.pth"   # torch-fidelity's release file
PYTORCH_FID_NAME = "pt_inception-2015-12-05-6726825d.pth"           # pytorch-fid's, the same bytes
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{TORCH_FIDELITY_NAME}"
SHA256_PREFIX = "6726825d"
# full hash of the file above, as published by several independent users of both releases
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
EXTRACTOR_NAME = "inception-v3-compat"
FEATURE_DIM = 2048
LOGIT_DIM = 1008


def candidate_paths(weights_path: str | os.PathLike | None = None) -> list[Path]:
    """Where the weights are looked for, in order: argument, $GENBENCH_INCEPTION_WEIGHTS, torch hub cache."""
    if weights_path is not None:
        return [Path(weights_path).expanduser()]
    out: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env).expanduser())
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return out + [hub / TORCH_FIDELITY_NAME, hub / PYTORCH_FID_NAME]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_sha(path: Path, sha: str) -> None:
    if sha != WEIGHTS_SHA256:
        what = "wrong file" if not sha.startswith(SHA256_PREFIX) else "same hash prefix, but a different file"
        raise GenbenchError(
            f"mismatched weights: Inception weights {path} have sha256 {sha[:16]}... ({what}), expected "
            f"{WEIGHTS_SHA256[:16]}... (the '{SHA256_PREFIX}' in {TORCH_FIDELITY_NAME})",
            f"download {TORCH_FIDELITY_NAME} again from {WEIGHTS_URL} and point {ENV_VAR} at it",
        )


def check_inception_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """The verified weights file, or a one-line GenbenchError; cheap enough to call before sampling."""
    places = candidate_paths(weights_path)
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise GenbenchError(
            f"Inception-v3 weights for FID not found (looked at: {', '.join(str(p) for p in places)}); "
            "they cannot be downloaded from here",
            f"on a machine with network download {TORCH_FIDELITY_NAME} from the torch-fidelity GitHub "
            f"releases ({WEIGHTS_URL}), copy it here and set {ENV_VAR}=/path/to/{TORCH_FIDELITY_NAME}",
        )
    check_file(found, WEIGHTS_FILE_BYTES, "Inception-v3 weights", f"give the {TORCH_FIDELITY_NAME} file itself")
    _check_sha(found, _sha256_file(found))
    return found


class InceptionExtractor:
    """torch-fidelity's Inception-v3 (TF-compatible): 2048-d pool features and 1008 unbiased logits."""

    name = EXTRACTOR_NAME
    feature_dim = FEATURE_DIM

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = check_inception_weights(weights_path)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        _check_sha(path, sha)   # the bytes actually loaded, not just the ones checked above
        self.weights_path = path
        self.weights_sha256 = sha
        self.device = torch.device(device)
        self.net = FeatureExtractorInceptionV3(
            EXTRACTOR_NAME, ["2048", "logits_unbiased"], feature_extractor_weights_path=io.BytesIO(data),
        ).to(self.device)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)   # greyscale -> RGB by repeating the channel
        features, logits = self.net(x.contiguous())   # resized to 299x299 inside (TF1 bilinear)
        return features, logits

    def extract(self, images: Tensor, batch_size: int = 500) -> Features:
        """uint8 ``N x {1,3} x H x W`` -> features ``N x 2048`` and logits ``N x 1008`` (float64)."""
        check_uint8_images(images, self.name)
        if images.shape[1] not in (1, 3):
            raise GenbenchError(
                f"{self.name} expects 1 or 3 channels, got {tuple(images.shape)}",
                "pass greyscale or RGB uint8 images",
            )
        return batched(images, batch_size, self.device, self._forward, FEATURE_DIM, LOGIT_DIM)
