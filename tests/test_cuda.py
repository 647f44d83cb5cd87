"""CUDA checks, skipped without a CUDA device (benchmarks/gpu_check.sh runs them on a GPU machine).

* the UNet's forward and backward under bf16 autocast match fp32 within bf16's tolerance;
* sampling with per-sample seeds is deterministic on CUDA, stochastic solver included, and a
  seed's sample depends on its batch-mates only through kernel rounding (TF32, algorithm choice);
* a few bf16 training steps of the CIFAR-10 presets run end to end through the CLI, on a file set
  in the official CIFAR-10 format (CIFAR-10 itself cannot be downloaded here).

``GENBENCH_CUDA_TEST_DEVICE=cpu`` runs the same checks on the CPU, to test the tests themselves
on a machine without a GPU (``benchmarks/gpu_check.sh --cpu-dry-run``).
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from fileformats import make_cifar
from genbench.cli import main
from genbench.config import UNetConfig, load_config
from genbench.data import sources
from genbench.methods import build_method
from genbench.nets import build_net
from genbench.sampling import generate

DEVICE = torch.device(os.environ.get("GENBENCH_CUDA_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(),
                                reason="needs a CUDA device")

SHAPE = (3, 32, 32)
SMALL_UNET = UNetConfig(ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[16], dropout=0.0, groups=8)
TINY = ["nets.model.ch=16", "nets.model.ch_mult=[1, 2]", "nets.model.num_res_blocks=1",
        "nets.model.attn_resolutions=[16]", "nets.model.groups=8", "nets.model.dropout=0.0"]


def small_unet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_net(SMALL_UNET, SHAPE).to(DEVICE)
    with torch.no_grad():   # the output conv starts at zero (Ho et al.); give it weights as after training
        for p in net.parameters():
            if not p.abs().sum():
                p.normal_(0.0, 0.02)
    return net


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def test_bf16_autocast_matches_fp32_forward_and_backward():
    net = small_unet()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, *SHAPE, generator=g).to(DEVICE)
    t = torch.rand(8, generator=g).to(DEVICE)
    target = torch.randn(8, *SHAPE, generator=g).to(DEVICE)

    def run(bf16: bool):
        net.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x, t)
        loss = (out.float() - target).square().mean()
        loss.backward()
        grads = torch.cat([p.grad.flatten().float() for p in net.parameters()])
        return out.detach().float(), loss.detach(), grads

    out32, loss32, g32 = run(False)
    out16, loss16, g16 = run(True)
    assert out16.dtype == torch.float32 and torch.isfinite(out16).all() and torch.isfinite(g16).all()
    assert rel(out16, out32) < 3e-2, f"bf16 output off by {rel(out16, out32):.3g} relative"
    assert abs(float(loss16 - loss32)) / float(loss32) < 1e-2
    assert rel(g16, g32) < 5e-2, f"bf16 gradients off by {rel(g16, g32):.3g} relative"
    cos = float(torch.nn.functional.cosine_similarity(g16, g32, dim=0))
    assert cos > 0.995, f"bf16 gradient direction: cosine {cos:.4f}"


@pytest.mark.parametrize("preset, solver, nfe, opts", [
    ("cifar10/ddpm", "ddim", 6, {"eta": 1.0}),     # stochastic: per-step noise from each sample's stream
    ("cifar10/flow", "euler", 4, {}),
])
def test_seeded_sampling_is_deterministic(preset, solver, nfe, opts):
    method = build_method(load_config(f"configs/{preset}.yaml", []).method)
    net = small_unet()
    net.eval()
    nets = {"model": net}
    seeds = list(range(10, 16))
    a, nfe_a = generate(method, nets, SHAPE, seeds, DEVICE, batch_size=6, solver=solver, nfe=nfe, **opts)
    b, _ = generate(method, nets, SHAPE, seeds, DEVICE, batch_size=6, solver=solver, nfe=nfe, **opts)
    assert nfe_a == nfe
    assert a.shape == (6, *SHAPE) and torch.isfinite(a).all()
    assert torch.equal(a, b), "the same seeds gave different samples"
    c, _ = generate(method, nets, SHAPE, seeds[3:], DEVICE, batch_size=2, solver=solver, nfe=nfe, **opts)
    assert torch.allclose(c, a[3:], atol=1e-2, rtol=0), \
        f"a seed's sample changed with its batch-mates by {float((c - a[3:]).abs().max()):.3g}"
    other, _ = generate(method, nets, SHAPE, [s + 100 for s in seeds], DEVICE, batch_size=6, solver=solver,
                        nfe=nfe, **opts)
    assert not torch.allclose(other, a), "different seeds gave the same samples"


@pytest.mark.parametrize("family", ["ddpm", "flow"])
def test_bf16_training_steps_on_cifar_format_files(family, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "SYSTEM_DATASETS_DIR", tmp_path / "nosystem")
    make_cifar(tmp_path / "cifar", per_batch=8, n_test=4)
    run = tmp_path / "run"
    argv = ["train", f"configs/cifar10/{family}.yaml", *TINY, f"data.root={tmp_path / 'cifar'}",
            "data.download=false", "train.batch_size=8", "train.budget={steps: 6}", f"train.device={DEVICE.type}",
            "train.precision=bf16", "train.ckpt_every=3", "train.sample_every=6", "train.grid_n=4",
            "train.log_every=1", "train.tensorboard=false", "sample.nfe=10", "--no-progress", "--out", str(run)]
    assert main(argv) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == 6
    assert info["device"].startswith(DEVICE.type)
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [ln["loss/model"] for ln in lines if "loss/model" in ln]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert list((run / "samples").glob("grid-*.png"))
    if DEVICE.type == "cuda":   # the preset's speed flags reached the backends
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32
