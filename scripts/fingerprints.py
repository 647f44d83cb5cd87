"""Fingerprints of tiny fixed runs, to show that a refactor changed no behaviour or result.

    python scripts/fingerprints.py OUT_DIR          # trains, samples, prints one sha256 per artefact

For each of toy2d/{gan,ddpm,flow} and fmnist/flow it trains a few steps on the CPU and hashes the
final checkpoint's *content* (every tensor's bytes, dtype and shape, and every other value, in key
order) leaving out ``seconds`` (wall-clock time, different on every run); then it hashes the bytes
of a 16-sample ``genbench sample --format npz`` output of each run.
Issue 12 (the redesign) recorded these before and after; the same commands must give the same hashes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import torch

RUNS = {
    "toy2d/gan": ["train.budget={steps: 30}", "train.ckpt_every=10", "train.sample_every=1000"],
    "toy2d/ddpm": ["train.budget={steps: 30}", "train.ckpt_every=10", "train.sample_every=1000"],
    "toy2d/flow": ["train.budget={steps: 30}", "train.ckpt_every=10", "train.sample_every=1000"],
    "fmnist/flow": ["train.budget={steps: 4}", "train.ckpt_every=2", "train.sample_every=1000",
                    "data.limit=512", "train.batch_size=16"],
}
SKIP = {"seconds"}


def content_hash(obj, h=None, skip=SKIP):
    h = h or hashlib.sha256()
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            if k in skip:
                continue
            h.update(f"<{k}>".encode())
            content_hash(obj[k], h, skip=())
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for v in obj:
            content_hash(v, h, skip=())
    elif torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(repr(obj).encode())
    return h


def main(out: Path) -> None:
    genbench = [sys.executable, "-m", "genbench"]
    lines = []
    for preset, overrides in RUNS.items():
        run = out / preset.replace("/", "-")
        subprocess.run([*genbench, "train", preset, *overrides, "--out", str(run), "--overwrite", "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL)
        last = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
        state = torch.load(last, map_location="cpu", weights_only=True)
        lines.append(f"{content_hash(state).hexdigest()}  {preset} {last.name} (content, less 'seconds')")
    for preset in RUNS:
        run = out / preset.replace("/", "-")
        stem = out / f"sample-{preset.replace('/', '-')}"
        subprocess.run([*genbench, "sample", str(run), "-n", "16", "--format", "npz", "-o", str(stem),
                        "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        data = Path(f"{stem}.npz").read_bytes()
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {preset} sample -n 16 (npz bytes)")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/fingerprints"))
