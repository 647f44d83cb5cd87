"""The stabilised GAN (issue 16): RpGAN, R1/R2 against finite differences, lazy regularisation,
DiffAugment and ADA (differentiable, identity at p = 0, p moving the right way), R3GAN's nets, the
EMA ramp, exact resume after kill -9 with ADA and lazy regularisation, and one-line refusals."""

from __future__ import annotations

import math
import random
import time

import pytest
import torch

from genbench.augment import OPS, AdaptiveAugment, DiffAugment, build_augment
from genbench.cli import main
from genbench.config import (
    AUGMENT_OPS,
    AugmentConfig,
    EMAConfig,
    GANConfig,
    MLPConfig,
    R3GANDConfig,
    R3GANGConfig,
    load_config,
)
from genbench.methods.gan import GAN
from genbench.methods.gan_losses import gamma_at, gradient_penalty
from genbench.nets import build_net, count_params
from genbench.randomness import BatchDraws
from genbench.train.checkpoint import list_checkpoints, load_checkpoint
from genbench.train.ema import ema_decay, make_ema, ramped_decay, update_ema
from test_bad_input import refused
from test_kill_resume import kill, logged, same, start, wait_for

# ----------------------------------------------------------------------------- losses and penalties


class FixedG(torch.nn.Module):
    """A 'generator' that returns the same fakes whatever z."""

    z_dim = 3

    def __init__(self, fakes: torch.Tensor):
        super().__init__()
        self.fakes = fakes

    def forward(self, z, t=None, y=None):
        return self.fakes[: len(z)]


def tiny_d() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_net(MLPConfig(kind="mlp_d", hidden=8, depth=2), (2,)).double()


def fd_grad_norm2(D, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """||grad_x D(x)||^2 per sample by central differences."""
    out = torch.zeros(len(x), dtype=torch.float64)
    for j in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, j] = h
        with torch.no_grad():
            out += ((D(x + e) - D(x - e)) / (2 * h)) ** 2
    return out


def test_gradient_penalty_equals_finite_differences():
    D = tiny_d()
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    got = gradient_penalty(x, D(x))
    assert torch.allclose(got.double(), fd_grad_norm2(D, x.detach()), rtol=1e-5, atol=1e-10)
    assert got.requires_grad   # kept in the graph: D is trained on it


@pytest.mark.parametrize("penalty", ["r1", "r2", "r1+r2"])
@pytest.mark.parametrize("loss", ["bce", "hinge", "rpgan"])
def test_d_loss_adds_gamma_half_the_penalties(loss, penalty):
    D = tiny_d()
    real, fakes = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64) + 1
    nets = {"G": FixedG(fakes), "D": D}
    plain = GAN(GANConfig(loss=loss)).loss(nets, "D", real, None)["loss"]
    gamma = 3.0
    out = GAN(GANConfig(loss=loss, gamma=gamma, penalty=penalty)).loss(nets, "D", real, None)
    expect = 0.0
    if penalty != "r2":
        expect += fd_grad_norm2(D, real).mean()
        assert out["r1"].item() == pytest.approx(fd_grad_norm2(D, real).mean().item(), rel=1e-5)
    if penalty != "r1":
        expect += fd_grad_norm2(D, fakes).mean()
    assert (out["loss"] - plain).item() == pytest.approx(gamma / 2 * float(expect), rel=1e-5, abs=1e-6)


def test_lazy_regularisation_every_k_updates_scaled_by_k_and_adam_rescaled():
    D = tiny_d()
    real, fakes = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    nets = {"G": FixedG(fakes), "D": D}
    plain = GAN(GANConfig(loss="rpgan")).loss(nets, "D", real, None)["loss"].item()
    m = GAN(GANConfig(loss="rpgan", gamma=1.0, penalty="r1", reg_every=3))
    pen = fd_grad_norm2(D, real).mean().item()
    extra = [m.loss(nets, "D", real, None)["loss"].item() - plain for _ in range(4)]
    assert pen > 1e-3 and extra == pytest.approx([3 * pen / 2, 0, 0, 3 * pen / 2], rel=1e-5, abs=1e-6)
    assert m.optim_ratio("D") == pytest.approx(0.75) and m.optim_ratio("G") == 1.0
    assert GAN(GANConfig(gamma=1.0)).optim_ratio("D") == 1.0


def test_rpgan_at_an_undecided_discriminator():
    m = GAN(GANConfig(loss="rpgan"))
    nets = {"G": FixedG(torch.zeros(3, 2)), "D": lambda x, t=None, y=None: torch.zeros(x.shape[0])}
    out = m.loss(nets, "D", torch.ones(3, 2), None)
    assert out["loss"].item() == pytest.approx(math.log(2)) and out["D_sign_real"].item() == 0
    assert m.loss(nets, "G", torch.ones(3, 2), None)["loss"].item() == pytest.approx(math.log(2))


def test_rpgan_g_loss_pairs_fakes_with_reals():
    """G: softplus(-(D(fake) - D(real))): a real scored high raises G's loss."""
    m = GAN(GANConfig(loss="rpgan"))
    D = lambda x, t=None, y=None: x[:, 0]   # noqa: E731
    nets = {"G": FixedG(torch.zeros(2, 2)), "D": D}
    got = m.loss(nets, "G", torch.tensor([[1.0, 0], [-2.0, 0]]), None)["loss"].item()
    expect = (math.log1p(math.exp(1.0)) + math.log1p(math.exp(-2.0))) / 2
    assert got == pytest.approx(expect)


def test_gamma_schedule():
    cfg = GANConfig(gamma=1.0, gamma_final=0.1, gamma_kimg=10)
    assert gamma_at(cfg, 0) == 1.0 and gamma_at(cfg, 10) == pytest.approx(0.1) == gamma_at(cfg, 50)
    assert gamma_at(cfg, 5) == pytest.approx(0.55)
    assert gamma_at(cfg, 2) > gamma_at(cfg.model_copy(update={"gamma_schedule": "linear"}), 2)  # cosine starts slowly
    assert gamma_at(GANConfig(gamma=0.3), 123) == 0.3


# ----------------------------------------------------------------------------- augmentation


def seeded(seed: int = 0) -> BatchDraws:
    return BatchDraws(torch.Generator().manual_seed(seed))


def augmenters(p: float) -> dict[str, object]:
    out = {f"diffaug-{op}": DiffAugment([op], p) for op in OPS["diffaug"]}
    out |= {f"ada-{op}": AdaptiveAugment(AugmentConfig(kind="ada", ops=[op], p=p, target=None)) for op in OPS["ada"]}
    return out


def test_augment_ops_mirror_the_config():
    assert OPS == AUGMENT_OPS


@pytest.mark.parametrize("channels", [1, 3])
def test_augmentations_are_the_identity_at_p0(channels):
    x = torch.rand(6, channels, 8, 8) * 2 - 1
    for name, aug in augmenters(0.0).items():
        assert torch.equal(aug(x, seeded()), x), name
    assert torch.equal(build_augment(AugmentConfig(kind="ada")).__call__(x, seeded()), x)   # ada starts at p = 0


@pytest.mark.parametrize("channels", [1, 3])
def test_augmentations_change_images_and_are_differentiable(channels):
    x = (torch.rand(2, channels, 6, 6, dtype=torch.float64) * 2 - 1).requires_grad_()
    for name, aug in augmenters(1.0).items():
        assert not torch.equal(aug(x, seeded()), x), f"{name} did nothing at p = 1"
        # the same random draws at every call, so that the map is a fixed function of x
        assert torch.autograd.gradcheck(lambda t: aug(t, seeded(1)), (x,), eps=1e-6, atol=1e-5, fast_mode=True), name  # noqa: B023
        # R1 through the augmentation differentiates its backward once more
        assert torch.autograd.gradgradcheck(lambda t: aug(t, seeded(1)), (x,), eps=1e-6, atol=1e-5,  # noqa: B023
                                            fast_mode=True), name


def test_ada_p_moves_up_on_a_d_that_always_says_real_and_down_on_one_that_says_fake():
    def run(logit: float) -> list[float]:
        m = GAN(GANConfig(augment=AugmentConfig(kind="ada", p=0.5, interval=2, speed_kimg=0.1)))
        nets = {"G": FixedG(torch.zeros(10, 1, 8, 8)), "D": lambda x, t=None, y=None: torch.full((x.shape[0],), logit)}
        return [m.loss(nets, "D", torch.zeros(10, 1, 8, 8), None)["ada_p"].item() for _ in range(6)]

    # every 2 updates of 10 images: p moves by 20 / 100
    assert run(5.0) == pytest.approx([0.5, 0.7, 0.7, 0.9, 0.9, 1.0])
    assert run(-5.0) == pytest.approx([0.5, 0.3, 0.3, 0.1, 0.1, 0.0])


def test_ada_state_round_trips():
    a = AdaptiveAugment(AugmentConfig(kind="ada", p=0.25, interval=3))
    a.observe(torch.ones(4), 4)
    b = AdaptiveAugment(AugmentConfig(kind="ada", interval=3))
    b.load_state_dict(a.state_dict())
    same(a.state_dict(), b.state_dict(), "ada")


def test_augmentation_of_points_is_refused_in_one_line():
    m = GAN(GANConfig(augment=AugmentConfig(kind="diffaug")))
    with pytest.raises(Exception, match="augments images"):
        m.loss({"G": FixedG(torch.zeros(4, 2)), "D": tiny_d().float()}, "D", torch.zeros(4, 2), None)


# ----------------------------------------------------------------------------- nets and EMA


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_r3gan_shapes_grads_and_parameter_count(shape):
    g_cfg, d_cfg = R3GANGConfig(z_dim=8, ch=16, blocks=2, groups=4), R3GANDConfig(ch=16, blocks=2, groups=4)
    torch.manual_seed(0)
    G, D = build_net(g_cfg, shape), build_net(d_cfg, shape)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, *shape) and D(x).shape == (3,)
    D(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    c, size = shape[0], shape[1]
    base, stages = (7, 3) if size == 28 else (4, 4)
    ch, inner = 16, 32
    block = ch * inner + inner * (inner // 4) * 9 + inner * ch + 2 * inner
    blocks = stages * 2 * block
    assert count_params(G) == ch * base * base + 8 * ch + blocks + ch * c
    assert count_params(D) == c * ch + blocks + ch * base * base + ch


def test_r3gan_blocks_start_as_the_identity():
    torch.manual_seed(0)
    D = build_net(R3GANDConfig(ch=8, blocks=1, groups=2), (1, 28, 28))
    block = D.stages[0]
    h = torch.randn(2, 8, 7, 7)
    assert torch.equal(block(h), h)


def test_ema_ramp_limits_the_half_life_early():
    cfg = EMAConfig(halflife_kimg=10, rampup=0.05)
    assert ramped_decay(cfg, 64, 0) == 0.0
    assert ramped_decay(cfg, 64, 10**9) == pytest.approx(ema_decay(cfg, 64))
    assert ramped_decay(cfg, 64, 64_000) == pytest.approx(0.5 ** (64 / 3200))
    net = torch.nn.Linear(2, 2)
    ema = make_ema(net, cfg, 64)
    update_ema(ema, net, 0)
    with torch.no_grad():
        net.weight.add_(1.0)
    update_ema(ema, net, 64)   # half-life 3.2 images: the EMA all but follows the net
    assert torch.allclose(ema.module.weight, net.weight, atol=1e-5)


# ----------------------------------------------------------------------------- presets and refusals


@pytest.mark.parametrize("preset", ["fmnist/gan-r3", "toy2d/gan-r3", "cifar10/r3gan", "fmnist/gan-r3-oneclass",
                                    "fmnist/gan-r3-oneclass-aug", "fmnist/gan-rp", "fmnist/gan-rp-oneclass",
                                    "fmnist/gan-rp-oneclass-aug", "fmnist/gan-rp-stacked"])
def test_presets_load(preset):
    cfg = load_config(f"configs/{preset}.yaml")
    assert cfg.method.kind == "gan" and cfg.method.loss == "rpgan" and cfg.method.gamma > 0
    if "oneclass" in preset:
        assert cfg.data.classes == ["bag"]
        assert (cfg.method.augment.kind != "none") == preset.endswith("-aug")
    if "stacked" in preset:   # packed D on the 1,000-mode set (a pack not dividing the batch fails to load)
        assert cfg.data.name == "stacked_fashion_mnist" and cfg.method.pack > 1


REFUSALS = {
    "negative gamma": (["method.gamma=-1"], ["method.gan.gamma", "greater than or equal to 0"]),
    "unknown augmentation kind": (["method.augment.kind=mixup"], ["method.gan.augment.kind", "'diffaug'"]),
    "unknown augmentation op": (["method.augment={kind: diffaug, ops: [rotate]}"], ["ops", "'translation'"]),
    "op of the other kind": (["method.augment={kind: diffaug, ops: [blit]}"], ["'blit' is not one of diffaug's"]),
    "half a schedule": (["method.gamma_final=0.01"], ["needs both gamma_final and gamma_kimg"]),
    "ramp without half-life": (["train.ema={decay: 0.999, rampup: 0.05}"], ["rampup ramps a half-life"]),
    "groups": (["nets.G.groups=7"], ["groups (7) must divide"]),
    "lazy every 0": (["method.reg_every=0"], ["method.gan.reg_every"]),
    "pack with classes": (["method.pack=2", "conditional=true"], ["method.pack=2", "conditional"]),
    "pack not dividing the batch": (["method.pack=3"], ["train.batch_size=64 is not a multiple of method.pack=3"]),
    "pack 0": (["method.pack=0"], ["method.gan.pack"]),
    "pack 64": (["method.pack=64"], ["method.gan.pack"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_settings_are_refused_in_one_line(env, capsys, case):
    overrides, expect = REFUSALS[case]
    refused(["train", "configs/fmnist/gan-r3.yaml", *overrides, "--out", str(env / "r")], capsys, env, *expect)
    assert not (env / "r").exists()


# ----------------------------------------------------------------------------- kill -9 and resume

STEPS = 12
TINY = ["nets.G={kind: r3gan_g, z_dim: 8, ch: 8, blocks: 1, groups: 2}",
        "nets.D={kind: r3gan_d, ch: 8, blocks: 1, groups: 2}",
        "method.gamma=1.0", "method.reg_every=3",
        "method.augment={kind: ada, ops: [blit, geom, color, cutout], p: 0.5, interval: 2, speed_kimg: 0.05}",
        "train.ema={halflife_kimg: 1, rampup: 0.05}"]


def image_args(data, out) -> list[str]:
    return ["configs/fmnist/gan-r3.yaml", *TINY, f"data.root={data}", "data.download=false",
            "train.batch_size=8", f"train.budget={{steps: {STEPS}}}", "train.ckpt_every=1", "train.keep_last=2",
            "train.log_every=2", "train.sample_every=1000", "train.grid_n=4", "train.tensorboard=false",
            "--no-progress", "--out", str(out)]


def test_kill_and_resume_is_bitwise_exact_with_ada_and_lazy_regularisation(env):
    import os

    data, ref, run = env / "fmnist", env / "ref", env / "run"
    assert main(["train", *image_args(data, ref)]) == 0
    p = [r["ada_p"] for r in logged(ref)]
    assert len(set(p)) > 1, f"ADA's p never moved: {p}"
    assert any(r.get("r1", 0) > 0 for r in logged(ref))
    sub = dict(os.environ)
    sub.pop("GENBENCH_TEST_CKPT_PAUSE", None)
    rng = random.Random("kill-gan-r3")
    ckpts = run / "checkpoints"
    for i in range(3):
        have = max(list_checkpoints(ckpts), default=0)
        target = min(STEPS - 2, have + rng.randint(1, 3))
        proc = start([*image_args(data, run), *(["--resume"] if i else [])], sub)
        wait_for(lambda: max(list_checkpoints(ckpts), default=0) >= target, proc)  # noqa: B023
        time.sleep(rng.uniform(0.0, 0.03))
        assert proc.poll() is None, "finished before the kill"
        kill(proc)
    proc = start([*image_args(data, run), "--resume"], sub)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    a = load_checkpoint(list_checkpoints(ref / "checkpoints")[STEPS])
    b = load_checkpoint(list_checkpoints(ckpts)[STEPS])
    assert a.keys() == b.keys() and "method_state" in a
    for key in a.keys() - {"seconds"}:   # weights, EMA, optimisers, ADA's p and sums, the GAN's counters, ...
        same(a[key], b[key], key)
    assert logged(ref) == logged(run)


def test_dcgan_d_without_norm_scores_each_image_alone():
    """norm: none (fmnist/gan-rp) leaves no BatchNorm in D, so an image's logit, and the input gradient R1
    penalises, do not depend on its batch mates; DCGAN's default keeps BatchNorm."""
    from genbench.config import DCGANDConfig
    from genbench.nets import build_net

    torch.manual_seed(0)
    plain = build_net(DCGANDConfig(ch=8, norm="none"), (1, 28, 28)).train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build_net(DCGANDConfig(ch=8), (1, 28, 28)).modules())
    x = torch.randn(4, 1, 28, 28)
    other = torch.cat([x[:1], torch.randn(3, 1, 28, 28)])
    torch.testing.assert_close(plain(x)[0], plain(other)[0])
