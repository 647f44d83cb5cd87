"""Reliability guarantees on tiny 2-D runs: non-finite policies for every method, GAN divergence
reports, best checkpoints kept by pruning, checksums and code-free loading, per-seed sampling."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from genbench.cli import main
from genbench.errors import GenbenchError
from genbench.methods import diffusion, flow, gan
from genbench.train.checkpoint import (
    best_checkpoints,
    list_checkpoints,
    load_checkpoint,
    mark_best,
    save_checkpoint,
)

METHOD_CLASS = {"gan": gan.GAN, "ddpm": diffusion.Diffusion, "flow": flow.Flow}


def toy_args(family: str, out: Path, steps: int, *extra: str) -> list[str]:
    nets = (["nets.G.hidden=32", "nets.D.hidden=32", "nets.G.z_dim=4"] if family == "gan"
            else ["nets.model.hidden=32", "sample.nfe=2"])
    return ["train", f"configs/toy2d/{family}.yaml", *nets, "data.n_points=256", "train.batch_size=16",
            f"train.budget={{steps: {steps}}}", "train.ckpt_every=2", "train.log_every=1",
            "train.sample_every=1000", "train.grid_n=8", "train.tensorboard=false", "--no-progress",
            "--out", str(out), *extra]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))


def one_error_line(code: int, err: str) -> str:
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genbench: error: ") and "(fix: " in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def inject(monkeypatch, family: str, bad_calls: set[int], player: str | None = None, how: str = "nan"):
    """Make the method's loss non-finite (or its gradient, with how='grad') at the given calls
    (counted over calls for ``player``, or over all calls)."""
    cls = METHOD_CLASS[family]
    real = cls.loss
    calls = {"n": 0}

    def loss(self, nets, who, x, y):
        out = real(self, nets, who, x, y)
        if player is None or who == player:
            calls["n"] += 1
            if calls["n"] in bad_calls:
                if how == "nan":
                    out["loss"] = out["loss"] * float("nan")
                else:   # finite loss, NaN gradient: d/dp sqrt(0 * p) = inf * 0
                    p = next(nets[who].parameters())
                    out["loss"] = out["loss"] + torch.sqrt((p * 0).sum())
        return out

    monkeypatch.setattr(cls, "loss", loss)
    return calls


def finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for sd in state["nets"].values() for t in sd.values()
               if t.is_floating_point())


# ----------------------------------------------------------------------------- non-finite losses


@pytest.mark.parametrize("family", ["gan", "ddpm", "flow"])
def test_nan_stop_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys, family):
    run = tmp_path / "run"
    player = "D" if family == "gan" else None
    inject(monkeypatch, family, {6}, player)   # the 6th update of the player: during step 5 (0-based)
    code = main(toy_args(family, run, 10))
    line = one_error_line(code, capsys.readouterr().err)
    who = "D" if family == "gan" else "model"
    assert f"non-finite {who} loss at step 5" in line and "last good checkpoint" in line
    assert "train.nonfinite=skip" in line
    ckpts = list_checkpoints(run / "checkpoints")
    assert max(ckpts) == 4
    assert finite(load_checkpoint(ckpts[4]))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped: non-finite" and info["step"] == 5


@pytest.mark.parametrize("family", ["gan", "ddpm", "flow"])
def test_nan_skip_counts_and_finishes_finite(tmp_path, monkeypatch, capsys, family):
    run = tmp_path / "run"
    inject(monkeypatch, family, {2, 3, 5})
    assert main(toy_args(family, run, 6, "train.nonfinite=skip")) == 0
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    counts = [r["skipped"] for r in records]
    assert counts[-1] == 3 and counts == sorted(counts) and counts[0] < 3
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["skipped_updates"] == 3 and info["step"] == 6
    last = load_checkpoint(list_checkpoints(run / "checkpoints")[6])
    assert finite(last) and last["skipped"] == 3


def test_nan_gradient_with_finite_loss_is_caught(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    inject(monkeypatch, "flow", {3}, how="grad")
    assert main(toy_args("flow", run, 4, "train.nonfinite=skip")) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["skipped_updates"] == 1
    assert finite(load_checkpoint(list_checkpoints(run / "checkpoints")[4]))
    inject(monkeypatch, "flow", {3}, how="grad")
    code = main(toy_args("flow", tmp_path / "run2", 4))
    assert "non-finite model gradient at step 2" in one_error_line(code, capsys.readouterr().err)


# ----------------------------------------------------------------------------- GAN divergence


def test_gan_divergence_is_detected_and_reported(tmp_path, monkeypatch, capsys):
    """D's loss pinned at ~0 for divergence_window log lines -> warning, run.json and metrics.jsonl."""
    real = gan.GAN.loss

    def pinned(self, nets, who, x, y):
        out = real(self, nets, who, x, y)
        if who == "D":
            out["loss"] = out["loss"] * 0 + 1e-4
        return out

    monkeypatch.setattr(gan.GAN, "loss", pinned)
    run = tmp_path / "run"
    assert main(toy_args("gan", run, 6, "train.divergence_window=3")) == 0
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if ln.startswith("genbench: warning: GAN divergence")]
    assert len(warnings) == 1 and "steps 1..3" in warnings[0] and "(fix: " in warnings[0]
    info = json.loads((run / "run.json").read_text())
    assert info["divergence"]["step"] == 3 and info["divergence"]["since_step"] == 1
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert ["divergence" in r for r in records] == [False, False, True, True, True, True]


def test_healthy_gan_reports_no_divergence(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(toy_args("gan", run, 4, "train.divergence_window=2")) == 0
    assert json.loads((run / "run.json").read_text())["divergence"] is None
    assert "warning" not in capsys.readouterr().err


def test_divergence_window_zero_turns_it_off(tmp_path, monkeypatch, capsys):
    real = gan.GAN.loss
    monkeypatch.setattr(gan.GAN, "loss", lambda self, nets, who, x, y: {
        **real(self, nets, who, x, y), **({"loss": torch.tensor(0.0, requires_grad=True)} if who == "D" else {})})
    run = tmp_path / "run"
    assert main(toy_args("gan", run, 4, "train.divergence_window=0")) == 0
    assert json.loads((run / "run.json").read_text())["divergence"] is None


# ----------------------------------------------------------------------------- checkpoints


def small_state(step: int) -> dict:
    return {"step": step, "w": torch.full((3,), float(step))}


def test_keep_last_k_and_marked_best(tmp_path, capsys):
    folder = tmp_path / "run" / "checkpoints"
    (tmp_path / "run" / "config.yaml").parent.mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("name: x\n")
    for step in (1, 2, 3):
        save_checkpoint(small_state(step), folder, step, keep_last=2)
    assert list(list_checkpoints(folder)) == [2, 3]
    # mark step 2 best through the CLI; it survives every later pruning
    assert main(["mark-best", str(tmp_path / "run"), "2"]) == 0
    assert best_checkpoints(folder) == {2}
    for step in (4, 5, 6):
        save_checkpoint(small_state(step), folder, step, keep_last=2)
    assert list(list_checkpoints(folder)) == [2, 5, 6]
    assert load_checkpoint(list_checkpoints(folder)[2])["step"] == 2
    # marking a step that does not exist: one line, the valid steps named
    code = main(["mark-best", str(tmp_path / "run"), "3"])
    line = one_error_line(code, capsys.readouterr().err)
    assert "no complete checkpoint at step 3" in line and "[2, 5, 6]" in line
    with pytest.raises(GenbenchError):
        mark_best(folder, 99)


def test_keep_every_keeps_a_thinned_history(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in range(1, 9):
        save_checkpoint(small_state(step), folder, step, keep_last=2, keep_every=3)
    assert list(list_checkpoints(folder)) == [3, 6, 7, 8]
    # the history does not count towards keep_last: the last 2 others stay as well
    for step in (9, 10):
        save_checkpoint(small_state(step), folder, step, keep_last=2, keep_every=3)
    assert list(list_checkpoints(folder)) == [3, 6, 8, 9, 10]


def test_leftovers_of_killed_writers_are_ignored_and_cleaned(tmp_path):
    folder = tmp_path / "checkpoints"
    save_checkpoint(small_state(1), folder, 1, keep_last=5)
    (folder / ".ckpt-000000002.pt.tmp").write_bytes(b"half a checkp")          # killed before the rename
    torch.save(small_state(3), folder / "ckpt-000000003.pt")                   # killed before the checksum
    assert list(list_checkpoints(folder)) == [1]
    save_checkpoint(small_state(4), folder, 4, keep_last=5)
    assert sorted(p.name for p in folder.iterdir()) == [
        "ckpt-000000001.pt", "ckpt-000000001.pt.sha256", "ckpt-000000004.pt", "ckpt-000000004.pt.sha256"]


def test_checksum_is_verified_at_load(tmp_path):
    folder = tmp_path / "checkpoints"
    path = save_checkpoint(small_state(1), folder, 1, keep_last=2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01           # one flipped bit, same length
    path.write_bytes(bytes(data))
    with pytest.raises(GenbenchError, match="corrupt .*sha256 does not match"):
        load_checkpoint(path)


def test_malicious_pickle_with_valid_checksum_is_refused_via_cli(tmp_path, capsys):
    """A checkpoint that would run code on load (here: create a file), even with a matching
    .sha256 sidecar, is refused with one line and the file is never created."""
    run = tmp_path / "run"
    assert main(toy_args("flow", run, 2)) == 0
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = run / "checkpoints" / "ckpt-000000002.pt"
    with open(path, "wb") as f:
        pickle.dump({"step": 2, "method": "flow", "x": Evil()}, f, protocol=2)   # torch.save's protocol
    path.with_suffix(".pt.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "\n")
    code = main(["sample", str(run), "-n", "2", "-o", str(tmp_path / "s")])
    line = one_error_line(code, capsys.readouterr().err)
    assert "cannot load checkpoint" in line and "refused, it would call posix.system" in line
    assert "nothing was executed" in line and "weights_only" not in line
    assert not marker.exists()
    assert not (tmp_path / "s.npz").exists()


# ----------------------------------------------------------------------------- seeds


TINY_IMAGE = {
    "ddpm": ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
             "nets.model.groups=4"],
    "flow": ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
             "nets.model.groups=4"],
    "gan": ["nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8"],
    "meanflow": ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
                 "nets.model.groups=4"],
}
# CPU kernels whose result for one row depends on the batch size (oneDNN's ConvTranspose2d, MKL's
# sgemm) are neutralised in sampling.generate (padded batches, native convolutions): see
# docs/RELIABILITY.md
@pytest.mark.parametrize("family,data", [
    ("ddpm", "image"), ("flow", "image"), ("gan", "image"), ("gan", "toy"), ("ddpm", "toy"), ("flow", "toy"),
    ("meanflow", "image"), ("meanflow", "toy"), ("consistency", "toy"),
])
def test_same_seeds_same_samples_whatever_the_batch_size(family, data):
    from genbench.config import load_config
    from genbench.methods import build_method
    from genbench.nets import build_net
    from genbench.sampling import generate

    preset = "flow" if family == "consistency" else family   # multistep consistency sampling re-noises
    if data == "image":
        cfg = load_config(f"configs/fmnist/{family}.yaml", TINY_IMAGE[family])
        shape = (1, 28, 28)
    else:
        cfg = load_config(f"configs/toy2d/{preset}.yaml", [])
        shape = (2,)
    torch.manual_seed(0)
    method = build_method(cfg.method)
    nets = {p: build_net(cfg.nets[p], shape, None).eval() for p in cfg.players()}
    if "model" in nets and hasattr(nets["model"], "conv_out"):   # the UNet starts at output 0: give it one
        torch.nn.init.normal_(nets["model"].conv_out.weight, std=0.1)
    latent = method.latent_shape(shape, nets)
    # stochastic solvers, so that per-step noise is covered too (DDIM with eta=1, Euler-Maruyama)
    opts = {"gan": {}, "ddpm": {"solver": "ddim", "nfe": 3, "eta": 1.0}, "flow": {"solver": "euler_maruyama", "nfe": 3},
            "meanflow": {"solver": "meanflow", "nfe": 2}, "consistency": {"solver": "consistency", "nfe": 3}}
    seeds = list(range(100, 108))
    outs = [generate(method, nets, latent, seeds, torch.device("cpu"), batch_size=b, **opts[family])[0]
            for b in (1, 3, 8)]
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    # and a seed's sample does not depend on its neighbours
    alone = generate(method, nets, latent, [103], torch.device("cpu"), batch_size=1, **opts[family])[0]
    assert torch.equal(alone[0], outs[0][3])


def test_sampling_gives_each_net_its_own_memory_layout_back():
    """generate() samples image nets channels-last; a training loop's channels-last net (whose fused
    optimiser state is laid out like it) and a plain one must both come back as they were."""
    from torch import nn

    from genbench.sampling import fast_layout

    trained_cl = nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    plain = nn.Conv2d(3, 8, 3)
    with fast_layout({"a": trained_cl, "b": plain}, image=True):
        assert all(net.weight.is_contiguous(memory_format=torch.channels_last) for net in (trained_cl, plain))
    assert not trained_cl.weight.is_contiguous() and trained_cl.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.weight.is_contiguous()
