"""Networks: shapes, the shared call signature, gradients, conditioning and the DDPM parameter count."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from genbench.config import (
    DCGANDConfig,
    DCGANGConfig,
    MLPConfig,
    ResNetDConfig,
    ResNetGConfig,
    UNetConfig,
)
from genbench.errors import GenbenchError
from genbench.nets import build_net, count_params
from genbench.nets.embedding import timestep_embedding

IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32)]
TOY_SHAPE = (2,)


def tiny_unet(size: int, **kw) -> UNetConfig:
    # Two levels with attention at the lower one exercise every block type cheaply.
    base = dict(
        ch=8,
        ch_mult=[1, 2],
        num_res_blocks=1,
        attn_resolutions=[size // 2],
        dropout=0.0,
        groups=4,
        num_heads=2,
    )
    return UNetConfig(**{**base, **kw})


TINY_GAN = {
    "dcgan": (DCGANGConfig(z_dim=8, ch=4), DCGANDConfig(ch=4)),
    "resnet": (ResNetGConfig(z_dim=8, ch=8), ResNetDConfig(ch=8)),
}
TINY_MLP = {kind: MLPConfig(kind=kind, hidden=16, depth=2, z_dim=3) for kind in ("mlp", "mlp_g", "mlp_d")}


def perturb(net: nn.Module, scale: float = 0.05) -> nn.Module:
    """Add noise to every parameter so zero-initialised layers pass signal and gradient."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net


def assert_all_grads(net: nn.Module, out: torch.Tensor) -> None:
    # A random projection of the output avoids losses whose gradient vanishes by symmetry.
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


# ----------------------------------------------------------------------------- embedding


def test_embedding_matches_integer_timesteps():
    k = torch.tensor([0.0, 1.0, 500.0, 999.0])
    emb = timestep_embedding(k / 1000, 16)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(8) / 7)
    expected = torch.cat([torch.sin(k[:, None] * freqs), torch.cos(k[:, None] * freqs)], dim=1)
    assert emb.shape == (4, 16)
    torch.testing.assert_close(emb, expected, atol=1e-4, rtol=0)
    assert timestep_embedding(k / 1000, 7).shape == (4, 7)


# ----------------------------------------------------------------------------- unet


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_unet_shape_and_grads(shape):
    net = perturb(build_net(tiny_unet(shape[1]), shape))
    x, t = torch.randn(2, *shape), torch.rand(2)
    out = net(x, t)
    assert out.shape == x.shape
    assert_all_grads(net, out)


def test_unet_three_levels_at_28():
    cfg = tiny_unet(28, ch_mult=[1, 2, 2], attn_resolutions=[14, 7])
    net = build_net(cfg, (1, 28, 28))
    assert net(torch.randn(1, 1, 28, 28), torch.rand(1)).shape == (1, 1, 28, 28)


def test_unet_starts_at_zero_and_needs_t():
    net = build_net(tiny_unet(32), (3, 32, 32))
    x = torch.randn(2, 3, 32, 32)
    assert net(x, torch.rand(2)).abs().max() == 0  # zero-initialised conv_out
    with pytest.raises(ValueError, match="time-conditioned"):
        net(x)
    assert net(x, 0.5).shape == x.shape  # a scalar t is broadcast


def test_unet_depends_on_t_and_y():
    net = perturb(build_net(tiny_unet(28), (1, 28, 28), num_classes=3)).eval()
    x = torch.randn(2, 1, 28, 28)
    t = torch.full((2,), 0.3)
    y0, y1 = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    with torch.no_grad():
        base = net(x, t, y0)
        assert not torch.allclose(base, net(x, torch.full((2,), 0.7), y0))
        assert not torch.allclose(base, net(x, t, y1))
        assert not torch.allclose(base, net(x, t))  # y=None is the "no label" token
        torch.testing.assert_close(base, net(x, t, y0))


def test_unconditional_unet_ignores_y():
    net = perturb(build_net(tiny_unet(28), (1, 28, 28))).eval()
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t), net(x, t, torch.tensor([0, 1])))


def test_unet_channels_last_matches_contiguous():
    net = perturb(build_net(tiny_unet(32), (3, 32, 32))).eval()
    x, t = torch.randn(2, 3, 32, 32), torch.rand(2)
    with torch.no_grad():
        ref = net(x, t)
        out = net(x.to(memory_format=torch.channels_last), t)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
        net = net.to(memory_format=torch.channels_last)
        out = net(x.to(memory_format=torch.channels_last), t)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_ddpm_cifar10_parameter_count():
    # Ho et al. 2020 report 35.7M; diffusers' UNet2DModel with this config has 35,746,307.
    net = build_net(UNetConfig(), (3, 32, 32))
    assert count_params(net) == 35_746_307


@pytest.mark.parametrize(
    "kw, shape, match",
    [
        (dict(ch_mult=[1, 2, 2, 2], attn_resolutions=[]), (1, 28, 28), "divisible by 8"),
        (dict(ch=12, groups=8), (3, 32, 32), "does not divide"),
        (dict(attn_resolutions=[8]), (3, 32, 32), "match no level"),
        (dict(num_heads=3), (3, 32, 32), "num_heads"),
    ],
)
def test_unet_bad_config_raises(kw, shape, match):
    with pytest.raises(GenbenchError, match=match):
        build_net(tiny_unet(shape[1], **kw), shape)


# ----------------------------------------------------------------------------- GANs


@pytest.mark.parametrize("family", sorted(TINY_GAN))
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_image_gan_shapes_and_grads(family, shape):
    g_cfg, d_cfg = TINY_GAN[family]
    g, d = build_net(g_cfg, shape), build_net(d_cfg, shape)
    assert g.z_dim == 8
    z = torch.randn(3, g.z_dim)
    fake = g(z, None, torch.tensor([0, 1, 2]))
    assert fake.shape == (3, *shape)
    assert fake.abs().max() <= 1
    logits = d(fake, None, torch.tensor([0, 1, 2]))
    assert logits.shape == (3,)
    assert_all_grads(d, logits)
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"generator {name} got no gradient through D"


@pytest.mark.parametrize("family", sorted(TINY_GAN))
def test_image_gan_at_64(family):
    g_cfg, d_cfg = TINY_GAN[family]
    g, d = build_net(g_cfg, (3, 64, 64)), build_net(d_cfg, (3, 64, 64))
    assert d(g(torch.randn(2, g.z_dim))).shape == (2,)


def test_resnet_d_spectral_norm_everywhere():
    d = build_net(ResNetDConfig(ch=8), (3, 32, 32))
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 11  # optimised block 3, down block 3, two plain blocks 2 each, linear 1
    for m in layers:
        assert parametrize.is_parametrized(m, "weight")
        assert type(m.parametrizations.weight[0]).__name__ == "_SpectralNorm"
    plain = build_net(ResNetDConfig(ch=8, spectral_norm=False), (3, 32, 32))
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


@pytest.mark.parametrize("kind", ["dcgan_g", "dcgan_d", "resnet_g", "resnet_d"])
def test_gan_bad_sizes_raise(kind):
    cfg = {
        "dcgan_g": DCGANGConfig(),
        "dcgan_d": DCGANDConfig(),
        "resnet_g": ResNetGConfig(),
        "resnet_d": ResNetDConfig(),
    }[kind]
    for shape in [(3, 27, 27), (3, 32, 28), (2,)]:
        with pytest.raises(GenbenchError):
            build_net(cfg, shape)


# ----------------------------------------------------------------------------- 2-D MLPs


def test_mlp_model():
    net = build_net(TINY_MLP["mlp"], TOY_SHAPE)
    x, t = torch.randn(5, 2), torch.rand(5)
    out = net(x, t, torch.zeros(5, dtype=torch.long))
    assert out.shape == (5, 2)
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.zeros(5)), net(x, torch.ones(5)))
    with pytest.raises(ValueError):
        net(x)
    assert_all_grads(net, out)


def test_mlp_gan_pair():
    g, d = build_net(TINY_MLP["mlp_g"], TOY_SHAPE), build_net(TINY_MLP["mlp_d"], TOY_SHAPE)
    assert g.z_dim == 3
    fake = g(torch.randn(5, 3), None, None)
    assert fake.shape == (5, 2)
    logits = d(fake, None, torch.zeros(5, dtype=torch.long))
    assert logits.shape == (5,)
    assert_all_grads(d, logits)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def test_mlp_refuses_images_and_image_nets_refuse_points():
    with pytest.raises(GenbenchError, match="vector"):
        build_net(MLPConfig(), (1, 28, 28))
    with pytest.raises(GenbenchError, match=r"\(C, H, W\)"):
        build_net(UNetConfig(), (2,))


def test_count_params():
    assert count_params(nn.Linear(3, 4)) == 16
