"""Scoring samples and models made outside genbench: every input form, the refusals, and the diffusers
adapter against the diffusers pipeline's own DDIM output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fileformats import make_idx_dataset
from genbench.cli import main
from genbench.errors import GenbenchError
from genbench.external.samples import array_to_images, load_samples
from test_bad_input import refused

FM = (1, 28, 28)


def grey(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def eval_args(env: Path, path: Path, out: str, *extra: str) -> list[str]:
    return ["eval", str(path), "--dataset", "fashion_mnist", "--data-dir", str(env / "fmnist"),
            "-o", str(env / out), "--metrics", "fid,kid,prdc", *extra]


def write_pngs(folder: Path, images: np.ndarray, mode: str = "L") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        arr = np.repeat(im[..., None], 3, axis=2) if mode == "RGB" else im
        Image.fromarray(arr, mode).save(folder / f"{i:05d}.png")


# ------------------------------------------------------------------------------------ reading samples

def test_every_array_layout_and_range_reads_to_the_same_images(tmp_path):
    u8 = grey(12)
    forms = {
        "nhw": u8, "nchw": u8[:, None], "nhwc": u8[..., None], "rgb-equal": np.repeat(u8[:, None], 3, axis=1),
        "signed": u8[:, None].astype(np.float32) / 127.5 - 1, "unit": u8[..., None].astype(np.float64) / 255,
        "int64": u8.astype(np.int64),
    }
    for name, arr in forms.items():
        images, statement = array_to_images(arr, FM, where=name)
        assert images.dtype == torch.uint8 and images.shape == (12, *FM), name
        assert torch.equal(images[:, 0], torch.from_numpy(u8)), name
    assert "N x H x W x C" in array_to_images(forms["nhwc"], FM)[1]
    assert "[-1, 1] (detected)" in array_to_images(forms["signed"], FM)[1]
    assert "[0, 1] (detected)" in array_to_images(forms["unit"], FM)[1]
    assert "read as greyscale" in array_to_images(forms["rgb-equal"], FM)[1]
    # .npy and .npz (one array, or the one named samples) read the same
    np.save(tmp_path / "a.npy", u8)
    np.savez_compressed(tmp_path / "b.npz", samples=u8[..., None], seeds=np.arange(12))
    a, b = load_samples(tmp_path / "a.npy", FM), load_samples(tmp_path / "b.npz", FM)
    assert a.fingerprint == b.fingerprint and a.kind == "array"


@pytest.mark.parametrize(("arr", "expect"), [
    (np.full((8, 28, 28), 0.7, np.float32), "ambiguous"),
    (np.random.default_rng(0).uniform(0.55, 1, (8, 28, 28)).astype(np.float32), "ambiguous"),
    (np.random.default_rng(0).uniform(0, 200, (8, 28, 28)), "neither in [-1, 1] nor in [0, 1]"),
    (np.random.default_rng(0).uniform(-3, 3, (8, 28, 28)), "outside floats in [-1, 1]"),
    (np.full((8, 28, 28), np.nan), "NaN"),
    (np.random.default_rng(0).integers(0, 256, (8, 3, 28, 28), dtype=np.uint8), "wrong channel count"),
    (np.zeros((8, 2, 28, 28), np.uint8), "wrong channel count"),
    (np.zeros((8, 32, 32), np.uint8), "does not resize"),
    (np.zeros((8, 784), np.uint8), "must be N x C x H x W"),
    (np.zeros((0, 28, 28), np.uint8), "holds no samples"),
])
def test_arrays_that_cannot_be_read_unambiguously_are_refused(arr, expect):
    with pytest.raises(GenbenchError, match=None) as err:
        array_to_images(arr, FM, where="x.npy")
    assert expect in str(err.value)


def test_value_range_settles_what_auto_refuses():
    vals = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.float64)
    images, statement = array_to_images(vals, FM, "bytes")
    assert torch.equal(images[:, 0], torch.from_numpy(vals.astype(np.uint8))) and "--value-range" in statement
    bright = np.full((4, 28, 28), 0.75)
    assert int(array_to_images(bright, FM, "unit")[0].max()) == round(0.75 * 255)
    assert int(array_to_images(bright, FM, "signed")[0].max()) == round(1.75 * 127.5)
    with pytest.raises(GenbenchError, match="outside floats in"):
        array_to_images(vals, FM, "signed")


def test_image_folders_read_greyscale_and_rgb_saved_greyscale(tmp_path):
    u8 = grey(6)
    write_pngs(tmp_path / "l", u8)
    write_pngs(tmp_path / "rgb" / "sub", u8, "RGB")   # recursive, and torchvision-style 3-channel greyscale
    (tmp_path / "rgb" / "notes.txt").write_text("left out")
    a, b = load_samples(tmp_path / "l", FM), load_samples(tmp_path / "rgb", FM)
    assert a.fingerprint == b.fingerprint and torch.equal(a.images[:, 0], torch.from_numpy(u8))
    assert "1 non-image file(s) left out" in b.statement and "read as greyscale" in b.statement


def test_folder_refusals(env, capsys):
    base = ["--dataset", "fashion_mnist", "--data-dir", str(env / "fmnist")]
    (env / "empty").mkdir()
    refused(["eval", str(env / "empty"), *base, "-o", str(env / "o1")], capsys, env, "has no files")
    (env / "text").mkdir()
    (env / "text" / "a.txt").write_text("x")
    refused(["eval", str(env / "text"), *base, "-o", str(env / "o2")], capsys, env, "only 1 non-image file")
    write_pngs(env / "mixed", grey(3))
    Image.fromarray(np.zeros((32, 32), np.uint8), "L").save(env / "mixed" / "zz.png")
    refused(["eval", str(env / "mixed"), *base, "-o", str(env / "o3")], capsys, env, "mixes image shapes")
    write_pngs(env / "broken", grey(3))
    (env / "broken" / "00001.png").write_bytes(b"not a png at all")
    refused(["eval", str(env / "broken"), *base, "-o", str(env / "o4")], capsys, env, "cannot read image")
    write_pngs(env / "colour", np.zeros((3, 28, 28), np.uint8))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8), "RGB") \
        .save(env / "colour" / "00000.png")
    refused(["eval", str(env / "colour"), *base, "-o", str(env / "o5")], capsys, env, "mixes image shapes")
    write_pngs(env / "few", grey(5))
    refused(["eval", str(env / "few"), *base, "-o", str(env / "o6"), "--metrics", "fid,prdc"], capsys, env,
            "fewer than the 6 that prdc needs")
    refused(["eval", str(env / "few"), *base, "-o", str(env / "o7"), "-n", "9"], capsys, env,
            "holds 5 samples, fewer than -n 9")
    refused(["eval", str(env / "few"), "--data-dir", str(env / "fmnist")], capsys, env, "add --dataset")
    refused(["eval", str(env / "few"), *base, "--solver", "ddim"], capsys, env, "--solver apply to a model")
    refused(["eval", str(env / "few"), *base, "--metrics", "speed"], capsys, env, "speed cannot be measured")
    np.savez(env / "two.npz", a=grey(4), b=grey(4))
    refused(["eval", str(env / "two.npz"), *base], capsys, env, "several arrays (a, b)")
    np.save(env / "pickled.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    refused(["eval", str(env / "pickled.npy"), *base], capsys, env, "not numbers")


def test_declared_array_size_is_checked_before_reading(env, capsys, monkeypatch):
    np.save(env / "big.npy", grey(20))
    np.savez_compressed(env / "bomb.npz", samples=np.zeros((2000, 28, 28), np.uint8))   # 1.5 MB in a few KB
    monkeypatch.setenv("GENBENCH_LIMIT_SAMPLE_ARRAY_BYTES", "100000")
    assert (env / "bomb.npz").stat().st_size < 100_000
    refused(["eval", str(env / "bomb.npz"), "--dataset", "fashion_mnist"], capsys, env, "unpacks to",
            "SAMPLE_ARRAY_BYTES")
    monkeypatch.setenv("GENBENCH_LIMIT_SAMPLE_ARRAY_BYTES", "2000")
    refused(["eval", str(env / "big.npy"), "--dataset", "fashion_mnist"], capsys, env, "SAMPLE_ARRAY_BYTES")


# ------------------------------------------------------------------------------------ scoring and comparing

def test_a_folder_and_an_array_of_the_same_samples_score_alike_and_compare_beside_a_run(env, capsys):
    from test_eval import train_tiny_gan

    u8 = grey(40, seed=3)
    write_pngs(env / "pngs", u8)
    np.save(env / "samples.npy", u8[:, None].astype(np.float32) / 127.5 - 1)
    assert main(eval_args(env, env / "pngs", "e-png")) == 0
    assert main(eval_args(env, env / "samples.npy", "e-npy")) == 0
    (a,) = (env / "e-png" / "eval").glob("*.json")
    (b,) = (env / "e-npy" / "eval").glob("*.json")
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["metrics"] == rb["metrics"] and ra["floor"] == rb["floor"]
    assert ra["sampling"]["n"] == 40 and ra["sampling"]["seeds"] is None and ra["weights"] == "external"
    assert ra["reference"]["dataset"] == "fashion_mnist" and ra["extractor"]["name"].startswith("domain")
    assert "[-1, 1] (detected)" in rb["source"]["read_as"] and ra["source"]["kind"] == "folder"
    assert (env / "e-png" / "samples" / "grid-000000000.png").is_file()
    # the same evaluation again is refused; another source into the folder too; a changed source needs --overwrite
    refused(eval_args(env, env / "pngs", "e-png"), capsys, env, "already exists")
    refused(eval_args(env, env / "samples.npy", "e-png"), capsys, env, "holds the scores of")
    write_pngs(env / "pngs", grey(40, seed=4))
    refused(eval_args(env, env / "pngs", "e-png"), capsys, env, "changed since")
    assert main(eval_args(env, env / "pngs", "e-png", "--overwrite")) == 0
    # re-scoring through the entry folder itself, with fewer samples
    assert main(["eval", str(env / "e-png"), "--metrics", "fid", "-n", "20"]) == 0
    assert (env / "e-png" / "eval" / "eval-samples-n20-domain-fashion_mnist-v1.json").is_file()
    # beside a run: same reference and sample count; the entry has no seed, speed or training
    run = env / "gan"
    train_tiny_gan(env, run)
    assert main(["eval", str(run), "-n", "40", "--metrics", "fid,kid,prdc"]) == 0
    assert main(["compare", str(run), str(env / "e-npy"), "-o", str(env / "report"), "--no-neighbours"]) == 0
    report = json.loads((env / "report" / "report.json").read_text())
    assert len(report["labels"]) == 2 and any("outside genbench" in n for n in report["notes"])
    assert "sampling.first_seed" not in report["protocol"]


def test_the_floor_is_served_from_its_cache_and_a_damaged_one_is_recomputed(env):
    np.save(env / "s.npy", grey(30))
    assert main(eval_args(env, env / "s.npy", "f1")) == 0
    (cached,) = (env / "cache" / "refstats").glob("floor-*.json")
    first = json.loads(next((env / "f1" / "eval").glob("*.json")).read_text())["floor"]
    assert json.loads(cached.read_text())["scores"]["fid"] == first["fid"]
    cached.write_text("{not json")
    assert main(eval_args(env, env / "s.npy", "f2")) == 0
    assert json.loads(next((env / "f2" / "eval").glob("*.json")).read_text())["floor"] == first
    assert json.loads(cached.read_text())["scores"]["fid"] == first["fid"]   # rewritten


def test_memorisation_counts_copies_of_training_images(env):
    train_images, _ = make_idx_dataset(env / "again", n_train=64, n_test=16)["train"]   # the fixture's, again
    np.save(env / "copies.npy", train_images[:30])
    np.save(env / "fresh.npy", grey(30, seed=9))
    assert main(eval_args(env, env / "copies.npy", "m1", "--metrics", "fid,memorisation")) == 0
    assert main(eval_args(env, env / "fresh.npy", "m2", "--metrics", "fid,memorisation")) == 0
    r1 = json.loads(next((env / "m1" / "eval").glob("*.json")).read_text())
    r2 = json.loads(next((env / "m2" / "eval").glob("*.json")).read_text())
    assert r1["metrics"]["memorised_fraction"] == 1.0 and r2["metrics"]["memorised_fraction"] == 0.0
    assert r1["floor"]["memorised_fraction"] == 0.0 and "ct" in r1["floor"]
    assert r1["memorisation"]["nn_ratio_threshold"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------ diffusers models

diffusers = pytest.importorskip("diffusers")


def save_pipeline(folder: Path, prediction: str = "epsilon", **scheduler) -> None:
    """A small randomly initialised 28x28 greyscale UNet2DModel and a DDIM scheduler, save_pretrained."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                 layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
                                 attention_head_dim=8)
    config = dict(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True,
                  timestep_spacing="trailing", prediction_type=prediction) | scheduler
    diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler(**config)).save_pretrained(folder)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_adapter_matches_the_diffusers_ddim_pipeline_for_the_same_noise(tmp_path, prediction):
    from genbench.external.diffusers import load_diffusers

    save_pipeline(tmp_path / "pipe", prediction)
    pipe = diffusers.DDIMPipeline.from_pretrained(tmp_path / "pipe")
    theirs = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=10, eta=0.0,
                  output_type="np").images
    x_init = torch.randn((2, 1, 28, 28), generator=torch.Generator().manual_seed(0))   # the pipeline's noise
    loaded = load_diffusers(tmp_path / "pipe", None, "cpu", need_dataset=False)
    with torch.no_grad():
        ours = loaded.method.sample(loaded.nets, x_init, solver="ddim", nfe=10)
    assert ours.nfe == 10
    ours_np = (ours.x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.abs(ours_np - theirs).max() < 1e-4
    # every genbench solver runs on it
    for solver, nfe in (("euler", 4), ("heun", 7), ("dpm++2m", 4), ("unipc", 4), ("ddpm", 10)):
        with torch.no_grad():
            out = loaded.method.sample(loaded.nets, x_init, solver=solver, nfe=nfe, noise=torch.randn_like)
        assert torch.isfinite(out.x).all() and out.nfe == nfe, solver


def test_diffusers_folder_through_eval_sweep_and_sample(env, capsys):
    save_pipeline(env / "pipe")
    args = ["--dataset", "fashion_mnist", "--data-dir", str(env / "fmnist"), "-o", str(env / "d"), "-n", "12",
            "--metrics", "fid"]
    assert main(["eval", str(env / "pipe"), *args, "--solver", "ddim", "--nfe", "4"]) == 0
    rec = json.loads(next((env / "d" / "eval").glob("eval-*.json")).read_text())
    assert rec["source"]["kind"] == "diffusers" and rec["sampling"]["nfe"] == 4 and rec["sampling"]["seeds"] == [0, 11]
    assert rec["source"]["prediction"] == "eps" and rec["weights"] == "as saved"
    assert main(["eval", str(env / "pipe"), *args, "--nfe-sweep", "--solver", "ddim,euler", "--nfe-list", "2,4"]) == 0
    sweep = json.loads((env / "d" / "eval" / "sweep-n12-seed0.json").read_text())
    assert sorted(sweep["curves"]) == ["ddim", "euler"] and [p["nfe"] for p in sweep["curves"]["euler"]] == [2, 4]
    assert main(["sample", str(env / "pipe"), "-n", "4", "--solver", "ddim", "--nfe", "4",
                 "-o", str(env / "s" / "x")]) == 0
    assert (env / "s" / "x.png").is_file() and np.load(env / "s" / "x.npz")["samples"].shape == (4, 28, 28, 1)
    refused(["sample", str(env / "pipe"), "-n", "4"], capsys, env, "give -o PATH")
    refused(["eval", str(env / "pipe"), "--dataset", "cifar10", "-o", str(env / "c")], capsys, env,
            "wrong channel count")


@pytest.mark.parametrize(("change", "expect"), [
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
    ({"beta_schedule": "sigmoid"}, "beta_schedule 'sigmoid'"),
    ({"prediction_type": "flow"}, "prediction_type 'flow'"),
])
def test_unsupported_scheduler_configs_are_refused(env, capsys, change, expect):
    save_pipeline(env / "pipe")
    path = env / "pipe" / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    refused(["eval", str(env / "pipe"), "--dataset", "fashion_mnist", "-o", str(env / "o")], capsys, env, expect)


def test_schedules_map_to_genbench_betas():
    from genbench.external.diffusers import betas_of
    from genbench.paths import cosine_betas

    lin = betas_of({"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}, "x")
    assert torch.allclose(lin, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    cos = betas_of({"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 100}, "x")
    ref = diffusers.DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2").betas
    assert torch.equal(cos, cosine_betas(100)) and torch.allclose(cos.float(), ref, atol=1e-6)
    sl = betas_of({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}, "x")
    ref = diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).betas
    assert torch.allclose(sl.float(), ref, atol=1e-7)


def test_missing_diffusers_is_one_line_with_the_install_fix(env, capsys, monkeypatch):
    import sys

    save_pipeline(env / "pipe")
    monkeypatch.setitem(sys.modules, "diffusers", None)
    refused(["eval", str(env / "pipe"), "--dataset", "fashion_mnist", "-o", str(env / "o")], capsys, env,
            "pip install diffusers")


def test_an_overwritten_entry_keeps_its_old_scores_until_the_new_ones_exist(tmp_path):
    from genbench.external import ENTRY_FILE
    from genbench.external.entry import ASIDE, opened_entry, read_entry

    folder = tmp_path / "entry"
    old = {"kind": "array", "source": "/x.npy", "name": "entry", "dataset": "fashion_mnist", "fingerprint": "a"}
    with opened_entry(folder, old, overwrite=False):
        (folder / "eval").mkdir()
        (folder / "eval" / "old.json").write_text("{}")
    new = {**old, "fingerprint": "b"}
    with pytest.raises(RuntimeError), opened_entry(folder, new, overwrite=True):   # the new scoring fails
        (folder / "eval").mkdir()
        (folder / "eval" / "half.json").write_text("{")
        raise RuntimeError("scoring failed")
    assert (folder / "eval" / "old.json").is_file() and not (folder / "eval" / "half.json").exists()
    assert read_entry(folder)["fingerprint"] == "a" and not (folder / ASIDE).exists()
    with opened_entry(folder, new, overwrite=True):                                 # it succeeds
        assert (folder / ASIDE / "eval" / "old.json").is_file() and (folder / ASIDE / ENTRY_FILE).is_file()
        (folder / "eval").mkdir()
        (folder / "eval" / "new.json").write_text("{}")
    assert sorted(p.name for p in (folder / "eval").iterdir()) == ["new.json"]
    assert read_entry(folder)["fingerprint"] == "b" and not (folder / ASIDE).exists()
