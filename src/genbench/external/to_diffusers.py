"""genbench's DDPM UNet as a diffusers ``UNet2DModel``, where the two networks are the same function.

Layer by layer the two are one architecture (Ho et al. 2020, Appendix B): genbench's ``ResBlock``
is diffusers' ``ResnetBlock2D`` (norm1-SiLU-conv1, + time_emb_proj(SiLU(temb)), norm2-SiLU-dropout-
conv2, 1x1 ``conv_shortcut`` when the width changes), ``AttnBlock`` is ``Attention`` with a group
norm and a residual (genbench's fused 1x1 ``qkv`` conv splits into ``to_q``/``to_k``/``to_v``, the 1x1
``proj`` is ``to_out.0``), the down/mid/up layout and skip widths are those of ``UNet2DModel`` with
``AttnDownBlock2D``/``DownBlock2D`` per level, GroupNorm eps 1e-6, and the sinusoidal embedding is
diffusers' with ``flip_sin_to_cos=False, freq_shift=1`` (sines first, frequencies 10000^(-i/(half-1))).

The one difference is the time input. genbench feeds its embedding 1000 t with t = (k + 1) / T for
DDPM step k (``time_scale`` = 1000 by default), diffusers feeds k. For T = time_scale = 1000 that is a shift by one step, and a shift of the
embedding's argument is a rotation of each (sin, cos) pair: sin(w(k + 1)) = sin(wk) cos w + cos(wk)
sin w. It is folded into the first time layer's weights (W' = W R), so diffusers' UNet at step k is
genbench's net at t = (k + 1) / T, up to float32 rounding. Otherwise the embedding would need its
argument scaled by time_scale / T, which ``UNet2DModel`` cannot express: such runs are refused, as are
MeanFlow's two-time nets,
class-conditional nets, nets whose first level widens the base width (``ch_mult[0] != 1``: diffusers
embeds time with ``block_out_channels[0]`` channels, genbench with ``ch``), non-square images, and
attention levels of different head widths (``UNet2DModel`` takes one ``attention_head_dim``).
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor

from genbench.nets.unet_blocks import GN_EPS

DIFFUSERS_T = 1000
SCHEDULE_NAMES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTION_NAMES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def mapping_problem(cfg, data_shape: tuple[int, ...], num_classes: int | None) -> str | None:
    """Why the run's sampling network does not map exactly onto ``UNet2DModel`` + a DDPM schedule (None: it does)."""
    if cfg.method.kind != "diffusion":
        return (f"method '{cfg.method.kind}' is not DDPM: diffusers' unconditional pipelines sample a discrete "
                "VP schedule, and genbench does not write its EDM/flow samplers as diffusers schedulers")
    net = cfg.nets["model"]
    if net.kind != "unet":
        return f"the network is '{net.kind}', not genbench's UNet"
    m = cfg.method
    if net.second_time:
        return "the network takes a second time (MeanFlow's interval), which UNet2DModel has no input for"
    if m.T != DIFFUSERS_T or net.time_scale != m.T:
        return (f"T = {m.T}, time_scale = {net.time_scale:g}: genbench embeds time as time_scale (k + 1) / T, "
                f"diffusers as the step k; the two differ by a fixed shift (folded into the weights) only when "
                f"T = time_scale = {DIFFUSERS_T}")
    if m.schedule == "cosine" and m.cosine_s != 0.008:
        return f"cosine_s = {m.cosine_s}: diffusers' squaredcos_cap_v2 fixes s = 0.008"
    if num_classes:
        return "the network is class-conditional: diffusers' UNet2DModel would need class labels on every call"
    if net.ch_mult[0] != 1:
        return (f"ch_mult[0] = {net.ch_mult[0]}: diffusers embeds time with block_out_channels[0] channels, "
                "genbench with ch")
    c, h, w = data_shape
    if h != w:
        return f"the images are {h}x{w}: UNet2DModel's sample_size is square"
    widths = [net.ch * mult for mult, r in zip(net.ch_mult, _resolutions(net, h), strict=True)
              if r in net.attn_resolutions] + [net.ch * net.ch_mult[-1]]
    if len({wd // net.num_heads for wd in widths}) > 1:
        return (f"attention widths {sorted(set(widths))} with {net.num_heads} head(s) give different head widths; "
                "UNet2DModel takes one attention_head_dim")
    return None


def _resolutions(net, h: int) -> list[int]:
    return [h // 2**i for i in range(len(net.ch_mult))]


def unet_config(net, data_shape: tuple[int, ...]) -> dict:
    """``UNet2DModel``'s constructor arguments for genbench's ``UNetConfig`` ``net``."""
    c, h, _ = data_shape
    attn = [r in net.attn_resolutions for r in _resolutions(net, h)]
    return {
        "sample_size": h, "in_channels": c, "out_channels": c, "center_input_sample": False,
        "time_embedding_type": "positional", "flip_sin_to_cos": False, "freq_shift": 1,
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "mid_block_type": "UNetMidBlock2D", "block_out_channels": [net.ch * m for m in net.ch_mult],
        "layers_per_block": net.num_res_blocks, "mid_block_scale_factor": 1, "downsample_padding": 1,
        "downsample_type": "conv", "upsample_type": "conv", "dropout": net.dropout, "act_fn": "silu",
        "attention_head_dim": net.ch * net.ch_mult[-1] // net.num_heads, "norm_num_groups": net.groups,
        "norm_eps": GN_EPS, "resnet_time_scale_shift": "default", "add_attention": True,
    }


def scheduler_config(method, clip: str) -> dict:
    """A ``DDIMScheduler`` config with the run's schedule and prediction (trailing steps end at x0, as genbench's DDIM)."""
    return {"num_train_timesteps": method.T, "beta_schedule": SCHEDULE_NAMES[method.schedule],
            "beta_start": method.beta_start, "beta_end": method.beta_end,
            "prediction_type": PREDICTION_NAMES[method.prediction], "clip_sample": clip == "static",
            "clip_sample_range": 1.0, "set_alpha_to_one": True, "timestep_spacing": "trailing", "steps_offset": 0}


RES_PARTS = {"norm1": "norm1", "conv1": "conv1", "t_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
             "skip": "conv_shortcut"}


def _fold_time_shift(weight: Tensor, ch: int, shift: float) -> Tensor:
    """W R: the first time layer's weight taking the embedding at s to what W gives at s + shift."""
    half = ch // 2
    w = weight.double()
    freqs = torch.exp(torch.arange(half, dtype=torch.float64) * (-math.log(10000.0) / max(half - 1, 1)))
    cos, sin = torch.cos(freqs * shift), torch.sin(freqs * shift)
    out = w.clone()
    ws, wc = w[:, :half], w[:, half:2 * half]
    out[:, :half] = ws * cos - wc * sin
    out[:, half:2 * half] = ws * sin + wc * cos
    return out.to(weight.dtype)


def convert_state_dict(sd: dict[str, Tensor], net, T: int) -> dict[str, Tensor]:
    """genbench UNet weights -> ``UNet2DModel`` weights (names, the qkv split, 1x1 convs as linears, the time fold)."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        value = value.detach().cpu()
        if key.startswith("time_mlp."):
            layer, param = key.split(".")[1:]
            name = {"0": "linear_1", "2": "linear_2"}[layer]
            if name == "linear_1" and param == "weight":
                value = _fold_time_shift(value, net.ch, net.time_scale / T)
            out[f"time_embedding.{name}.{param}"] = value
            continue
        simple = {"conv_in": "conv_in", "norm_out": "conv_norm_out", "conv_out": "conv_out"}
        head = key.split(".")[0]
        if head in simple:
            out[simple[head] + key[len(head):]] = value
            continue
        mm = re.fullmatch(r"(down|up)\.(\d+)\.(down|up)\.conv\.(weight|bias)", key)
        if mm:
            side, i, kind, param = mm.groups()
            out[f"{side}_blocks.{i}.{kind}samplers.0.conv.{param}"] = value
            continue
        mm = re.fullmatch(r"(?:(down|up)\.(\d+)\.blocks\.(\d+)|mid\.(\d+))\.(res|attn)\.(\w+)\.(weight|bias)", key)
        if not mm:
            raise KeyError(f"no UNet2DModel counterpart for {key}")
        side, i, j, mid, part, layer, param = mm.groups()
        if mid is not None:   # mid.0 = resnets.0 + attentions.0, mid.1 = resnets.1
            prefix = f"mid_block.{'resnets' if part == 'res' else 'attentions'}.{mid if part == 'res' else 0}"
        else:
            prefix = f"{side}_blocks.{i}.{'resnets' if part == 'res' else 'attentions'}.{j}"
        if part == "res":
            out[f"{prefix}.{RES_PARTS[layer]}.{param}"] = value
        elif layer == "norm":
            out[f"{prefix}.group_norm.{param}"] = value
        elif layer == "qkv":
            for name, chunk in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0), strict=True):
                out[f"{prefix}.{name}.{param}"] = chunk.reshape(chunk.shape[0], -1) if param == "weight" else chunk
        elif layer == "proj":
            out[f"{prefix}.to_out.0.{param}"] = value.reshape(value.shape[0], -1) if param == "weight" else value
        else:
            raise KeyError(f"no UNet2DModel counterpart for {key}")
    return {k: v.contiguous() for k, v in out.items()}
