"""Typed configs: presets load, overrides apply, and mistakes are refused with the valid choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbench.config import RunConfig, dump_config, load_config, parse_overrides
from genbench.errors import GenbenchError

PRESETS = sorted(p for p in Path("configs").rglob("*.yaml") if p.parts[1] != "study")  # study: own schema


def test_all_presets_exist_and_load():
    names = {str(p.relative_to("configs")) for p in PRESETS}
    for want in ["seed/cifar10_gan.yaml", "seed/cifar10_ddpm.yaml"] + [
            f"{d}/{m}.yaml" for d in ("cifar10", "fmnist", "toy2d") for m in ("gan", "ddpm", "flow")]:
        assert want in names
    for path in PRESETS:
        cfg = load_config(path)
        assert RunConfig.model_validate(cfg.model_dump()) == cfg  # round-trips


def test_seed_presets_carry_the_studys_settings():
    gan = load_config("configs/seed/cifar10_gan.yaml")
    assert (gan.optim["G"].lr, gan.optim["D"].lr, gan.train.batch_size) == (5e-5, 5e-6, 200)
    assert gan.method.loss == "bce" and gan.data.classes == ["automobile"]
    ddpm = load_config("configs/seed/cifar10_ddpm.yaml")
    assert (ddpm.optim["model"].lr, ddpm.train.batch_size, ddpm.method.T) == (1e-3, 1000, 1000)
    assert ddpm.optim["model"].schedule.milestones_epochs == [1000, 3000, 5000]
    assert ddpm.train.budget.epochs == 6000 == gan.train.budget.epochs


def test_overrides_are_typed_and_nested():
    cfg = load_config("configs/fmnist/ddpm.yaml",
                      ["train.batch_size=32", "data.classes=[1, Trouser]", "optim.model.betas=[0.5, 0.9]",
                       "method.prediction=v", "train.budget.steps=7"])
    assert cfg.train.batch_size == 32 and cfg.data.classes == [1, "Trouser"]
    assert cfg.optim["model"].betas == (0.5, 0.9) and cfg.method.prediction == "v"
    assert cfg.train.budget.steps == 7 and cfg.train.budget.minutes == 10


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config("configs/cifar10/gan.yaml", ["seed=3"])
    (tmp_path / "c.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("override, words", [
    (["train.batchsize=3"], ["unknown key 'train.batchsize'", "batch_size", "budget"]),
    (["nets.model.chanels=3"], ["unknown key 'nets.model.unet.chanels'", "ch_mult"]),
    (["train.batch_size=many"], ["train.batch_size", "integer", "'many'"]),
    (["train.batch_size=0"], ["train.batch_size", "greater than or equal to 1"]),
    (["method.prediction=score"], ["method.diffusion.prediction", "'eps', 'x0' or 'v'"]),
    (["method.schedule=quadratic"], ["'linear' or 'cosine'"]),
    (["train.precision=fp8"], ["'fp32' or 'bf16'"]),
    (["nets.model={kind: dcgan_g}"], ["cannot be the model", "mlp", "unet"]),
    (["nets.model.kind=dcgan_g"], ["unknown key", "valid keys here: ch, kind, z_dim"]),
    (["method.kind=gan"], ["unknown key"]),
    (["method.beta_end=1e-5"], ["beta_end must be larger"]),
    (["train.budget={}"], ["at least one of steps, epochs, kimg, minutes"]),
    (["data.name=ring"], ["does not fit dataset 'ring'"]),
    (["sample.solver=magic"], ["sample.solver"]),
    (["method={kind: flow, solver: ddpm}"], ["'method.flow.solver'", "got 'ddpm'", "dopri5"]),
    (["batch_size"], ["not key=value"]),
])
def test_bad_configs_are_refused_in_one_line(override, words):
    with pytest.raises(GenbenchError) as exc:
        load_config("configs/fmnist/ddpm.yaml", override)
    text = exc.value.line()
    assert "\n" not in text and "fix:" in text
    for w in words:
        assert w in text, text


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(GenbenchError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(GenbenchError, match="not valid YAML at line"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(GenbenchError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_parse_overrides_keeps_strings_that_are_not_yaml():
    assert parse_overrides(["a.b=1e-3", "c=[x, 2]", "d=hello", "e="]) == [
        ("a.b", 1e-3), ("c", ["x", 2]), ("d", "hello"), ("e", None)]


def test_solver_names_match_the_solver_registry():
    from genbench.config import solvers_for
    from genbench.solvers import SOLVERS

    assert set(solvers_for("diffusion")) == set(SOLVERS) - {"meanflow"}
    assert set(solvers_for("flow")) == set(SOLVERS) - {"ddpm", "meanflow"}
    assert set(solvers_for("meanflow")) == set(SOLVERS) - {"ddpm"}
