"""Limits before work (issue 13, item 2): every reader of a user's file checks sizes and declared
dimensions against genbench.limits before reading or allocating, and refuses in one line naming the
file, the limit and the fix; sample counts and network sizes are checked against the memory available.

Each case runs the CLI and checks: exit code 2, exactly one stderr line ``genbench: error: ... (fix:
...)`` without a traceback or ``internal error``, and that every file that existed before is still
there, unchanged (size and mtime; the files here are too large, or endless, to hash)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fileformats import IDX_NAMES, make_cifar
from genbench import limits
from genbench.cli import main
from genbench.config import parse_overrides, read_yaml
from genbench.limits import YamlTooLarge, expanded_size, load_yaml

ROOT = Path(__file__).resolve().parents[1]
IMG_TINY = ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
            "nets.model.groups=4", "sample.nfe=2"]


# ----------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below root (links not followed) with its type, size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def refused(argv: list[str], capsys, root: Path, *expect: str, may_change: tuple[str, ...] = ()) -> str:
    """Run the CLI: exit code 2, one line naming the problem and the fix, nothing existing changed
    (``may_change``: a resumed run's run.json, which records the failure)."""
    before = snapshot(root)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("genbench: error: ") and "(fix: " in line, line
    assert "Traceback" not in err and "internal error" not in err, err
    for text in expect:
        assert text in line, line
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v and k not in may_change]
    assert not changed, f"changed or deleted: {changed}"
    return line


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 10 levels of 9 references each, ~4*10^8 nodes once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def toy_args(out: Path, *extra: str) -> list[str]:
    return ["train", "configs/toy2d/flow.yaml", "nets.model.hidden=16", "sample.nfe=2", "data.n_points=64",
            "train.batch_size=16", "train.budget={steps: 2}", "train.ckpt_every=2", "train.sample_every=1000",
            "train.grid_n=4", "train.tensorboard=false", "--no-progress", "--out", str(out), *extra]


def img_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "configs/fmnist/ddpm.yaml", *IMG_TINY, f"data.root={data}", "data.download=false",
            "train.batch_size=8", "train.budget={steps: 2}", "train.tensorboard=false", "--no-progress",
            "--out", str(out), *extra]


def folder_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "configs/fmnist/gan.yaml", "nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8", "data.name=folder",
            f"data.root={root}", "data.channels=1", "data.img_size=8", "train.batch_size=2",
            "train.budget={steps: 1}", "train.tensorboard=false", "--no-progress", "--out", str(out), *extra]


def cifar_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "configs/cifar10/ddpm.yaml", *IMG_TINY, "nets.model.attn_resolutions=[16]", f"data.root={root}",
            "data.download=false", "train.batch_size=4", "train.budget={steps: 1}", "train.tensorboard=false",
            "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished and evaluated 2-step flow run on the 2-D ring, copied by the tests that alter it."""
    root = tmp_path_factory.mktemp("trained")
    assert main(toy_args(root / "flow")) == 0
    assert main(["eval", str(root / "flow"), "--metrics", "modes", "-n", "64", "--no-floor"]) == 0
    return root / "flow"


@pytest.fixture
def run(env, trained):
    dest = env / "run"
    shutil.copytree(trained, dest, symlinks=True)
    return dest


def checkpoint_of(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]


def low_memory(monkeypatch, available: int) -> None:
    monkeypatch.setattr(limits, "available_memory", lambda: available)


# ----------------------------------------------------------------------------- YAML


def test_yaml_alias_bomb_in_a_config_file(env, capsys):
    bomb = env / "bomb.yaml"
    bomb.write_text(billion_laughs())
    assert bomb.stat().st_size < 1000
    refused(["train", str(bomb), "--out", str(env / "r")], capsys, env,
            "bomb.yaml", "aliases", "1,000,000 nodes", "GENBENCH_LIMIT_YAML_NODES")
    assert not (env / "r").exists()


def test_yaml_alias_bomb_in_an_override(env, capsys):
    value = ("[" + ", ".join(f"&a{i} [" + ", ".join([f"*a{i - 1}" if i else "1"] * 9) + "]" for i in range(9))
             + "]")
    refused(toy_args(env / "r", f"data.classes={value}"), capsys, env, "override 'data.classes=", "aliases")


def test_yaml_alias_bomb_in_a_study_preset(env, capsys):
    study = env / "study.yaml"
    study.write_text("name: bomb\n" + billion_laughs())
    refused(["study", str(study), "--out", str(env / "s"), "--no-progress"], capsys, env, "study.yaml", "aliases")


def test_yaml_alias_bomb_of_nested_mappings(env, capsys):
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    for i in range(1, 9):
        lines.append(f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(9)) + "}")
    (env / "merge.yaml").write_text("\n".join(lines) + "\n")
    refused(["train", str(env / "merge.yaml"), "--out", str(env / "r")], capsys, env, "merge.yaml", "aliases")


def test_recursive_yaml_alias(env, capsys):
    (env / "loop.yaml").write_text("train: &t {budget: *t}\n")
    refused(["train", str(env / "loop.yaml"), "--out", str(env / "r")], capsys, env, "loop.yaml", "recursive")


def test_deeply_nested_yaml(env, capsys):
    (env / "deep.yaml").write_text("train: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(["train", str(env / "deep.yaml"), "--out", str(env / "r")], capsys, env, "deep.yaml", "nested too deeply")


def test_huge_config_file_is_refused_by_size_before_reading(env, capsys):
    big = env / "big.yaml"
    with open(big, "wb") as f:   # sparse: 8 MB that take no disk and are never read
        f.truncate(8 * 1024 * 1024)
    refused(["train", str(big), "--out", str(env / "r")], capsys, env,
            "big.yaml", "8.0 MiB", "limit of 1.0 MiB", "GENBENCH_LIMIT_CONFIG_FILE_BYTES")


@pytest.mark.parametrize("kind", ["dev-zero link", "fifo"])
def test_config_that_is_not_a_regular_file(env, capsys, kind):
    path = env / "cfg.yaml"
    if kind == "dev-zero link":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    expect = {"dev-zero link": "character device (through a symbolic link)", "fifo": "named pipe"}[kind]
    refused(["train", str(path), "--out", str(env / "r")], capsys, env, "cfg.yaml", expect, "not a regular file")


def test_limits_can_be_raised_and_a_bad_value_is_refused(env, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_LIMIT_YAML_NODES", "lots")
    refused(toy_args(env / "r"), capsys, env, "GENBENCH_LIMIT_YAML_NODES='lots'", "positive whole number")
    monkeypatch.setenv("GENBENCH_LIMIT_YAML_NODES", "20")   # the toy config has more values than that
    refused(toy_args(env / "r"), capsys, env, "more than 20 nodes")


def test_bounded_yaml_loads_exactly_what_safe_load_does():
    files = sorted(ROOT.glob("configs/**/*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert load_yaml(path.read_text()) == yaml.safe_load(path.read_text()), path
        assert read_yaml(path) == yaml.safe_load(path.read_text())
    shared = "base: &b {lr: 0.001, betas: [0.5, 0.9]}\nG: *b\nD: {<<: *b, lr: 0.002}\n"
    assert load_yaml(shared) == yaml.safe_load(shared)
    assert parse_overrides(["a=[1, 2]", "b=1e-3", "c={x: 1}"]) == [("a", [1, 2]), ("b", 0.001), ("c", {"x": 1})]


def test_expanded_size_counts_every_use_of_an_anchor():
    node = yaml.compose("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n")
    # the mapping, its 3 keys, the list c, and list x (3 nodes) used 4 times
    assert expanded_size(node, 100) == 1 + 3 + 1 + 4 * 3
    with pytest.raises(YamlTooLarge):
        expanded_size(node, 10)
    with pytest.raises(YamlTooLarge):
        load_yaml(billion_laughs())


# ----------------------------------------------------------------------------- datasets


def _gz_stream(header: bytes, zeros: int) -> bytes:
    """gzip of ``header`` followed by ``zeros`` zero bytes, compressed in chunks (no large buffer)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [comp.compress(header)]
    chunk = bytes(1 << 20)
    for _ in range(zeros >> 20):
        out.append(comp.compress(chunk))
    out.append(comp.flush())
    return b"".join(out)


def test_gzip_bomb_in_a_dataset_folder(env, capsys):
    folder = env / "fmnist"
    target = folder / (IDX_NAMES["train_images"] + ".gz")
    # a valid header for 64 images, then 256 MiB of zeros: 250 KB on disk
    target.write_bytes(_gz_stream(struct.pack(">IIII", 0x803, 64, 28, 28), 256 << 20))
    assert target.stat().st_size < 1 << 20
    refused(img_args(folder, env / "r"), capsys, env, str(target), "holds more than", "header 64x28x28 needs 50176")


def test_idx_header_declaring_absurd_dimensions(env, capsys):
    folder = env / "fmnist"
    target = folder / (IDX_NAMES["train_images"] + ".gz")
    target.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 10**9, 10**4, 10**4) + bytes(1000)))
    refused(img_args(folder, env / "r"), capsys, env, str(target), "declares 1000000000x10000x10000",
            "limit of 2.0 GiB", "GENBENCH_LIMIT_DATA_FILE_BYTES")


def test_idx_header_beyond_the_memory_available(env, capsys, monkeypatch):
    folder = env / "fmnist"
    target = folder / IDX_NAMES["train_images"]
    for p in folder.glob("train-images*"):
        p.unlink()
    target.write_bytes(struct.pack(">IIII", 0x803, 2_000_000, 28, 28) + bytes(100))   # 1.5 GB declared
    low_memory(monkeypatch, 100 << 20)
    refused(img_args(folder, env / "r"), capsys, env, str(target), "2000000x28x28", "would need about 2.9 GiB",
            "only 100.0 MiB is available")


def test_idx_file_that_is_a_link_to_an_endless_device(env, capsys):
    folder = env / "fmnist"
    target = folder / (IDX_NAMES["train_labels"] + ".gz")
    target.unlink()
    target.symlink_to("/dev/zero")
    refused(img_args(folder, env / "r"), capsys, env, str(target), "character device")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height (greyscale) with a tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b"")


def _images(folder: Path, n: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((12, 10), 20 * i, np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize("width,height,expect", [
    (10_000, 10_000, "10000x10000 = 100,000,000 pixels, above the limit of 89,478,485"),   # PIL only warns
    (30_000, 30_000, "exceeds limit of 178956970 pixels"),                                  # PIL raises
])
def test_png_beyond_the_decompression_bomb_limit(env, capsys, width, height, expect):
    _images(env / "imgs", 3)
    (env / "imgs" / "bomb.png").write_bytes(_png_header_only(width, height))
    refused(folder_args(env / "imgs", env / "r"), capsys, env, "bomb.png", expect)


def test_jpeg_with_absurd_dimensions(env, capsys):
    _images(env / "imgs", 3)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)   # height, width
    (env / "imgs" / "huge.jpg").write_bytes(bytes(data))
    refused(folder_args(env / "imgs", env / "r"), capsys, env, "huge.jpg", "exceeds limit")


def test_image_folder_with_too_many_files(env, capsys, monkeypatch):
    _images(env / "imgs", 5)
    monkeypatch.setenv("GENBENCH_LIMIT_FOLDER_IMAGES", "4")
    refused(folder_args(env / "imgs", env / "r"), capsys, env, "imgs", "5 files is above the limit of 4 files",
            "GENBENCH_LIMIT_FOLDER_IMAGES")


def test_image_folder_larger_than_memory(env, capsys, monkeypatch):
    _images(env / "imgs", 5)
    low_memory(monkeypatch, 1000)
    refused(folder_args(env / "imgs", env / "r", "data.img_size=64"), capsys, env,
            "5 images of 1x64x64", "20.0 KiB", "only 1000 bytes is available")


def test_cifar_batch_far_larger_than_the_official_ones(env, capsys):
    make_cifar(env / "cifar")
    batch = env / "cifar" / "cifar-10-batches-py" / "data_batch_3"
    with open(batch, "r+b") as f:   # sparse: never read
        f.truncate(300 << 20)
    refused(cifar_args(env / "cifar", env / "r"), capsys, env, "data_batch_3", "300.0 MiB",
            "limit of 256.0 MiB", "GENBENCH_LIMIT_CIFAR_BATCH_BYTES")


def test_cifar_archive_member_beyond_the_limit(env, capsys, monkeypatch):
    make_cifar(env / "src")
    archive = env / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(env / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setenv("GENBENCH_LIMIT_CIFAR_BATCH_BYTES", "1000")
    refused(cifar_args(archive, env / "r"), capsys, env, "cifar-10-python.tar.gz", "limit of 1000 bytes")


# ----------------------------------------------------------------------------- samples and networks


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_sample_count_in_the_trillions(run, capsys, command):
    extra = ["--metrics", "modes"] if command == "eval" else []
    refused([command, str(run), "-n", "1000000000000", *extra], capsys, run.parent,
            "-n 1,000,000,000,000", "limit of 10,000,000 samples", "GENBENCH_LIMIT_SAMPLES")


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_sample_count_beyond_the_memory_available(run, capsys, monkeypatch, command):
    calls = []

    def available():   # enough for the nets and 3 million seeds (137 MiB), not for the samples (189 MiB)
        calls.append(1)
        return 180 << 20
    monkeypatch.setattr(limits, "available_memory", available)
    extra = ["--metrics", "modes"] if command == "eval" else []
    line = refused([command, str(run), "-n", "3000000", *extra], capsys, run.parent,
                   "-n 3,000,000 samples of 2", "only 180.0 MiB is available", "ask for fewer samples")
    assert "fit now" in line and calls


def test_raised_sample_limit_still_checks_the_seeds_memory(run, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_LIMIT_SAMPLES", "1e13")
    low_memory(monkeypatch, 1 << 30)
    refused(["sample", str(run), "-n", "1000000000000"], capsys, run.parent,
            "the seeds of -n 1,000,000,000,000 samples", "only 1.0 GiB is available")


def test_network_too_large_for_memory_is_refused_before_it_is_built(env, capsys):
    line = refused(toy_args(env / "r", "nets.model.hidden=10000000"), capsys, env,
                   "training networks of", "parameters", "nets.model.hidden")
    assert "PiB" in line


def test_network_too_large_to_load_for_sampling(run, capsys, monkeypatch):
    low_memory(monkeypatch, 1000)
    refused(["sample", str(run), "-n", "4"], capsys, run.parent, "sampling networks of", "nets.model.hidden")


# ----------------------------------------------------------------------------- run files


@pytest.mark.parametrize("kind", ["dev-zero link", "fifo", "huge"])
def test_checksum_sidecar_that_never_ends(run, capsys, kind):
    side = checkpoint_of(run).with_suffix(".pt.sha256")
    side.unlink()
    if kind == "dev-zero link":
        side.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(side)
    else:
        with open(side, "wb") as f:
            f.truncate(1 << 30)
    expect = {"dev-zero link": "character device", "fifo": "named pipe", "huge": "limit of 4.0 KiB"}[kind]
    refused(["sample", str(run), "-n", "4"], capsys, run.parent, side.name, expect)


def test_checkpoint_larger_than_any_sane_one(run, capsys):
    ckpt = checkpoint_of(run)
    with open(ckpt, "r+b") as f:   # sparse 65 GiB: never read
        f.truncate(65 << 30)
    refused(["sample", str(run), "-n", "4"], capsys, run.parent, ckpt.name, "65.0 GiB", "limit of 64.0 GiB")


def test_training_log_that_is_a_link_to_an_endless_device_on_resume(run, capsys):
    log = run / "metrics.jsonl"
    log.unlink()
    log.symlink_to("/dev/zero")
    args = toy_args(run, "--resume")
    args[args.index("train.budget={steps: 2}")] = "train.budget={steps: 4}"
    refused(args, capsys, run.parent, "metrics.jsonl", "character device", may_change=("run/run.json", "run/.lock"))


def test_sample_grid_that_is_a_link_to_an_endless_device_in_compare(run, capsys):
    other = run.parent / "run2"
    shutil.copytree(run, other, symlinks=True)
    grid = sorted((run / "samples").glob("grid-*.png"))[-1]
    grid.unlink()
    grid.symlink_to("/dev/zero")
    refused(["compare", str(run), str(other), "-o", str(run.parent / "report")], capsys, run.parent,
            grid.name, "character device")


def test_every_limit_is_documented():
    text = (ROOT / "docs" / "RELIABILITY.md").read_text()
    missing = [lim.name for lim in limits.ALL if f"`{lim.name}`" not in text]
    assert not missing, missing
