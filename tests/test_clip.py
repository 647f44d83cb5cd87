"""x0 clipping while sampling (issue 14): static clamping (Ho et al. 2020's sampler) and dynamic
thresholding (Saharia et al. 2022, Sec. 2.3), for every solver that forms x0, recorded with the samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genbench.cli import main
from genbench.methods.model_fn import clip_x0
from genbench.paths import LinearPath
from test_bad_input import IMG_TINY, refused, toy_args

PATH = LinearPath()


def _denoiser(x0):
    def denoise(x_t, t):
        c = PATH.coeffs(t)
        a, s = c.alpha.view(-1, 1, 1, 1), c.sigma.view(-1, 1, 1, 1)
        return x0, (x_t - a * x0) / s
    return denoise


def test_static_clipping_clamps_x0_and_keeps_the_path_consistent():
    x0 = torch.linspace(-3, 3, 2 * 16).view(2, 1, 4, 4)
    x_t, t = torch.randn(2, 1, 4, 4), torch.full((2,), 0.4)
    c0, eps = clip_x0(_denoiser(x0), PATH, "static")(x_t, t)
    assert torch.equal(c0, x0.clamp(-1, 1))
    assert torch.allclose(0.6 * c0 + 0.4 * eps, x_t, atol=1e-6)   # x_t = alpha x0 + sigma eps still


def test_dynamic_thresholding_rescales_only_samples_beyond_the_range():
    inside = torch.rand(1, 1, 8, 8) * 1.8 - 0.9             # |x0| < 1: left alone
    outside = torch.linspace(-4, 4, 64).view(1, 1, 8, 8)      # s = the 99.5th percentile of |x0| > 1
    x0 = torch.cat([inside, outside])
    c0, _ = clip_x0(_denoiser(x0), PATH, "dynamic")(torch.zeros_like(x0), torch.full((2,), 0.5))
    assert torch.equal(c0[0], inside[0])
    s = outside.abs().flatten().quantile(0.995)
    assert torch.allclose(c0[1], outside[0].clamp(-s, s) / s) and c0[1].abs().max() <= 1
    assert c0[1].abs().max() == pytest.approx(1.0)


@pytest.fixture
def image_run(env, capsys, tmp_path):
    run = tmp_path / "img"
    argv = ["train", "configs/fmnist/flow.yaml", *IMG_TINY, f"data.root={env / 'fmnist'}", "data.download=false",
            "train.batch_size=8", "train.budget={steps: 2}", "train.ckpt_every=2", "train.sample_every=1000",
            "train.grid_n=4", "train.tensorboard=false", "--no-progress", "--out", str(run)]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return run


def test_clipped_samples_stay_in_range_and_are_named_apart(image_run, capsys):
    assert main(["sample", str(image_run), "-n", "8", "--format", "npz", "--solver", "euler", "--nfe", "4",
                 "--clip", "static"]) == 0
    (clipped,) = [p for p in (image_run / "samples").glob("*.npz") if "clipstatic" in p.name]
    assert main(["sample", str(image_run), "-n", "8", "--format", "npz", "--solver", "euler", "--nfe", "4"]) == 0
    plain = [p for p in (image_run / "samples").glob("*.npz") if "clip" not in p.name]
    assert len(plain) == 1
    a, b = np.load(clipped)["samples"], np.load(plain[0])["samples"]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_clipping_is_refused_where_it_means_nothing(tmp_path, capsys):
    gan, flow = tmp_path / "gan", tmp_path / "flow"
    assert main(toy_args("gan", gan)) == 0 and main(toy_args("flow", flow)) == 0
    capsys.readouterr()
    refused(["sample", str(gan), "-n", "4", "--clip", "static"], capsys, tmp_path, "GAN", "drop --clip")
    refused(["sample", str(flow), "-n", "4", "--clip", "dynamic"], capsys, tmp_path, "2-D points")


def test_a_presets_sample_clip_is_the_default_and_the_command_line_overrides_it(env, capsys, tmp_path):
    from test_bad_input import img_args

    run = tmp_path / "ddpm"
    assert main(img_args(env / "fmnist", run, "train.ckpt_every=2", "train.sample_every=1000", "train.grid_n=4")) == 0
    capsys.readouterr()
    base = ["sample", str(run), "-n", "4", "--format", "npz", "--solver", "ddim", "--nfe", "4"]
    assert main(base) == 0 and main([*base, "--clip", "none"]) == 0
    names = sorted(p.name for p in (run / "samples").glob("*.npz"))
    assert len(names) == 2 and sum("-clipstatic" in n for n in names) == 1   # fmnist/ddpm: sample.clip static
