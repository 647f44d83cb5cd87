"""`genbench export`: the folder, the model card, the round trip, and the exact diffusers mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from genbench.cli import main
from genbench.config import load_config
from genbench.external.to_diffusers import convert_state_dict, mapping_problem, unet_config
from genbench.presets import resolve_config
from test_bad_input import refused

diffusers = pytest.importorskip("diffusers")


def train_tiny_ddpm(env: Path, run: Path, *extra: str) -> None:
    assert main(["train", "fmnist/ddpm", "nets.model.ch=8", "nets.model.groups=4", f"data.root={env / 'fmnist'}",
                 "data.download=false", "train.batch_size=8", "train.budget={steps: 2}", "train.tensorboard=false",
                 "train.grid_n=4", *extra, "--out", str(run), "--no-progress"]) == 0


@pytest.mark.parametrize(("preset", "maps"), [("fmnist/ddpm", True), ("cifar10/ddpm", True),
                                               ("fmnist/flow", False), ("fmnist/edm", False), ("fmnist/gan", False)])
def test_which_presets_map_onto_unet2dmodel(preset, maps):
    cfg = load_config(resolve_config(preset), [])
    shape = (1, 28, 28) if preset.startswith("fmnist") else (3, 32, 32)
    assert (mapping_problem(cfg, shape, None) is None) == maps


def randomised_unet(cfg_overrides: list[str], shape):
    from genbench.nets import build_net

    cfg = load_config(resolve_config("fmnist/ddpm"), cfg_overrides)
    torch.manual_seed(0)
    net = build_net(cfg.nets["model"], shape).eval()
    with torch.no_grad():   # the zero-initialised layers too, so that every weight is tested
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return cfg, net


@pytest.mark.parametrize("overrides", [[], ["nets.model.num_res_blocks=2", "nets.model.num_heads=2"],
                                       ["nets.model.attn_resolutions=[14,7]", "nets.model.ch_mult=[1,1,1]"]])
def test_unet2dmodel_at_step_k_is_genbenchs_unet_at_t_k_plus_1_over_T(overrides):
    shape = (1, 28, 28)
    cfg, net = randomised_unet(["nets.model.ch=16", *overrides], shape)
    assert mapping_problem(cfg, shape, None) is None
    unet = diffusers.UNet2DModel(**unet_config(cfg.nets["model"], shape)).eval()
    unet.load_state_dict(convert_state_dict(net.state_dict(), cfg.nets["model"], 1000), strict=True)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    for k in (0, 1, 250, 999):
        with torch.no_grad():
            ours = net(x, torch.full((3,), (k + 1) / 1000))
            theirs = unet(x, torch.full((3,), k)).sample
        assert (ours - theirs).abs().max() <= 1e-4 * ours.abs().max(), k


def test_export_writes_the_card_and_both_formats_and_round_trips(env, capsys):
    run = env / "ddpm"
    train_tiny_ddpm(env, run)
    ev = ["-n", "16", "--solver", "ddim", "--nfe", "4", "--metrics", "fid,kid"]
    assert main(["eval", str(run), *ev]) == 0
    assert main(["export", str(run), "--to", str(env / "exp")]) == 0
    exp = env / "exp"
    for name in ("model.safetensors", "config.yaml", "genbench_export.json", "README.md", "samples.png",
                 "diffusers/unet/config.json", "diffusers/scheduler/scheduler_config.json"):
        assert (exp / name).is_file(), name
    assert len(list((exp / "evaluations").glob("*.json"))) == 1
    card = (exp / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "genbench" and front["pipeline_tag"] == "unconditional-image-generation"
    assert front["datasets"] == ["zalando-datasets/fashion_mnist"] and "diffusers" in front["tags"]
    assert front["model-index"][0]["results"][0]["metrics"][0]["type"] in ("fid", "kid")
    for section in ("## Data provenance", "## Recipe", "## Evaluation", "![fixed-seed samples](samples.png)",
                    "real-data floor", "max |difference|"):
        assert section in card, section
    meta = json.loads((exp / "genbench_export.json").read_text())
    assert meta["weights"] == "ema" and meta["diffusers"]["written"] and meta["diffusers"]["max_abs_diff"] < 1e-3
    # the exported model, evaluated again: the same samples, so the same FID (to 1e-6: here bitwise)
    assert main(["eval", str(exp), *ev, "-o", str(env / "again")]) == 0
    own = json.loads(next((run / "eval").glob("*.json")).read_text())
    back = json.loads(next((env / "again" / "eval").glob("*.json")).read_text())
    assert abs(back["metrics"]["fid"] - own["metrics"]["fid"]) <= 1e-6
    assert back["source"]["kind"] == "export" and back["checkpoint"]["step"] == own["checkpoint"]["step"]
    # and its diffusers folder reads back through the diffusers adapter, close to the run's own
    assert main(["eval", str(exp / "diffusers"), *ev, "--dataset", "fashion_mnist", "--data-dir",
                 str(env / "fmnist"), "-o", str(env / "viadiffusers"), "--clip", "static"]) == 0
    via = json.loads(next((env / "viadiffusers" / "eval").glob("*.json")).read_text())
    assert via["metrics"]["fid"] == pytest.approx(own["metrics"]["fid"], rel=1e-2)
    # nothing overwritten without --overwrite; a folder genbench did not write is never replaced
    refused(["export", str(run), "--to", str(exp)], capsys, env, "already exists")
    (env / "mine").mkdir()
    (env / "mine" / "notes.txt").write_text("keep")
    refused(["export", str(run), "--to", str(env / "mine"), "--overwrite"], capsys, env, "not a genbench export")
    assert main(["export", str(run), "--to", str(exp), "--overwrite", "--no-diffusers"]) == 0
    assert not (exp / "diffusers").exists() and "No diffusers format: not asked for" in (exp / "README.md").read_text()


def test_a_run_that_does_not_map_says_why_in_its_card(env):
    run = env / "flow"
    assert main(["train", "fmnist/flow", "nets.model.ch=8", "nets.model.groups=4", f"data.root={env / 'fmnist'}",
                 "data.download=false", "train.batch_size=8", "train.budget={steps: 2}", "train.tensorboard=false",
                 "train.grid_n=4", "--out", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), "--to", str(env / "exp")]) == 0
    card = (env / "exp" / "README.md").read_text()
    assert "No diffusers format: method 'flow' is not DDPM" in card
    assert "The run has no evaluation" in card
    assert main(["sample", str(env / "exp"), "-n", "4", "--nfe", "2", "-o", str(env / "s" / "x")]) == 0
