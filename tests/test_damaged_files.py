"""Damaged files inside a run or a cache, and values out of range at the edge (issue 13, items 3-4).

Every refusal: exit code 2, exactly one stderr line ``genbench: error: ... (fix: ...)`` naming the
file or the knob, no traceback, no ``internal error``, and no file that existed before changed,
deleted or touched (content and mtime), nor any new file left outside the command's own output.
A corrupt cache is not an error: it is rebuilt, with a one-line note.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fileformats import IDX_NAMES, make_cifar
from genbench.cli import main
from genbench.data import sources

SEED_MAX = 2**63 - 1


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Content and mtime of every file (a run's ``.lock``, which each command takes, aside)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def refused(argv: list[str], capsys, root: Path, *expect: str, output: Path | None = None) -> str:
    """Run the CLI: exit 2, one line naming the problem and the fix; nothing under ``root`` changed,
    and nothing new except under ``output`` (the command's own output, if it may leave any)."""
    before = snapshot(root)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("genbench: error: ") and "(fix: " in line, line
    assert "internal error" not in err and "Traceback" not in err, err
    for text in expect:
        assert text in line, line
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"changed or deleted: {changed}"
    own = str(output.relative_to(root)) if output is not None else None
    new = [k for k in after if k not in before and not (own and (k == own or k.startswith(own + os.sep)))]
    assert not new, f"new files: {new}"
    return line


def toy_args(family: str, out: Path, *extra: str) -> list[str]:
    nets = (["nets.G.hidden=16", "nets.D.hidden=16", "nets.G.z_dim=4"] if family == "gan"
            else ["nets.model.hidden=16", "sample.nfe=2"])
    return ["train", f"configs/toy2d/{family}.yaml", *nets, "data.n_points=64", "train.batch_size=16",
            "train.budget={steps: 2}", "train.ckpt_every=2", "train.sample_every=1000", "train.grid_n=4",
            "train.tensorboard=false", "--no-progress", "--out", str(out), *extra]


EVAL = ["-n", "16", "--metrics", "modes", "--no-floor"]
EVAL_NAME = "eval-step2-euler2-n16-seed0-points.json"
SWEEP_NAME = "sweep-n16-seed0.json"
SWEEP = ["--nfe-sweep", "--solver", "euler", "--nfe-list", "2", "-n", "16", "--metrics", "modes"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A flow run (evaluated, with an NFE sweep) and an evaluated GAN run, 2 steps each; tests copy them."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root / "home"))
        mp.setenv("GENBENCH_DATA", str(root / "nodata"))
        mp.setenv("GENBENCH_CACHE", str(root / "cache"))
        assert main(toy_args("flow", root / "flow")) == 0
        assert main(toy_args("gan", root / "gan")) == 0
        assert main(["eval", str(root / "flow"), *EVAL, "--solver", "euler", "--nfe", "2"]) == 0
        assert main(["eval", str(root / "flow"), *SWEEP]) == 0
        assert main(["eval", str(root / "gan"), *EVAL]) == 0
    assert (root / "flow" / "eval" / EVAL_NAME).is_file() and (root / "flow" / "eval" / SWEEP_NAME).is_file()
    return root


@pytest.fixture
def runs(env, trained):
    """Fresh copies of the trained runs in the test's folder: (flow, gan)."""
    for name in ("flow", "gan"):
        shutil.copytree(trained / name, env / name)
    return env / "flow", env / "gan"


# ----------------------------------------------------------------------------- A: damaged files, named

BINARY = b"\x89\xff\xfe\x00binary\x00garbage"


@pytest.mark.parametrize("command", ["sample", "eval", "resume"])
def test_binary_config_in_a_run(runs, env, capsys, command):
    flow, _ = runs
    (flow / "config.yaml").write_bytes(BINARY)
    argv = {"sample": ["sample", flow, "-n", "4"], "eval": ["eval", flow, *EVAL],
            "resume": toy_args("flow", flow, "--resume")}[command]
    refused(argv, capsys, env, f"{flow / 'config.yaml'}", "is not text", "not UTF-8", "restore")


@pytest.mark.parametrize("command", ["sample", "compare"])
def test_corrupt_yaml_config_in_a_run(runs, env, capsys, command):
    flow, gan = runs
    (flow / "config.yaml").write_text("name: x\ntrain: {budget: [1,\n")
    argv = (["sample", flow, "-n", "4"] if command == "sample" else ["compare", flow, gan, "-o", env / "rep"])
    refused(argv, capsys, env, f"{flow / 'config.yaml'}", "not valid YAML at line")


def test_binary_config_for_compare(runs, env, capsys):
    flow, gan = runs
    (flow / "config.yaml").write_bytes(BINARY)
    refused(["compare", flow, gan, "-o", env / "rep"], capsys, env, f"{flow / 'config.yaml'}", "not UTF-8")


RUN_JSON = {"truncated": b'{"status": "fini', "binary": BINARY, "a list": b"[1, 2, 3]"}
RUN_JSON_SAYS = {"truncated": "not valid JSON", "binary": "not UTF-8", "a list": "holds a JSON list, not an object"}


@pytest.mark.parametrize("how", sorted(RUN_JSON))
@pytest.mark.parametrize("command", ["eval", "compare"])
def test_corrupt_run_json(runs, env, capsys, how, command):
    flow, gan = runs
    (flow / "run.json").write_bytes(RUN_JSON[how])
    argv = (["eval", flow, *EVAL, "--seed", "5"] if command == "eval" else ["compare", flow, gan, "-o", env / "rep"])
    refused(argv, capsys, env, f"{flow / 'run.json'} is damaged", RUN_JSON_SAYS[how], "run.json")


EVAL_JSON = {"truncated": b'{"genbench_eval": 1, "metr', "binary": BINARY,
             "foreign": b'{"genbench_eval": 1, "metrics": 3, "checkpoint": 7}'}
EVAL_JSON_SAYS = {"truncated": "not valid JSON", "binary": "not UTF-8", "foreign": "metrics"}


@pytest.mark.parametrize("how", sorted(EVAL_JSON))
def test_corrupt_eval_json_for_compare(runs, env, capsys, how):
    flow, gan = runs
    (flow / "eval" / EVAL_NAME).write_bytes(EVAL_JSON[how])
    refused(["compare", flow, gan, "-o", env / "rep"], capsys, env, f"evaluation {flow / 'eval' / EVAL_NAME}",
            EVAL_JSON_SAYS[how], "evaluate")


@pytest.mark.parametrize("how", sorted(EVAL_JSON))
def test_corrupt_eval_json_reused_by_the_sweep(runs, env, capsys, how):
    flow, _ = runs
    (flow / "eval" / EVAL_NAME).write_bytes(EVAL_JSON[how])
    refused(["eval", flow, *SWEEP], capsys, env, f"{flow / 'eval' / EVAL_NAME}", EVAL_JSON_SAYS[how],
            "delete the damaged file")


@pytest.mark.parametrize("content", [b'{"genbench_sweep": 1, "curves": {"euler": [{"nf', b'{"curves": 5}', BINARY])
def test_corrupt_sweep_file(runs, env, capsys, content):
    flow, _ = runs
    (flow / "eval" / SWEEP_NAME).write_bytes(content)
    refused(["eval", flow, *SWEEP], capsys, env, f"NFE sweep {flow / 'eval' / SWEEP_NAME}", "damaged",
            "delete the damaged file")


@pytest.mark.parametrize("how", ["binary line", "bad middle line", "not an object"])
def test_corrupt_metrics_log_for_compare(runs, env, capsys, how):
    flow, gan = runs
    log = flow / "metrics.jsonl"
    good = log.read_bytes()
    bad = {"binary line": b"\xff\xfe\x00\n", "bad middle line": b'{"step": 1, "lo\n',
           "not an object": b"[1, 2]\n"}[how]
    log.write_bytes(bad + b'{"step": 2, "kimg": 0.032, "loss/model": 0.5}\n' + good)
    refused(["compare", flow, gan, "-o", env / "rep"], capsys, env, f"{log} is damaged: line 1",
            "metrics.jsonl")


def test_metrics_log_with_a_torn_last_line_is_read(runs):
    from genbench.report.collect import read_log

    flow, _ = runs
    log = flow / "metrics.jsonl"
    log.write_bytes(log.read_bytes() + b'{"step": 2, "kimg": 0.032, "loss/model": 0.5}\n')
    rows = read_log(log)
    log.write_bytes(log.read_bytes() + b'{"step": 9, "lo')   # a kill while logging
    assert read_log(log) == rows and rows


class _FakeExtractor:
    name, weights_sha256 = "fake", "0" * 64
    calls = 0

    def extract(self, images, batch_size=500):
        from genbench.metrics.features import Features

        _FakeExtractor.calls += 1
        x = images.reshape(len(images), -1)[:, :8].numpy().astype(np.float64)
        return Features(x, None)


@pytest.mark.parametrize("damage", [b"", BINARY, b"PK\x03\x04truncated zip", "wrong rows", "object array"])
def test_corrupt_reference_cache_is_rebuilt_with_a_note(env, capsys, damage):
    from genbench.config import DataConfig
    from genbench.metrics.reference import cache_dir, reference_features

    cfg = DataConfig(name="fashion_mnist", root=str(env / "fmnist"), download=False)
    first = reference_features(_FakeExtractor(), cfg, "test", None)
    cached = list(cache_dir().glob("*.npz"))
    assert len(cached) == 1 and not capsys.readouterr().err
    path = cached[0]
    if damage == "wrong rows":
        np.savez(path.with_suffix(""), features=np.zeros((3, 8), np.float32))
    elif damage == "object array":
        np.savez(path.with_suffix(""), features=np.array([{"a": 1}], dtype=object))
    else:
        path.write_bytes(damage)
    calls = _FakeExtractor.calls
    again = reference_features(_FakeExtractor(), cfg, "test", None)
    err = capsys.readouterr().err
    assert _FakeExtractor.calls == calls + 1            # computed again
    assert len(err.strip().splitlines()) == 1 and "note: the reference-feature cache" in err and str(path) in err
    np.testing.assert_array_equal(again.features, first.features)
    reused = reference_features(_FakeExtractor(), cfg, "test", None)   # and the rewritten cache is served
    assert _FakeExtractor.calls == calls + 1 and not capsys.readouterr().err
    np.testing.assert_array_equal(reused.features, first.features)
    assert sorted(p.name for p in cache_dir().iterdir()) == [path.name]   # no temp file left


# ----------------------------------------------------------------------------- B: validation at the edge


CONFIG_RANGES = {
    "beta 1": (["optim.model.betas=[0.9, 1.0]"], ["optim.model.betas", "[0, 1)"]),
    "beta negative": (["optim.model.betas=[-0.1, 0.99]"], ["optim.model.betas", "[0, 1)"]),
    "seed negative": (["seed=-1"], ["'seed'", "0..2^63-1"]),
    "seed too large": ([f"seed={SEED_MAX + 1}"], ["'seed'", "0..2^63-1"]),
    "grid seed": (["train.grid_seed=-5"], ["train.grid_seed", "0..2^63-1"]),
    "absolute name": (["name=/tmp/elsewhere"], ["'name'", "run names are names, not paths"]),
    "name with ..": (["name=../outside"], ["'name'", "run names are names, not paths"]),
    "name with /": (["name=a/b"], ["'name'", "run names are names, not paths"]),
    "name ..": (["name=.."], ["run names are names, not paths"]),
    "unknown user root": (["data.root=~nosuchuser_gb/data"], ["data.root", "nosuchuser_gb", "full path"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_RANGES))
def test_config_values_out_of_range(env, capsys, case):
    overrides, expect = CONFIG_RANGES[case]
    refused(toy_args("flow", env / "r", *overrides), capsys, env, *expect)
    assert not (env / "r").exists() and not (Path("runs") / "outside").exists()


def test_largest_seed_is_accepted():
    from genbench.config import load_config

    assert load_config("configs/toy2d/flow.yaml", [f"seed={SEED_MAX}"]).seed == SEED_MAX


SAMPLE_CASES = {
    "nfe 0": (["--nfe", "0"], ["--nfe must be at least 1 (got 0)"]),
    "nfe negative": (["--nfe", "-3"], ["--nfe must be at least 1"]),
    "seed huge": (["--seed", str(2**64)], ["--seed", "0..2^63-1"]),
    "seed + n beyond": (["--seed", str(SEED_MAX - 1)], ["--seed", "0..2^63-1"]),
    "seed negative": (["--seed", "-1"], ["--seed", "0..2^63-1"]),
    "empty out": (["-o", ""], ["--out is empty"]),
    "unknown user out": (["-o", "~nosuchuser_gb/samples"], ["--out", "nosuchuser_gb", "full path"]),
}


@pytest.mark.parametrize("case", sorted(SAMPLE_CASES))
def test_sample_options_out_of_range(runs, env, capsys, case):
    flow, _ = runs
    extra, expect = SAMPLE_CASES[case]
    refused(["sample", flow, "-n", "4", *extra], capsys, env, *expect)


EVAL_CASES = {
    "nfe 0": (["--nfe", "0"], ["--nfe must be at least 1"]),
    "seed huge": (["--seed", str(SEED_MAX)], ["--seed", "0..2^63-1"]),
    "empty metrics": (["--metrics", ""], ["--metrics ''", "names no metric"]),
    "comma metrics": (["--metrics", ","], ["names no metric"]),
    "empty metrics sweep": (["--metrics", "", "--nfe-sweep", "--solver", "euler", "--nfe-list", "2"],
                            ["names no metric"]),
    "nfe list 0": (["--nfe-sweep", "--solver", "euler", "--nfe-list", "0,2"], ["at least 1", "[0, 2]"]),
    "nfe list words": (["--nfe-sweep", "--solver", "euler", "--nfe-list", "a,b"], ["--nfe-list 'a,b'"]),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_options_out_of_range(runs, env, capsys, case):
    flow, _ = runs
    extra, expect = EVAL_CASES[case]
    argv = ["eval", flow, "-n", "16", *extra]
    if "--metrics" not in extra:
        argv += ["--metrics", "modes"]
    refused(argv, capsys, env, *expect)


@pytest.mark.parametrize("argv", [["train", "configs/toy2d/flow.yaml", "--out", ""],
                                  ["train", "configs/toy2d/flow.yaml", "--data-dir", ""],
                                  ["study", "toy2d", "--out", ""],
                                  ["data", "--data-dir", "~nosuchuser_gb"],
                                  ["train", "configs/toy2d/flow.yaml", "--out", "~nosuchuser_gb/run"]])
def test_empty_and_unknown_user_paths(env, capsys, argv):
    flag = argv[-2]
    refused(argv, capsys, env, flag)
    assert not (Path("~nosuchuser_gb")).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["sample", "eval"])
def test_device_cuda_without_a_gpu_names_the_option(runs, env, capsys, command):
    flow, _ = runs
    argv = [command, flow, "-n", "4", "--device", "cuda"] + (["--metrics", "modes"] if command == "eval" else [])
    line = refused(argv, capsys, env, "--device cuda but no CUDA device", "use --device auto")
    assert "train.device" not in line


@pytest.mark.parametrize("family", ["flow", "gan"])
def test_samples_npz_holds_plain_arrays(runs, env, capsys, family):
    run = runs[0] if family == "flow" else runs[1]
    big = SEED_MAX - 3
    assert main(["sample", str(run), "-n", "4", "--seed", str(big), "--format", "npz", "-o", str(env / "s")]) == 0
    with np.load(env / "s.npz") as z:   # allow_pickle=False, numpy's default
        assert z["seeds"].dtype == np.int64 and z["seeds"].tolist() == [big, big + 1, big + 2, big + 3]
        assert int(z["nfe"]) == (2 if family == "flow" else 1) and int(z["step"]) == 2
        assert len(z["samples"]) == 4
    assert sorted(p.name for p in env.iterdir() if p.name.startswith((".s", "s."))) == ["s.npz"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_interrupted_npz_write_leaves_no_temp_file(runs, env, capsys, monkeypatch, stop):
    flow, _ = runs

    def dies(file, **arrays):
        file.write(b"PK\x03\x04 part of a zip")
        raise stop(28, "No space left on device") if stop is OSError else stop()

    monkeypatch.setattr(np, "savez", dies)
    code = main(["sample", str(flow), "-n", "4", "-o", str(env / "out" / "s")])
    assert code in (2, 130)
    assert sorted(p.name for p in (env / "out").iterdir()) == ["s.png"]   # no s.npz, no temp file
    assert "Traceback" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- B: data identity and labels


def test_cifar_labels_that_are_not_integers(env, capsys):
    make_cifar(env / "c")
    batch = env / "c" / "cifar-10-batches-py" / "data_batch_2"
    obj = pickle.loads(batch.read_bytes(), encoding="bytes")
    obj[b"labels"] = ["cat"] * len(obj[b"labels"])
    batch.write_bytes(pickle.dumps(obj, protocol=2))
    refused(["train", "configs/cifar10/ddpm.yaml", "nets.model.ch=8", "nets.model.ch_mult=[1]",
             "nets.model.attn_resolutions=[]", "nets.model.groups=4", f"data.root={env / 'c'}",
             "data.download=false", "train.budget={steps: 1}", "train.tensorboard=false", "--no-progress",
             "--out", env / "r"], capsys, env, "data_batch_2", "b'labels' must be a list of whole numbers in 0..9")


def _decoded_sha(path: Path) -> str:
    return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()


def test_fashion_mnist_files_given_as_mnist_are_refused(env, capsys, monkeypatch):
    from genbench.data.mnist import FASHION_MNIST
    from genbench.data.sources import SourceFile

    folder = env / "fmnist"   # pretend these generated files are the official Fashion-MNIST
    for role in ("train_images", "train_labels"):
        info = FASHION_MNIST.files[role]
        monkeypatch.setitem(FASHION_MNIST.files, role, SourceFile(
            info.filename, info.md5, _decoded_sha(folder / (IDX_NAMES[role] + ".gz"))))
    refused(["train", "configs/fmnist/ddpm.yaml", "data.name=mnist", f"data.root={folder}", "data.download=false",
             "train.budget={steps: 1}", "--no-progress", "--out", env / "r"], capsys, env,
            "data.name=mnist", "official fashion_mnist train images", "set data.name=fashion_mnist")


def test_unofficial_idx_files_stay_accepted_under_either_name(env):
    from genbench.config import DataConfig
    from genbench.data import load_dataset

    for name in ("mnist", "fashion_mnist"):
        data = load_dataset(DataConfig(name=name, root=str(env / "fmnist"), download=False))
        assert len(data) == 64 and not data.verified


def test_sources_search_places_unchanged(env):
    """(guard) the search order the tests above rely on: data.root first."""
    assert sources.places("mnist", str(env / "x"))[0][0] == env / "x"


def test_eval_json_and_sweep_json_are_plain_json(trained):
    """(guard) the fixture's files the damaged-file cases overwrite exist and parse."""
    for name in (EVAL_NAME, SWEEP_NAME):
        assert isinstance(json.loads((trained / "flow" / "eval" / name).read_text()), dict)


def test_unknown_user_in_genbench_data(env, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA", "~nosuchuser_gb/data")
    refused(["data"], capsys, env, "$GENBENCH_DATA=~nosuchuser_gb/data", "full path")


@pytest.mark.parametrize("content", [b"{trunc", BINARY, b'{"data": {}}'])
def test_study_reads_run_json_with_the_file_named(runs, content):
    from genbench.errors import GenbenchError
    from genbench.study import _is_points

    flow, _ = runs
    assert _is_points(flow)
    (flow / "run.json").write_bytes(content)
    with pytest.raises(GenbenchError) as err:
        _is_points(flow)
    assert str(flow / "run.json") in err.value.line() and "damaged" in err.value.line()


def test_config_whose_method_is_not_a_section_for_compare(runs, env, capsys):
    flow, gan = runs
    (flow / "config.yaml").write_text("name: x\nmethod: flow\n")
    (flow / "run.json").write_text("{}")
    refused(["compare", flow, gan, "-o", env / "rep"], capsys, env, str(flow), "unknown method kind")
