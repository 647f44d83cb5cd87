"""Class-conditional training (issue 17, training side): nets that take y, label dropout in the losses,
the classes carried from the data to the checkpoint, run.json and the loaded run, refusals, exact resume."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.cli import main
from genbench.config import (
    DCGANDConfig,
    DCGANGConfig,
    DiffusionConfig,
    ECTConfig,
    EDMConfig,
    FlowConfig,
    MeanFlowConfig,
    MLPConfig,
    R3GANDConfig,
    R3GANGConfig,
    ResNetDConfig,
    ResNetGConfig,
    UNetConfig,
    load_config,
)
from genbench.errors import GenbenchError
from genbench.methods import build_method
from genbench.methods.labels import drop_labels
from genbench.nets import build_net
from genbench.nets.classes import latent_labels
from genbench.randomness import BatchDraws
from genbench.run import load_run
from genbench.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from test_kill_resume import kill, logged, same, start, toy_args, wait_for

K = 10
IMG = (1, 28, 28)
GENERATORS = {
    "mlp_g": (MLPConfig(kind="mlp_g", hidden=16, depth=2, z_dim=4), (2,)),
    "dcgan_g": (DCGANGConfig(ch=8, z_dim=8), IMG),
    "resnet_g": (ResNetGConfig(ch=8, z_dim=8), IMG),
    "r3gan_g": (R3GANGConfig(ch=8, z_dim=8, blocks=1, groups=2), IMG),
}
DISCRIMINATORS = {
    "mlp_d": (MLPConfig(kind="mlp_d", hidden=16, depth=2), (2,)),
    "dcgan_d": (DCGANDConfig(ch=8), IMG),
    "resnet_d": (ResNetDConfig(ch=8), IMG),
    "r3gan_d": (R3GANDConfig(ch=8, blocks=1, groups=2), IMG),
}
MODELS = {
    "mlp": (MLPConfig(kind="mlp", hidden=16, depth=2), (2,)),
    "unet": (UNetConfig(ch=8, ch_mult=[1, 2], attn_resolutions=[14], groups=4, num_res_blocks=1), IMG),
}
# what a conditional net adds to its unconditional twin: nothing else may differ
CLASS_KEYS = {
    "mlp": {"class_emb.weight"}, "unet": {"class_emb.weight"},
    **{g: {"labels.embed.weight"} for g in GENERATORS},
    "mlp_d": {"projection.embed.weight"}, "dcgan_d": {"projection.embed.weight"},
    "r3gan_d": {"projection.embed.weight"},
    "resnet_d": {"projection.embed.parametrizations.weight.original", "projection.embed.parametrizations.weight.0._u",
                 "projection.embed.parametrizations.weight.0._v"},
}
ALL = {**GENERATORS, **DISCRIMINATORS, **MODELS}


def _pair(kind: str):
    cfg, shape = ALL[kind]
    torch.manual_seed(0)
    plain = build_net(cfg, shape).eval()
    torch.manual_seed(0)
    cond = build_net(cfg, shape, K).eval()
    return plain, cond, shape


def _labels(n: int, k: int) -> torch.Tensor:
    return torch.full((n,), k, dtype=torch.long)


# ----------------------------------------------------------------------------- nets


@pytest.mark.parametrize("kind", sorted(DISCRIMINATORS))
def test_projection_discriminator_depends_on_y_and_the_unconditional_one_ignores_it(kind):
    plain, cond, shape = _pair(kind)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        a, b = cond(x, None, _labels(4, 0)), cond(x, None, _labels(4, 3))
        assert a.shape == (4,) and not torch.allclose(a, b)
        assert torch.equal(plain(x, None, _labels(4, 3)), plain(x))
    with pytest.raises(ValueError, match="class-conditional"):
        cond(x)   # a GAN has no "no label" token: D needs the class


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_every_conditional_generator_depends_on_y(kind):
    plain, cond, _ = _pair(kind)
    z = torch.randn(4, cond.z_dim)
    with torch.no_grad():
        a, b = cond(z, None, _labels(4, 0)), cond(z, None, _labels(4, 7))
        assert not torch.allclose(a, b)
        assert torch.equal(plain(z, None, _labels(4, 7)), plain(z))
        # without labels: the class of each latent, floor(K Phi(z_1)), the same whatever the batch
        assert torch.equal(cond(z), cond(z, None, latent_labels(z, K)))
        assert torch.allclose(cond(z[:1]), cond(z)[:1], atol=1e-6)


def test_latent_labels_are_uniform_over_the_classes():
    z = torch.randn(50_000, 3, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount(latent_labels(z, K), minlength=K)
    assert (counts.float() / 50_000 - 1 / K).abs().max() < 0.01


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_conditional_model_nets_depend_on_y_and_have_a_no_label_token(kind):
    plain, cond, shape = _pair(kind)
    if kind == "unet":   # the UNet's output convs start at zero (Ho et al.): give it an output to compare
        with torch.no_grad():
            for p in cond.parameters():
                p.add_(0.1 * torch.randn_like(p))
    x, t = torch.randn(3, *shape), torch.rand(3)
    with torch.no_grad():
        assert not torch.allclose(cond(x, t, _labels(3, 1)), cond(x, t, _labels(3, 2)))
        assert torch.equal(cond(x, t), cond(x, t, _labels(3, K)))    # y = None is the token K
        assert torch.equal(plain(x, t, _labels(3, 2)), plain(x, t))
    assert cond.num_classes == K and plain.num_classes is None


@pytest.mark.parametrize("kind", sorted(ALL))
def test_unconditional_nets_keep_their_parameters(kind):
    plain, cond, _ = _pair(kind)
    assert set(cond.state_dict()) - set(plain.state_dict()) == CLASS_KEYS[kind]
    assert set(plain.state_dict()) <= set(cond.state_dict())
    assert not any(k.startswith(("class_emb", "labels.", "projection.")) for k in plain.state_dict())


# ----------------------------------------------------------------------------- label dropout


def test_label_dropout_rate_is_respected_and_drawn_from_the_draws():
    y = torch.arange(20_000) % K
    dropped = drop_labels(y, 0.25, K, BatchDraws(torch.Generator().manual_seed(3)))
    share = (dropped == K).float().mean().item()
    assert abs(share - 0.25) < 0.01
    assert torch.equal(dropped[dropped != K], y[dropped != K])            # the rest keep their label
    again = drop_labels(y, 0.25, K, BatchDraws(torch.Generator().manual_seed(3)))
    assert torch.equal(dropped, again)                                    # deterministic from the stream
    # two ranks, each with half of the global batch, drop exactly what one rank drops
    halves = [drop_labels(y[r * 10_000:(r + 1) * 10_000], 0.25, K, BatchDraws(torch.Generator().manual_seed(3), r, 2))
              for r in range(2)]
    assert torch.equal(torch.cat(halves), dropped)


def test_no_draws_and_no_change_for_unconditional_runs_or_p_zero():
    y = torch.arange(100) % K
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    for p, null in ((0.3, None), (0.0, K)):
        assert drop_labels(y, p, null, BatchDraws(g)) is y
    assert drop_labels(None, 0.3, K, BatchDraws(g)) is None
    assert torch.equal(g.get_state(), before)


class Spy(torch.nn.Module):
    """A model net that records the labels it is given (output: a learnable multiple of x)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor | None] = []

    def forward(self, x, t=None, y=None, r=None):
        self.seen.append(None if y is None else y.clone())
        return self.w * x


METHOD_CONFIGS = {"diffusion": DiffusionConfig(label_dropout=0.5), "edm": EDMConfig(label_dropout=0.5),
                  "flow": FlowConfig(label_dropout=0.5), "ect": ECTConfig(label_dropout=0.5),
                  "meanflow": MeanFlowConfig(label_dropout=0.5, ratio_r_neq_t=0.0)}


@pytest.mark.parametrize("kind", sorted(METHOD_CONFIGS))
def test_losses_drop_labels_only_when_conditional(kind):
    x, y = torch.randn(256, 2), torch.arange(256) % K
    for num_classes in (None, K):
        method = build_method(METHOD_CONFIGS[kind])
        method.draws = BatchDraws(torch.Generator().manual_seed(0))
        method.num_classes = num_classes
        spy = Spy()
        method.loss({"model": spy}, "model", x, y)
        assert spy.seen
        for seen in spy.seen:
            if num_classes is None:
                assert torch.equal(seen, y)
            else:
                kept = seen != K
                assert 0.35 < 1 - kept.float().mean().item() < 0.65 and torch.equal(seen[kept], y[kept])
        if num_classes is not None:   # ECT's f(x_t) and f(x_r) see the same labels
            assert all(torch.equal(s, spy.seen[0]) for s in spy.seen)


def test_label_dropout_is_validated_in_one_line():
    for bad in ("1", "-0.1", "1.5"):
        with pytest.raises(GenbenchError) as err:
            load_config("configs/toy2d/flow.yaml", [f"method.label_dropout={bad}"])
        assert "label_dropout" in str(err.value) and "[0, 1)" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GenbenchError, match="unknown key"):
        load_config("configs/toy2d/gan.yaml", ["method.label_dropout=0.1"])   # a GAN has no "no label" token
    cfg = load_config("configs/toy2d/flow.yaml", ["conditional=true"])
    assert cfg.conditional and cfg.method.label_dropout == 0.1
    assert not load_config("configs/toy2d/flow.yaml").conditional


# ----------------------------------------------------------------------------- runs

TOY = ["data.n_points=512", "train.batch_size=32", "train.ckpt_every=3", "train.sample_every=1000",
       "train.grid_n=16", "train.tensorboard=false", "train.log_every=1", "--no-progress"]


def _train(family: str, out: Path, steps: int = 4, *extra: str) -> None:
    small = ["nets.G.hidden=32", "nets.D.hidden=32"] if family == "gan" else ["nets.model.hidden=32", "sample.nfe=2"]
    assert main(["train", f"configs/toy2d/{family}.yaml", "conditional=true", *small, *TOY,
                 f"train.budget={{steps: {steps}}}", *extra, "--out", str(out)]) == 0


@pytest.mark.parametrize("family", ["flow", "gan"])
def test_a_conditional_toy_run_trains_and_loads_with_its_classes(tmp_path, family):
    run = tmp_path / family
    _train(family, run)
    loaded = load_run(run)
    modes = [f"mode {k}" for k in range(8)]
    assert loaded.num_classes == 8 and loaded.class_names == modes
    assert loaded.method.num_classes == 8
    info = json.loads((run / "run.json").read_text())
    assert info["num_classes"] == 8 and info["class_names"] == modes and info["status"] == "finished"
    ckpt = load_checkpoint(list_checkpoints(run / "checkpoints")[4])
    assert ckpt["num_classes"] == 8 and ckpt["class_names"] == modes
    nets = loaded.sampling_nets()
    if family == "gan":
        assert nets["G"].num_classes == 8 and nets["D"].num_classes == 8
    else:
        assert nets["model"].class_emb.num_embeddings == 9   # 8 modes and the "no label" token


def test_an_older_checkpoint_without_classes_loads_as_unconditional(tmp_path):
    run = tmp_path / "old"
    assert main(["train", "configs/toy2d/flow.yaml", "nets.model.hidden=32", "sample.nfe=2", *TOY,
                 "train.budget={steps: 3}", "--out", str(run)]) == 0
    path = list_checkpoints(run / "checkpoints")[3]
    state = load_checkpoint(path)
    del state["num_classes"], state["class_names"]
    save_checkpoint(state, run / "checkpoints", 3, keep_last=3)
    loaded = load_run(run)
    assert loaded.num_classes is None and loaded.class_names is None and loaded.method.num_classes is None


def test_a_checkpoint_of_the_other_kind_is_refused(tmp_path, capsys):
    run = tmp_path / "cond"
    _train("flow", run, 3)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("conditional: true", "conditional: false"))
    with pytest.raises(GenbenchError, match="conditional"):
        load_run(run)


def test_conditional_training_is_refused_on_data_without_labels(tmp_path, capsys):
    root = tmp_path / "flat"
    root.mkdir()
    for k in range(4):   # images at the top level: no class sub-folders, no labels
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(root / f"{k}.png")
    code = main(["train", "configs/fmnist/flow.yaml", "conditional=true", "data.name=folder", f"data.root={root}",
                 "data.img_size=8", "nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[]",
                 "nets.model.groups=4", "train.budget={steps: 1}", "--no-progress", "--out", str(tmp_path / "run")])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert code != 0 and len(err) == 1 and "conditional=true needs class labels" in err[0], err


TINY_FMNIST = {"model": ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
                         "nets.model.groups=4", "sample.nfe=3"],
               "gan": ["nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8", "nets.G.groups=2", "nets.D.groups=2"]}


@pytest.mark.parametrize("preset", ["gan-cond", "gan-r3-cond", "edm-cond", "flow-cond", "ddpm-cond", "meanflow-cond"])
def test_the_conditional_fashion_mnist_presets_train(tmp_path, env, preset):
    cfg = load_config(f"configs/fmnist/{preset}.yaml")
    twin = load_config(f"configs/fmnist/{preset.removesuffix('-cond')}.yaml")
    assert cfg.conditional and cfg.train == twin.train and cfg.nets == twin.nets   # the twin's budget and nets
    run = tmp_path / preset
    tiny = TINY_FMNIST["gan" if preset.startswith("gan") else "model"]
    tiny = tiny[:3] if preset == "gan-cond" else tiny     # DCGAN has no groups
    assert main(["train", f"configs/fmnist/{preset}.yaml", *tiny, f"data.root={env / 'fmnist'}", "data.download=false",
                 "train.batch_size=8", "train.budget={steps: 2}", "train.ckpt_every=2", "train.grid_n=4",
                 "train.tensorboard=false", "--no-progress", "--out", str(run)]) == 0
    loaded = load_run(run)
    assert loaded.num_classes == 10 and loaded.class_names[7] == "Sneaker"


def test_cifar10_conditional_presets_follow_their_twins():
    for name in ("edm", "flow", "r3gan"):
        cfg, twin = load_config(f"configs/cifar10/{name}-cond.yaml"), load_config(f"configs/cifar10/{name}.yaml")
        assert cfg.conditional and not twin.conditional
        assert cfg.nets == twin.nets and cfg.train == twin.train and cfg.optim == twin.optim
        assert getattr(cfg.method, "label_dropout", 0.1) == 0.1   # CFG's p_uncond (a GAN has none)
        assert cfg.method.model_dump(exclude={"label_dropout"}) == twin.method.model_dump(exclude={"label_dropout"})


def test_kill_and_resume_of_a_conditional_run_is_bitwise_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    env = {k: v for k, v in os.environ.items() if k != "GENBENCH_TEST_CKPT_PAUSE"}

    def args(out: Path) -> list[str]:
        base = toy_args("flow", out)   # a checkpoint every step
        return [base[0], "conditional=true", "method.label_dropout=0.3", *base[1:], "train.budget={steps: 10}"]

    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(["train", *args(ref)]) == 0
    ckpts = run / "checkpoints"
    # killed inside the write of a checkpoint (temp file complete, not yet renamed): deterministic
    step = 5
    tmp = ckpts / f".ckpt-{step:09d}.pt.tmp"
    proc = start(args(run), env, pause=f"30@{step}")
    wait_for(tmp.exists, proc)
    time.sleep(0.2)
    kill(proc)
    assert max(list_checkpoints(ckpts)) == step - 1
    proc = start([*args(run), "--resume"], env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    a = load_checkpoint(max(list_checkpoints(ref / "checkpoints").items())[1])
    b = load_checkpoint(max(list_checkpoints(ckpts).items())[1])
    assert a["num_classes"] == b["num_classes"] == 8
    for key in a.keys() - {"seconds"}:
        same(a[key], b[key], key)
    assert logged(ref) == logged(run)
