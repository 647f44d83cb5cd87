"""Train the domain classifier whose penultimate features genbench uses for 28x28 datasets.

Trains :class:`genbench.metrics.domain.DomainClassifier` on the TRAIN split only (Adam, cosine
learning-rate decay after a short warm-up, random crops with 2-pixel zero padding), evaluates once
on the test split, and writes the weights as safetensors (metadata: dataset, test accuracy,
epochs, seed, ...) atomically. It prints the test accuracy and the file's sha256, which must then
be pinned in ``PINNED_SHA256`` in ``src/genbench/metrics/domain.py``.

Shipped weights (``weights/fashion_mnist_classifier.safetensors``, 972,712 bytes), trained on 2 CPU
cores with torch 2.14.1 (written to ``--out /tmp/clf_e12.safetensors``, then copied into place):

    .venv/bin/python scripts/train_domain_classifier.py --dataset fashion_mnist --epochs 12 --seed 0

    -> Fashion-MNIST test accuracy 0.9288 (10,000 test images); about 20 s per epoch when the machine
       is otherwise idle (7.1 min in all, with other jobs competing for the cores);
       sha256 bfaf32aefd933dc3671cc5d369be330541cf08876760bbab958f3f4ea224aac6.

Retraining is not bit-reproducible across machines or library versions (CPU kernels differ), so a
retrained file needs its own pin.

MNIST is supported (``--dataset mnist``) but was not trained: its files were not available.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as save_safetensors
from torch import Tensor

from genbench.config import DataConfig
from genbench.data import load_dataset, to_model_range
from genbench.metrics.domain import ARCH_VERSION, DomainClassifier, default_weights_path

PAD = 2   # random-crop padding in pixels
EPOCHS_DEFAULT = 12


def random_crop(x: Tensor, generator: torch.Generator, pad: int = PAD) -> Tensor:
    """Zero-pad uint8 images by ``pad`` and cut a random ``H x W`` window from each (vectorised)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]     # n x h x 1
    cols = (dx[:, None] + torch.arange(w))[:, None, :]     # n x 1 x w
    return xp[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()


def evaluate(net: DomainClassifier, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on uint8 images ``x`` with labels ``y``."""
    net.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            _, logits = net(to_model_range(x[i:i + batch_size]))
            correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to zero (Loshchilov & Hutter 2017)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_set = load_dataset(DataConfig(name=args.dataset, split="train"))
    test_set = load_dataset(DataConfig(name=args.dataset, split="test"))
    x, y = train_set.x, train_set.y
    net = DomainClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps_per_epoch = len(x) // args.batch_size
    total = args.epochs * steps_per_epoch
    print(f"{args.dataset}: {len(x)} train / {len(test_set.x)} test images, {total} steps, "
          f"{sum(p.numel() for p in net.parameters())} parameters", flush=True)
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        loss_sum = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb = to_model_range(random_crop(x[idx], gen))
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, args.lr, steps_per_epoch // 2)
            _, logits = net(xb)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            step += 1
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / steps_per_epoch:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    acc = evaluate(net, test_set.x, test_set.y)
    minutes = (time.time() - t0) / 60
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    metadata = {
        "dataset": args.dataset, "test_accuracy": f"{acc:.4f}", "epochs": str(args.epochs),
        "seed": str(args.seed), "arch": f"DomainClassifier-{ARCH_VERSION}", "batch_size": str(args.batch_size),
        "lr": str(args.lr), "augmentation": f"random crop, pad {PAD}", "torch": torch.__version__,
        "train_minutes": f"{minutes:.1f}",
    }
    data = save_safetensors(tensors, metadata=metadata)
    out = Path(args.out) if args.out else default_weights_path(args.dataset)
    write_atomic(out, data)
    print(f"test accuracy {acc:.4f} ({len(test_set.x)} {args.dataset} test images), {minutes:.1f} min")
    print(f"wrote {out} ({len(data)} bytes)")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["fashion_mnist", "mnist"], required=True)
    p.add_argument("--epochs", type=int, default=EPOCHS_DEFAULT)
    p.add_argument("--out", default=None, help="output file (default: the shipped weights' location)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    train(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
