"""Building blocks of the DDPM UNet (Ho et al. 2020, Appendix B; PixelCNN++ backbone).

Initialisation follows the DDPM code: Xavier-uniform weights, zero biases, and zero weights on
the last conv of each residual block and on the attention output projection, so that every
block starts as the identity map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Ho et al.'s TensorFlow GroupNorm uses eps=1e-6 (PyTorch's default is 1e-5).
GN_EPS = 1e-6


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=GN_EPS)


def init_xavier(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases on every conv and linear layer of ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_(layer: nn.Conv2d | nn.Linear) -> nn.Conv2d | nn.Linear:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the projected time embedding, GroupNorm-SiLU-dropout-conv, skip."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t_proj = nn.Linear(t_dim, c_out)
        self.norm2 = group_norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # Ho et al. use a 1x1 "nin" shortcut when the width changes, identity otherwise.
        self.skip: nn.Module = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        init_xavier(self)
        zero_(self.conv2)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        # The DDPM code applies the nonlinearity to the embedding before each block's projection.
        h = h + self.t_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Residual self-attention over all pixels: GroupNorm, 1x1 qkv, softmax attention, 1x1 proj."""

    def __init__(self, channels: int, groups: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        init_xavier(self)
        zero_(self.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        heads, d = self.num_heads, c // self.num_heads
        qkv = self.qkv(self.norm(x)).reshape(n, 3, heads, d, h * w)
        # SDPA wants (N, heads, tokens, d); its default scale 1/sqrt(d) is Ho et al.'s C^-1/2 for one head.
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.proj(out)


class ResAttn(nn.Module):
    """A residual block optionally followed by self-attention, the unit the UNet stacks."""

    def __init__(
        self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float, attn: bool, heads: int
    ):
        super().__init__()
        self.res = ResBlock(c_in, c_out, t_dim, groups, dropout)
        self.attn: nn.Module = AttnBlock(c_out, groups, heads) if attn else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, temb))


class Downsample(nn.Module):
    """Stride-2 conv3x3 (the DDPM code's ``resamp_with_conv`` downsampling)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        init_xavier(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by conv3x3."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        init_xavier(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
